import Foundation
import PluginABI
import RedisClient
import Testing

/// RedisLock (Plugins/RedisLock/Plugin) driven through athens_plugin.h (LockHarness), against real redis-server
/// processes (RedisServer): exclusion between handles, instances and processes, waits that end on time without
/// spinning, leases that expire when the holder dies, refreshes that never extend a lost lock, Redis down and back,
/// AUTH and SELECT, the unix socket, and keys that stay opaque bytes.
@Suite("RedisLock plugin", .blockingBodies, .serialized)
struct RedisLockPluginTests {
    static var library: String { TestSupport.plugin("RedisLock") }

    /// The plugin's config JSON: `url` plus any extra keys.
    static func config(_ url: String, _ extra: [String: Any] = [:]) -> String {
        var object = extra
        object["url"] = url
        return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Clients connected to `server`, not counting `observer`'s own connection.
    static func otherClients(_ observer: RedisClient) throws -> Int {
        let list = try observer.command(["CLIENT", "LIST"]).string ?? ""
        return list.split(separator: "\n").count - 1
    }

    /// How many times `command` (e.g. "set") ran on the server so far, from INFO commandstats.
    static func calls(_ command: String, _ observer: RedisClient) throws -> Int {
        let info = try observer.command(["INFO", "commandstats"]).string ?? ""
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(command):") }),
              let calls = line.split(separator: ",").first?.split(separator: "=").last else { return 0 }
        return Int(calls) ?? 0
    }

    @Test("the descriptor is a 1.1 lock plugin; bad configs are refused naming the key, never echoing a password")
    func loadAndConfig() throws {
        let server = try RedisServer()
        defer { server.stop() }
        _ = try LockPlugin(path: Self.library, config: Self.config(server.url()))
        for (config, message) in [("{}", "config.url: required"), (Self.config(""), "config.url: required"),
                                  (Self.config(server.url(), ["bogus": 1]), "config.bogus: unknown key"),
                                  (Self.config("http://127.0.0.1:1"), "config.url: redis: bad redis URL: scheme"),
                                  (Self.config("rediss://127.0.0.1:1"), "TLS"),
                                  (Self.config("redis://:pa55word-in-url@127.0.0.1:x"), "port must be"),
                                  (Self.config("unix://relative.sock"), "absolute socket path"),
                                  (Self.config(server.url(), ["poolSize": 0]), "config.poolSize: must be an integer from 1 to 1024"),
                                  (Self.config(server.url(), ["pollMilliseconds": 2.5]), "config.pollMilliseconds"),
                                  (Self.config(server.url(), ["commandTimeoutMilliseconds": true]), "config.commandTimeoutMilliseconds"),
                                  (Self.config(server.url(), ["keyPrefix": String(repeating: "p", count: 257)]), "config.keyPrefix"),
                                  (Self.config(server.url(), ["keyPrefix": 7]), "config.keyPrefix: must be a string"),
                                  ("[]", "not a JSON object")] {
            let error = #expect(throws: LockPlugin.LockFailure.self) { _ = try LockPlugin(path: Self.library, config: config) }
            #expect(error?.status == ATH_INVALID, "\(config)")
            #expect(error?.message.contains(message) == true, "\(config): \(error?.message ?? "")")
            #expect(error?.message.contains("pa55word-in-url") == false)
        }
    }

    @Test("two handles on one key: wait_ms = 0 is ATH_BUSY at once, a bounded wait ends ATH_BUSY, a waiter gets it on release")
    func twoHandles() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let observer = try server.client(poolSize: 1)
        // A 10 s poll and a 60 s lease: only the release's wake-up can end the waiter's wait within the bound below.
        let config = Self.config(server.url(), ["pollMilliseconds": 10_000])
        let plugin = try LockPlugin(path: Self.library, config: config)
        let key = "fetch/example.com/m@v1.0.0"
        let first = plugin.acquire(key, leaseMs: 60_000, waitMs: 0)
        try #require(first.status == ATH_OK && first.handle != 0, "\(first)")
        let ttl = try #require(try observer.command(["PTTL", "athens:lock:" + key]).integer)
        #expect(ttl > 0 && ttl <= 60_000, "the lock is a key with the lease as its expiry")

        var started = LockHarness.now()
        let busy = plugin.acquire(key, waitMs: 0)
        #expect(busy.status == ATH_BUSY, "\(busy)")
        #expect(LockHarness.now() - started < 1, "wait_ms = 0 never waits")
        #expect(busy.message.contains("held by another") && busy.message.contains(key), "\(busy.message)")
        let setsBefore = try Self.calls("set", observer)
        started = LockHarness.now()
        let waited = try LockPlugin(path: Self.library, config: Self.config(server.url())).acquire(key, waitMs: 1000)
        #expect(waited.status == ATH_BUSY, "\(waited)")
        #expect(LockHarness.now() - started >= 1, "the wait lasted wait_ms")
        let sets = try Self.calls("set", observer) - setsBefore
        #expect(sets >= 2 && sets <= 13, "a 1 s wait with pollMilliseconds 100 tries about 10 times, no spinning (\(sets) SETs)")

        let other = plugin.acquire("fetch/example.com/m@v1.0.1", waitMs: 0)
        #expect(other.status == ATH_OK, "another key is another lock")
        #expect(plugin.release(other.handle) == ATH_OK)
        let second = try LockPlugin(path: Self.library, config: config)
        #expect(second.acquire(key, waitMs: 0).status == ATH_BUSY, "another instance (another athens) is excluded too")

        let waiter = Background { second.acquire(key, leaseMs: 60_000, waitMs: 60_000) }
        #expect(waitUntil { clientsIn("blpop", observer) == 1 }, "the waiter blocks in BLPOP, it does not poll")
        #expect(waiter.result(timeout: 0.2) == nil, "still waiting while the first holds it")
        #expect(plugin.refresh(first.handle) == ATH_OK)
        let released = LockHarness.now()
        #expect(plugin.release(first.handle) == ATH_OK)
        let got = try #require(waiter.result(timeout: 30), "the waiter never got the lock")
        #expect(got.status == ATH_OK && got.handle != 0, "\(got)")
        #expect(LockHarness.now() - released < 5, "a release wakes the waiter (its own poll is 10 s)")
        #expect(plugin.acquire(key, waitMs: 0).status == ATH_BUSY, "now the second instance holds it")
        #expect(second.release(got.handle) == ATH_OK)
        #expect(try observer.command(["EXISTS", "athens:lock:" + key]) == .integer(0), "release deletes the key")
        #expect(plugin.release(first.handle) == ATH_NOT_FOUND, "a released handle is gone")
        #expect(plugin.refresh(987_654) == ATH_NOT_FOUND)
        #expect(plugin.acquire("", waitMs: 0).status == ATH_INVALID)
        #expect(plugin.acquire("k", leaseMs: 0, waitMs: 0).status == ATH_INVALID)
        #expect(plugin.acquire("k", leaseMs: 100_000_000, waitMs: 0).status == ATH_INVALID, "a lease over 24 h")
        #expect(plugin.acquire([UInt8](repeating: 0x61, count: Int(ATH_LOCK_KEY_MAX) + 1), waitMs: 0).status == ATH_INVALID)
    }

