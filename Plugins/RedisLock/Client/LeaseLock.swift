/// A distributed lock with a lease, on one Redis: the shape of the lock plugin kind (acquire / refresh / release).
///
/// - `acquire` sets `<prefix>lock:<key>` to a fresh random token with `SET NX PX lease`; only the holder knows the
///   token. A holder that dies simply stops refreshing: its lock expires `lease` ms after the last refresh.
/// - `refresh` and `release` are Lua scripts that compare the token first (`EVALSHA`, falling back to `EVAL` on
///   `NOSCRIPT`), so a holder whose lease ran out and whose lock another caller now holds can neither extend nor
///   delete that caller's lock: they return false.
/// - Waiting does not poll busily: `release` leaves one wake-up token in the list `<prefix>wake:<key>` and waiters
///   block in `BLPOP` on it. The token stays in the list until a waiter takes it, so a release that happens between a
///   waiter's failed `SET` and its `BLPOP` is not lost. Each `BLPOP` lasts at most until the holder's lease ends (its
///   `PTTL`, read with the failed `SET`), `pollIntervalMs`, or the caller's `waitMs`, whichever is first, so an expired
///   lease is picked up promptly and nobody waits past `waitMs` (plus one round trip).
///
/// Fairness: none is guaranteed. Redis serves clients blocked on one list in the order they blocked, so under steady
/// contention waiters are woken roughly first come, first served; but a caller arriving just as the lock is
/// released can take it before the woken waiter (barging), and a waiter whose `BLPOP` timed out re-queues at the back.
///
/// A waiter holds one pooled connection while it blocks: size the client's pool for the expected waiters plus
/// the callers that must not queue behind them.
import Basics
public final class LeaseLock: @unchecked Sendable {  // `scriptHashes` guarded by `monitor`
    /// A held lock: its key and the token that proves ownership.
    public struct Handle: Sendable, Hashable {
        public let key: String
        public let token: String
    }

    public let client: RedisClient
    /// Namespace of the lock and wake-up keys, e.g. per deployment (`athens:<storage identity>:`).
    public let prefix: String
    /// Longest single `BLPOP`: the bound on noticing a lease that expired without a refresh when `PTTL` was not
    /// known (e.g. a lock set without expiry by someone else).
    public let pollIntervalMs: Int

    private let monitor = PosixCondition()
    private var scriptHashes: [String: String] = [:]

    /// How long an unclaimed wake-up token lives: it only ever causes one needless `SET` attempt.
    static let wakeTokenMs = 10_000

    public init(client: RedisClient, prefix: String = "athens:", pollIntervalMs: Int = 250) {
        self.client = client
        self.prefix = prefix
        self.pollIntervalMs = max(1, pollIntervalMs)
    }

