// RedisLock: the lock kind (ABI 1.1) on one Redis, for several athens instances on several machines.
//
// Config: see RedisLockSettings (`url`, `keyPrefix`, `poolSize`, timeouts, `pollMilliseconds`).
//
// The work is LeaseLock's (Plugins/RedisLock/Client): acquire is `SET <prefix>lock:<key> <random token> NX PX lease`,
// refresh and release are compare-and-set scripts on the token, so a holder whose lease ran out can neither extend
// nor delete the lock another now holds (refresh then answers ATH_NOT_FOUND). A holder that dies stops refreshing
// and its key expires lease_ms after its last acquire or refresh. Waiting blocks in BLPOP on `<prefix>wake:<key>`,
// which every release pushes to, each BLPOP at most pollMilliseconds, the holder's remaining lease, what is left of
// wait_ms, or of the call's deadline; cancellation is asked after each one. No fairness (barging happens).
//
// Keys are bytes, not text: each byte outside printable ASCII, and `%`, is written as %XX in the Redis key, so
// distinct keys stay distinct (no lossy UTF-8 decoding) and every key is readable in redis-cli.
//
// Failures: Redis unreachable, not answering within the configured timeouts, answering garbage or an error (a
// changed password) → ATH_UNAVAILABLE naming the endpoint (never the password); the pool reconnects on the next
// call. The call's deadline passing first → ATH_TIMEOUT. The host log gets one warning when Redis becomes
// unusable and one line when it is back, not one per call.
//
// Known limit: when the call's deadline (or the command timeout) cuts a SET round trip short, the SET may still
// have run; that lock then has no holder and frees itself when its lease ends (exclusion holds; others wait
// longer). Waiting for the reply instead would let a slow Redis hold the call past its deadline.
import Basics
import FoundationEssentials
import Glibc
import PluginKit
import RedisClient

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.lock(name: "RedisLock", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try RedisLock(RedisLockSettings(config), host: config.host)
    }
}

/// Locks as expiring Redis keys, through one pooled client.
/// Invariant: `held` maps each live handle to the token that proves it; it changes under `state`.
final class RedisLock: LockBackend, @unchecked Sendable {  // `held`, `nextHandle`, `reachable` guarded by `state`
    private let lock: LeaseLock
    private let host: HostServices
    private let endpoint: String
    private let state = PosixLock()
    private var held: [UInt64: LeaseLock.Handle] = [:]
    private var nextHandle: UInt64 = 1
    /// What the last call found; a change is logged once.
    private var reachable = true

    init(_ settings: RedisLockSettings, host: HostServices) throws(PluginFailure) {
        let client: RedisClient
        do {
            client = try RedisClient(settings.redis)
        } catch {
            throw .invalid("config: \(error)")
        }
        lock = LeaseLock(client: client, prefix: settings.keyPrefix, pollIntervalMs: settings.pollMilliseconds)
        self.host = host
        endpoint = settings.redis.description
        // A refused AUTH or SELECT is a config error and stops start-up; Redis being down is not (it may come
        // later, and the host copes without the lock meanwhile).
        do {
            _ = try client.command(["PING"], timeoutMs: settings.redis.connectTimeoutMs)
        } catch .server(let text) where ["AUTH", "SELECT", "NOAUTH", "WRONGPASS"].contains(where: text.hasPrefix) {
            throw .invalid("config.url: " + (text.contains(endpoint) ? text : "\(endpoint): \(text)"))
        } catch {
            noteFailure(error)
        }
    }

    deinit { lock.client.close() }

    /// `key` as the Redis key's tail: printable ASCII but `%` as is, every other byte %XX.
    static func escape(_ key: [UInt8]) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(key.count)
        for byte in key {
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The key as messages name it: escaped, and cut short (a key may be 1024 bytes).
    private static func name(_ key: String) -> String { key.count <= 120 ? key : key.prefix(120) + "…" }

    func acquire(key: [UInt8], leaseMs: UInt32, waitMs: UInt32, call: CallContext) throws(PluginFailure) -> UInt64 {
        let escaped = Self.escape(key), what = "RedisLock: lock \(Self.name(escaped))"
        try call.check(what)
        let waitEnd = CallContext.now() + UInt64(waitMs) * 1_000_000
        let got: LeaseLock.Handle?
        do {
            got = try lock.acquire(key: escaped, leaseMs: Int(leaseMs), waitMs: Int(waitMs), limit: Self.limit(call),
                                   stop: { call.isCancelled })
        } catch {
            throw failure(error, what, call)
        }
        noteSuccess()
        guard let got else {
            if call.isCancelled { throw .cancelled("\(what): cancelled by the host while waiting") }
            if let deadline = call.deadline, deadline < waitEnd { throw .timeout("\(what): past the call's deadline while waiting") }
            throw .busy("\(what): held by another for all of \(waitMs) ms")
        }
        state.lock()
        defer { state.unlock() }
        let handle = nextHandle
        nextHandle += 1
        held[handle] = got
        return handle
    }

    func refresh(handle: UInt64, leaseMs: UInt32, call: CallContext) throws(PluginFailure) {
        let current = state.withLock { held[handle] }
        guard let current else { throw .notFound("RedisLock: lock handle \(handle): not held by this instance") }
        let what = "RedisLock: lock \(Self.name(current.key))"
        try call.check(what)
        let kept: Bool
        do {
            kept = try lock.refresh(current, leaseMs: Int(leaseMs), limit: Self.limit(call))
        } catch {
            throw failure(error, what, call)
        }
        noteSuccess()
        guard kept else { throw .notFound("\(what): lost (its lease ran out; another may hold it now)") }
    }

    func release(handle: UInt64) throws(PluginFailure) {
        let current = state.withLock { held.removeValue(forKey: handle) }
        guard let current else { throw .notFound("RedisLock: lock handle \(handle): not held by this instance") }
        let what = "RedisLock: lock \(Self.name(current.key))"
        let deleted: Bool
        do {
            deleted = try lock.release(current)
        } catch {
            throw failure(error, what + " (it frees itself when its lease ends)", .none)
        }
        noteSuccess()
        guard deleted else { throw .notFound("\(what): already lost (its lease ran out) before the release") }
    }

    /// The call's deadline as LeaseLock's, in whole milliseconds rounded up (plus one for the truncated "now" that
    /// Deadline starts from), so LeaseLock never gives up before the host's deadline has passed.
    private static func limit(_ call: CallContext) -> Deadline? {
        call.remainingNanoseconds.map { Deadline(afterMilliseconds: Int(($0 + 999_999) / 1_000_000) + 1) }
    }

    /// The status a Redis failure becomes. Redis errors never hold the password (RedisClient redacts them).
    private func failure(_ error: RedisError, _ what: String, _ call: CallContext) -> PluginFailure {
        switch error {
        case .invalidArgument(let message):
            return .invalid("\(what): \(message)")
        case .timeout where call.remainingNanoseconds == 0:
            return .timeout("\(what): past the call's deadline (\(error))")
        default:
            noteFailure(error)
            return .unavailable("\(what): \(error)")
        }
    }

    private func noteFailure(_ error: RedisError) {
        let changed = state.withLock { () -> Bool in
            defer { reachable = false }
            return reachable
        }
        if changed { host.log(.warning, "RedisLock: \(endpoint) unusable, lock calls fail with ATH_UNAVAILABLE until it is back: \(error)") }
    }

    private func noteSuccess() {
        let changed = state.withLock { () -> Bool in
            defer { reachable = true }
            return !reachable
        }
        if changed { host.log(.info, "RedisLock: \(endpoint) reachable again") }
    }
}
