import Foundation
import PluginABI
import RedisClient
import Testing

/// RedisLock's side of the connection: Redis down, silent or back; AUTH and SELECT; the unix socket; key prefixes;
/// and hostile keys, which must stay opaque, distinct bytes.
@Suite("RedisLock plugin: connection, credentials and keys", .blockingBodies, .serialized)
struct RedisLockConnectionTests {
    static var library: String { RedisLockPluginTests.library }
    static func config(_ url: String, _ extra: [String: Any] = [:]) -> String { RedisLockPluginTests.config(url, extra) }

    @Test("Redis stopped: ATH_UNAVAILABLE within the timeout, naming the endpoint, logged once; back: it works again")
    func redisDownAndBack() throws {
        var server = try RedisServer(password: "down-Pa55")
        defer { server.stop() }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url(), ["commandTimeoutMilliseconds": 2000]))
        let held = plugin.acquire("k", leaseMs: 60_000, waitMs: 0)
        try #require(held.status == ATH_OK)
        let observer = try server.client(poolSize: 1)
        let waiter = Background { plugin.acquire("k", waitMs: 60_000) }
        #expect(waitUntil { clientsIn("blpop", observer) == 1 })
        server.kill9()
        let cut = try #require(waiter.result(timeout: 30), "a waiter whose Redis went away kept waiting")
        #expect(cut.status == ATH_UNAVAILABLE, "\(cut)")

        for _ in 0..<3 {
            let started = LockHarness.now()
            let down = plugin.acquire("k2", waitMs: 60_000)
            #expect(down.status == ATH_UNAVAILABLE, "\(down)")
            #expect(down.message.contains("redis unavailable") && down.message.contains("127.0.0.1:\(server.port)"), "\(down.message)")
            #expect(!down.message.contains("Pa55"))
            #expect(LockHarness.now() - started < 5, "a refused connection fails at once, not after wait_ms")
        }
        #expect(plugin.refresh(held.handle) == ATH_UNAVAILABLE)
        #expect(plugin.releaseWithMessage(held.handle).message.contains("frees itself when its lease ends"))
        #expect(plugin.release(held.handle) == ATH_NOT_FOUND, "release freed the handle although it failed")
        let warnings = plugin.logged.lines.filter { $0.hasPrefix("\(ATH_LOG_WARNING.rawValue) RedisLock: redis://127.0.0.1:\(server.port)/0 unusable") }
        #expect(warnings.count == 1, "one warning per outage, not one per call: \(plugin.logged.lines)")

        server = try server.restart()
        let back = plugin.acquire("k2", waitMs: 0)
        #expect(back.status == ATH_OK, "\(back)")
        #expect(plugin.release(back.handle) == ATH_OK)
        #expect(plugin.logged.lines.last == "\(ATH_LOG_INFO.rawValue) RedisLock: redis://127.0.0.1:\(server.port)/0 reachable again", "\(plugin.logged.lines)")
        #expect(!plugin.logged.lines.contains { $0.contains("Pa55") }, "no password in the log")
    }

    @Test("a Redis that accepts and never answers: ATH_UNAVAILABLE after the command timeout, ATH_TIMEOUT at an earlier deadline")
    func silentRedis() throws {
        let fake = try FakeRedis(.silent)
        defer { fake.stop() }
        let started = LockHarness.now()
        // Start-up is not refused (Redis may come later): it logs the failed PING and goes on.
        let plugin = try LockPlugin(path: Self.library, config: Self.config("redis://127.0.0.1:\(fake.port)",
                                                                           ["connectTimeoutMilliseconds": 500, "commandTimeoutMilliseconds": 1000]))
        #expect(LockHarness.now() - started < 5)
        #expect(plugin.logged.lines.count == 1 && plugin.logged.lines[0].contains("unusable"), "\(plugin.logged.lines)")
        var t0 = LockHarness.now()
        let slow = plugin.acquire("k", waitMs: 60_000)
        #expect(slow.status == ATH_UNAVAILABLE, "\(slow)")
        #expect(slow.message.contains("redis timeout"), "\(slow.message)")
        #expect(LockHarness.now() - t0 >= 1 && LockHarness.now() - t0 < 6, "bounded by commandTimeoutMilliseconds")
        // A 60 s command timeout: only the call's deadline can end this call within the bound.
        let patient = try LockPlugin(path: Self.library, config: Self.config("redis://127.0.0.1:\(fake.port)",
                                                                            ["connectTimeoutMilliseconds": 500, "commandTimeoutMilliseconds": 60_000]))
        t0 = LockHarness.now()
        let late = patient.acquire("k", waitMs: 60_000, call: LockPlugin.Call(deadline: LockHarness.deadline(after: 0.3)))
        #expect(late.status == ATH_TIMEOUT, "\(late)")
        #expect(LockHarness.now() - t0 >= 0.3 && LockHarness.now() - t0 < 10, "the call's deadline bounds the round trip")
    }

    @Test("AUTH: the right password works; a wrong or missing one stops start-up with a clear error that never holds a password")
    func authentication() throws {
        let password = "s3cret-Pa55/w%rd"
        let server = try RedisServer(password: password)
        defer { server.stop() }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url()))
        let held = plugin.acquire("k", waitMs: 0)
        #expect(held.status == ATH_OK, "\(held)")
        #expect(plugin.release(held.handle) == ATH_OK)
        let unix = try LockPlugin(path: Self.library, config: Self.config(
            "unix://\(server.socketPath)?password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"))
        #expect(unix.acquire("k", waitMs: 0).status == ATH_OK, "the password in the unix form")

        for (url, expected) in [("redis://:wrong-Pa55@127.0.0.1:\(server.port)/0", "AUTH failed"),
                                ("redis://127.0.0.1:\(server.port)/0", "NOAUTH")] {
            let error = #expect(throws: LockPlugin.LockFailure.self) { _ = try LockPlugin(path: Self.library, config: Self.config(url)) }
            #expect(error?.status == ATH_INVALID)
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("redis://127.0.0.1:\(server.port)/0") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("wrong-Pa55") == false && error?.message.contains("s3cret") == false, "\(error?.message ?? "")")
        }
        #expect(!(plugin.logged.lines + unix.logged.lines).contains { $0.contains("s3cret") || $0.contains("Pa55") })
    }

    @Test("SELECT: locks in different databases are apart; the keys are in the configured one; a bad db stops start-up")
    func selectDatabase() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let three = try LockPlugin(path: Self.library, config: Self.config(server.url(db: 3)))
        let five = try LockPlugin(path: Self.library, config: Self.config(server.url(db: 5)))
        let a = three.acquire("k", leaseMs: 60_000, waitMs: 0), b = five.acquire("k", leaseMs: 60_000, waitMs: 0)
        #expect(a.status == ATH_OK && b.status == ATH_OK, "\(a) \(b)")
        #expect(three.acquire("k", waitMs: 0).status == ATH_BUSY)
        #expect(try server.client(db: 3).command(["EXISTS", "athens:lock:k"]) == .integer(1))
        #expect(try server.client(db: 0).command(["EXISTS", "athens:lock:k"]) == .integer(0))
        #expect(three.release(a.handle) == ATH_OK && five.release(b.handle) == ATH_OK)
        let error = #expect(throws: LockPlugin.LockFailure.self) { _ = try LockPlugin(path: Self.library, config: Self.config(server.url(db: 99))) }
        #expect(error?.status == ATH_INVALID && error?.message.contains("SELECT 99 failed") == true, "\(error?.message ?? "")")
    }

    @Test("the unix socket form: unix:///path?db=N excludes the TCP instances on the same db")
    func unixSocket() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let unix = try LockPlugin(path: Self.library, config: Self.config("unix://\(server.socketPath)?db=2"))
        let tcp = try LockPlugin(path: Self.library, config: Self.config(server.url(db: 2)))
        let held = unix.acquire("k", waitMs: 0)
        #expect(held.status == ATH_OK, "\(held)")
        #expect(tcp.acquire("k", waitMs: 0).status == ATH_BUSY)
        #expect(try server.client(db: 2, unix: true).command(["EXISTS", "athens:lock:k"]) == .integer(1))
        #expect(unix.release(held.handle) == ATH_OK)
        #expect(tcp.acquire("k", waitMs: 0).status == ATH_OK)
        let missing = try LockPlugin(path: Self.library, config: Self.config("unix://\(server.directory)/no-such.sock"))
        let down = missing.acquire("k", waitMs: 0)
        #expect(down.status == ATH_UNAVAILABLE && down.message.contains("no-such.sock"), "\(down)")
    }

    @Test("keyPrefix namespaces the keys: two deployments on one Redis do not block each other")
    func keyPrefixes() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let a = try LockPlugin(path: Self.library, config: Self.config(server.url(), ["keyPrefix": "athens:deploy-a:"]))
        let b = try LockPlugin(path: Self.library, config: Self.config(server.url(), ["keyPrefix": "athens:deploy-b:"]))
        let x = a.acquire("m@v1", waitMs: 0), y = b.acquire("m@v1", waitMs: 0)
        #expect(x.status == ATH_OK && y.status == ATH_OK)
        let keys = try server.client().command(["KEYS", "*"])
        #expect(keys == .array([.bulk(Array("athens:deploy-a:lock:m@v1".utf8)), .bulk(Array("athens:deploy-b:lock:m@v1".utf8))])
                || keys == .array([.bulk(Array("athens:deploy-b:lock:m@v1".utf8)), .bulk(Array("athens:deploy-a:lock:m@v1".utf8))]), "\(keys)")
        #expect(a.release(x.handle) == ATH_OK && b.release(y.handle) == ATH_OK)
    }

    @Test("hostile keys are opaque bytes: one printable Redis key each, distinct from their neighbours", arguments: [
        Array("../x".utf8), Array("*1\r\n$4\r\nPING\r\n".utf8), Array("a b".utf8), Array("%41".utf8), Array("A".utf8),
[UInt8](repeating: 0x25, count: Int(ATH_LOCK_KEY_MAX)),
        [UInt8](repeating: 0xFF, count: Int(ATH_LOCK_KEY_MAX)), Array(1...31) + [0x7F, 0x80, 0xFE, 0xFF], Array("\u{202E}exe.txt".utf8),
        Array("lock:x".utf8), Array("wake:x".utf8),
    ])
    func hostileKeys(key: [UInt8]) throws {
        let server = try RedisServer()
        defer { server.stop() }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(server.url()))
        let held = plugin.acquire(key, waitMs: 0)
        try #require(held.status == ATH_OK, "\(held)")
        #expect(plugin.acquire(key, waitMs: 0).status == ATH_BUSY, "the same bytes are the same lock")
        let last = key.last! ^ 0x02
        let neighbour = key.dropLast() + [last == 0 ? 0x41 : last]  // one byte off, same length
        let other = plugin.acquire(Array(neighbour), waitMs: 0)
        #expect(other.status == ATH_OK, "other bytes are another lock")
        // "%41" and "A" (the same text after a careless decoding) are two locks.
        let twin = plugin.acquire(key == Array("A".utf8) ? Array("%41".utf8) : Array("A".utf8), waitMs: 0)
        #expect(twin.status == ATH_OK)
        guard case .array(let keys?) = try server.client().command(["KEYS", "*"]) else { Issue.record("KEYS is not an array"); return }
        #expect(keys.count == 3, "\(keys)")
        for case .bulk(let name?) in keys {
            #expect(name.starts(with: Array("athens:lock:".utf8)), "every key under the prefix")
            #expect(name.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "printable: \(String(decoding: name, as: UTF8.self))")
        }
        for handle in [held.handle, other.handle, twin.handle] { #expect(plugin.release(handle) == ATH_OK) }
        #expect(try server.client().command(["DBSIZE"]) == .integer(3), "only the three wake-up lists are left")
    }
}