    /// Takes the lock for `leaseMs`, waiting up to `waitMs` (0: try once). nil when another holder kept it, when
    /// `limit` (the caller's own deadline) passed first, or when `stop` (asked between two tries, e.g. "was the
    /// call cancelled?") said so; the caller tells these apart. Every round trip ends by `limit` too (a reply not
    /// in by then throws `.timeout`), so nothing runs past it by more than the system's scheduling.
    public func acquire(key: String, leaseMs: Int, waitMs: Int, limit: Deadline? = nil,
                        stop: () -> Bool = { false }) throws(RedisError) -> Handle? {
        try validate(key: key, leaseMs: leaseMs)
        guard waitMs >= 0 else { throw .invalidArgument("waitMs must not be negative") }
        let deadline = limit.map { min($0, Deadline(afterMilliseconds: waitMs)) } ?? Deadline(afterMilliseconds: waitMs)
        let token = try randomBytes(16).map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
        }.joined()
        let lockKey = Array((prefix + "lock:" + key).utf8), wakeKey = Array((prefix + "wake:" + key).utf8)
        let set: [[UInt8]] = [Array("SET".utf8), lockKey, Array(token.utf8), Array("NX".utf8), Array("PX".utf8), Array(String(leaseMs).utf8)]
        while true {
            let replies = try client.pipeline([set, [Array("PTTL".utf8), lockKey]], timeoutMs: timeout(client.configuration.commandTimeoutMs, limit))
            if case .error(let text) = replies[0] { throw RedisError.server(text).redacting(client.configuration.password) }
            if replies[0] == .simple("OK") { return Handle(key: key, token: token) }
            let remaining = deadline.remaining
            if remaining == 0 || stop() { return nil }
            var wait = min(remaining, pollIntervalMs)
            if let ttl = replies[1].integer {
                if ttl == -2 { continue }  // released between SET and PTTL: try again at once
                if ttl >= 0 { wait = min(wait, Int(ttl) + 1) }
            }
            // BLPOP's timeout is in seconds with decimals; 0 would mean forever, and wait is at least 1 ms.
            let seconds = "\(wait / 1000).\(String(1000 + wait % 1000).dropFirst())"
            _ = try client.command([Array("BLPOP".utf8), wakeKey, Array(seconds.utf8)],
                                   timeoutMs: timeout(wait + client.configuration.commandTimeoutMs, limit))
            if stop() { return nil }
        }
    }

    /// `ms`, cut to what is left of `limit` (at least 1 ms, so a passed limit still gets a prompt `.timeout`).
    private func timeout(_ ms: Int, _ limit: Deadline?) -> Int {
        guard let limit else { return ms }
        return max(1, min(ms, limit.remaining))
    }

    /// Extends a held lock to `leaseMs` from now. False when the lock was lost (expired, and maybe taken).
    /// `limit` bounds the round trips as in `acquire`.
    public func refresh(_ handle: Handle, leaseMs: Int, limit: Deadline? = nil) throws(RedisError) -> Bool {
        try validate(key: handle.key, leaseMs: leaseMs)
        let reply = try evaluate(LeaseLock.refreshScript, keys: [prefix + "lock:" + handle.key],
                                 arguments: [handle.token, String(leaseMs)], limit: limit)
        return reply.integer == 1
    }

    /// Releases a held lock and wakes one waiter. False when the lock was no longer this handle's (nothing deleted).
    public func release(_ handle: Handle) throws(RedisError) -> Bool {
        let reply = try evaluate(LeaseLock.releaseScript, keys: [prefix + "lock:" + handle.key, prefix + "wake:" + handle.key],
                                 arguments: [handle.token, String(LeaseLock.wakeTokenMs)], limit: nil)
        return reply.integer == 1
    }

    private func validate(key: String, leaseMs: Int) throws(RedisError) {
        guard !key.isEmpty, key.utf8.count <= 4096 else { throw .invalidArgument("lock key must be 1-4096 bytes") }
        guard leaseMs > 0, leaseMs <= 86_400_000 else { throw .invalidArgument("leaseMs must be 1 ms to 24 h") }
    }

    static let refreshScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """

    static let releaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('DEL', KEYS[1])
          redis.call('DEL', KEYS[2])
          redis.call('RPUSH', KEYS[2], '1')
          redis.call('PEXPIRE', KEYS[2], ARGV[2])
          return 1
        end
        return 0
        """

    /// `EVALSHA` of the script's hash (loaded once with `SCRIPT LOAD`), `EVAL` when the server lost it (`NOSCRIPT`:
    /// restarted or `SCRIPT FLUSH`ed).
    private func evaluate(_ script: String, keys: [String], arguments: [String], limit: Deadline?) throws(RedisError) -> RedisValue {
        let tail = [String(keys.count)] + keys + arguments
        func timeoutMs() -> Int { timeout(client.configuration.commandTimeoutMs, limit) }
        var hash = monitor.withLock { scriptHashes[script] }
        if hash == nil {
            guard let loaded = try client.command(["SCRIPT", "LOAD", script], timeoutMs: timeoutMs()).string else {
                throw .protocolError("SCRIPT LOAD did not answer with a hash")
            }
            monitor.withLock { scriptHashes[script] = loaded }
            hash = loaded
        }
        do {
            return try client.command(["EVALSHA", hash!] + tail, timeoutMs: timeoutMs())
        } catch .server(let text) where text.hasPrefix("NOSCRIPT") {
            return try client.command(["EVAL", script] + tail, timeoutMs: timeoutMs())
        }
    }
}