    @Test("waiters hold at most poolSize connections; every one is closed when the instance is destroyed")
    func connectionsAreBoundedAndFreed() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let observer = try server.client(poolSize: 1)
        do {
            let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url(), ["poolSize": 3, "pollMilliseconds": 50]))
            let held = plugin.acquire("k", leaseMs: 60_000, waitMs: 0)
            try #require(held.status == ATH_OK)
            let waiters = (0..<8).map { _ in
                Background { () -> ath_status in
                    let got = plugin.acquire("k", leaseMs: 60_000, waitMs: 60_000)
                    return got.status == ATH_OK ? plugin.release(got.handle) : got.status
                }
            }
            #expect(waitUntil { clientsIn("blpop", observer) >= 1 })
            #expect(try Self.otherClients(observer) <= 3, "never more connections than poolSize")
            #expect(plugin.release(held.handle) == ATH_OK)
            for waiter in waiters { #expect(waiter.result(timeout: 60) == ATH_OK, "each waiter got the lock in turn and released it") }
            #expect(try Self.otherClients(observer) <= 3)
        }
        #expect(waitUntil { (try? Self.otherClients(observer)) == 0 }, "destroy closes the pool")
    }

    @Test("a holder process killed with SIGKILL loses the lock when its lease ends, not before")
    func killedHolderLeaseExpires() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let config = Self.config(server.url())
        let plugin = try LockPlugin(path: Self.library, config: config)
        let child = try ChildProcess(try LockHarness.holder.get(), [Self.library, config, "fetch/example.com/m@v1.0.0", "3000"])
        defer { child.stop() }
        let line = child.firstLine(timeout: 60)
        let heldAt = LockHarness.now()
        try #require(line == "held \(child.process.processIdentifier)", "\(line ?? "no line"): \(child.stderr)")
        kill(child.process.processIdentifier, SIGKILL)
        #expect(plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 0).status == ATH_BUSY, "Redis cannot tell the holder died")
        let got = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 60_000)
        let waited = LockHarness.now() - heldAt
        #expect(got.status == ATH_OK, "\(got)")
        #expect(waited >= 2.0, "freed only when the 3 s lease ran out (\(waited) s)")
        #expect(waited < 3 + 5, "freed within the lease plus a margin (\(waited) s)")
        #expect(plugin.release(got.handle) == ATH_OK)
    }

    @Test("processes incrementing one counter file under the lock lose no increment (3 processes x 60 cycles)")
    func mutualExclusionAcrossProcesses() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let total = try LockHarness.countUnderLock(library: Self.library, config: Self.config(server.url()), processes: 3, cycles: 60)
        #expect(total == 180, "increments were lost: the processes were not excluded")
    }

    @Test("PluginKit and RedisLock read nothing of ath_host and ath_call past their struct_size (in a child)")
    func shortHostStructs() throws {
        let server = try RedisServer()
        defer { server.stop() }
        try LockHarness.expectShortStructsWork(library: Self.library, config: Self.config(server.url()), leaseMs: 1000)
    }

    @Test("refresh of a lock whose lease ran out is ATH_NOT_FOUND and leaves the new holder's lock as it was")
    func refreshAfterTheLeaseWasLost() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let observer = try server.client(poolSize: 1)
        let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url()))
        let lost = plugin.acquire("m@v1", leaseMs: 200, waitMs: 0)
        try #require(lost.status == ATH_OK)
        #expect(plugin.refresh(lost.handle, leaseMs: 200) == ATH_OK, "held: the refresh extends it")
        // The holder stops refreshing; another takes the lock as soon as the lease ends (its wait is bounded by the PTTL).
        let next = plugin.acquire("m@v1", leaseMs: 60_000, waitMs: 30_000)
        try #require(next.status == ATH_OK, "\(next)")
        let before = try #require(try observer.command(["GET", "athens:lock:m@v1"]).string)

        let refreshed = plugin.refreshWithMessage(lost.handle, leaseMs: 600_000)
        #expect(refreshed.status == ATH_NOT_FOUND, "\(refreshed)")
        #expect(refreshed.message.contains("lost"), "\(refreshed.message)")
        let ttl = try #require(try observer.command(["PTTL", "athens:lock:m@v1"]).integer)
        #expect(ttl > 0 && ttl <= 60_000, "the new holder's lease was not extended (\(ttl) ms)")
        #expect(try observer.command(["GET", "athens:lock:m@v1"]).string == before, "nor replaced")
        #expect(plugin.release(lost.handle) == ATH_NOT_FOUND, "releasing the lost handle deletes nothing")
        #expect(plugin.acquire("m@v1", waitMs: 0).status == ATH_BUSY, "the new holder still holds it")

        #expect(plugin.refresh(next.handle, leaseMs: 120_000) == ATH_OK)
        let extended = try #require(try observer.command(["PTTL", "athens:lock:m@v1"]).integer)
        #expect(extended > 60_000, "a holder's refresh extends its own lock (\(extended) ms)")
        #expect(plugin.release(next.handle) == ATH_OK)
    }

    @Test("a wait ends at the call's deadline (ATH_TIMEOUT) and promptly when the call is cancelled (ATH_CANCELLED)")
    func deadlineAndCancellation() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let observer = try server.client(poolSize: 1)
        let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url()))
        let held = plugin.acquire("k", leaseMs: 60_000, waitMs: 0)
        try #require(held.status == ATH_OK)
        var started = LockHarness.now()
        let timedOut = plugin.acquire("k", waitMs: 60_000, call: LockPlugin.Call(deadline: LockHarness.deadline(after: 0.3)))
        #expect(timedOut.status == ATH_TIMEOUT, "\(timedOut)")
        #expect(timedOut.message.contains("deadline"), "\(timedOut.message)")
        #expect(LockHarness.now() - started >= 0.3 && LockHarness.now() - started < 10)

        let call = LockPlugin.Call()
        let waiter = Background { plugin.acquire("k", waitMs: 60_000, call: call) }
        #expect(waitUntil { clientsIn("blpop", observer) == 1 })
        #expect(waiter.result(timeout: 0.2) == nil)
        started = LockHarness.now()
        call.cancel()
        let cancelled = try #require(waiter.result(timeout: 30))
        #expect(cancelled.status == ATH_CANCELLED, "\(cancelled)")
        #expect(LockHarness.now() - started < 2, "noticed after the current BLPOP (pollMilliseconds 100)")

        let already = LockPlugin.Call()
        already.cancel()
        #expect(plugin.acquire("free", waitMs: 0, call: already).status == ATH_CANCELLED)
        #expect(try observer.command(["EXISTS", "athens:lock:free"]) == .integer(0), "a cancelled call takes no lock")
        #expect(plugin.release(held.handle) == ATH_OK)
    }
}
