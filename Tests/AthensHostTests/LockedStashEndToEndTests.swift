import Foundation
import Testing
@testable import HostSupport

/// Two athens processes with FileLock on one FileStorage root and one logging upstream: a stampede split between them
/// fetches once; the lock holder killed mid-fetch leaves the other to complete. The upstream answer is held with the
/// fixture's `hold` mode (a sentinel file), so every overlap is made on purpose and observed, never slept for.
@Suite("stash: two athens processes, one lock, one fetch", .blockingBodies, .serialized)
final class LockedStashEndToEndTests {
    let fixture: FixtureUpstream
    var work: String { fixture.work }
    var tree: String { fixture.tree }
    var upstream: FakeUpstream { fixture.upstream }
    var hold: String { tree + "/.hold" }

    init() throws { fixture = try FixtureUpstream("locked-stash") }

    /// An athens on the shared storage root and lock directory, its fetcher behind the upstream's `hold` mode.
    func athens(_ name: String) throws -> AthensServer {
        try AthensServer(manifest: """
        {"spoolDirectory": "\(work)", "accessLog": false,
         "server": {"maxConnections": 2000, "maxConnectionsPerClient": 1000},
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/storage"}},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)/_fault/hold:.zip", "timeoutSeconds": 60, "zipTimeoutSeconds": 120}}],
         "stash": {"timeoutSeconds": 120, "wrappers": [
            {"type": "singleflight", "lock": {"plugin": "FileLock", "config": {"directory": "\(work)/locks"}, "leaseSeconds": 5}},
            {"type": "pool", "workers": 4}]}}
        """, directory: work)
    }

    func zipFetches(_ module: String) -> Int { upstream.requests.filter { $0.contains(module + "/@v/") && $0.hasSuffix(".zip") }.count }

    func stashRunning(_ server: AthensServer) -> Double {
        (try? server.metrics()).flatMap { metric($0, "athens_pool_running", labels: #"pool="stash""#) } ?? 0
    }

    /// `count` GETs of `path` at once, one connection each; the answers (nil: none came) once all have ended.
    final class Clients: @unchecked Sendable {
        private let lock = NSLock()
        private var answers: [(status: Int, body: [UInt8])?] = []
        private let group = DispatchGroup()

        init(_ count: Int, path: String, port: (Int) -> UInt16) {
            for index in 0..<count {
                let port = port(index)
                group.enter()
                Thread {
                    var answer: (status: Int, body: [UInt8])?
                    if let client = try? RawClient(port: port) {
                        client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                        answer = client.readResponse(timeout: 120).map { ($0.status, $0.body) }
                    }
                    self.lock.withLock { self.answers.append(answer) }
                    self.group.leave()
                }.start()
            }
        }

        func wait() -> [(status: Int, body: [UInt8])?]? {
            guard group.wait(timeout: .now() + 180) == .success else { return nil }
            return lock.withLock { answers }
        }
    }

    @Test("a 200-client stampede for one .zip split between two processes: exactly one upstream .zip fetch, 200 identical bodies")
    func stampedeFetchesOnce() throws {
        let (a, b) = (try athens("a"), try athens("b"))
        defer { a.stop(); b.stop() }
        let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/m/@v/v1.0.0.zip")))
        FileManager.default.createFile(atPath: hold, contents: nil)
        let clients = Clients(200, path: "/example.com/m/@v/v1.0.0.zip") { $0 % 2 == 0 ? a.port : b.port }
        // One process is fetching (held upstream) while the other's flight waits for the lock on a stash worker.
        #expect(waitUntil(timeout: 60) { zipFetches("example.com/m") == 1 && stashRunning(a) >= 1 && stashRunning(b) >= 1 })
        try FileManager.default.removeItem(atPath: hold)
        let answers = try #require(clients.wait())
        #expect(answers.count == 200)
        #expect(answers.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answers.map { $0?.status ?? 0 })")
        #expect(zipFetches("example.com/m") == 1)
        // Both served it; neither fell back to local single-flight.
        for server in [a, b] {
            let text = try server.metrics()
            #expect(metric(text, "athens_lock_fallback_total", labels: #"lock="FileLock",cause="unavailable""#) == nil)
        }
    }

    @Test("kill -9 of the lock holder mid-fetch: the other process gets the lock and completes the fetch within lease + margin")
    func holderKilledMidFetch() throws {
        let (a, b) = (try athens("a"), try athens("b"))
        defer { a.stop(); b.stop() }
        let module = "example.com/dep"
        let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tree + "/\(module)/@v/v1.0.0.zip")))
        FileManager.default.createFile(atPath: hold, contents: nil)
        // A asks first, so A holds the lock while the upstream holds its .zip answer.
        let toA = Clients(10, path: "/\(module)/@v/v1.0.0.zip") { _ in a.port }
        #expect(waitUntil(timeout: 60) { zipFetches(module) == 1 })
        let toB = Clients(10, path: "/\(module)/@v/v1.0.0.zip") { _ in b.port }
        #expect(waitUntil(timeout: 60) { stashRunning(b) >= 1 })
        let killed = MonotonicClock.now()
        kill(a.process.process.processIdentifier, SIGKILL)
        try FileManager.default.removeItem(atPath: hold)
        let answersB = try #require(toB.wait())
        let elapsed = MonotonicClock.now() - killed
        #expect(answersB.count == 10 && answersB.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answersB.map { $0?.status ?? 0 })")
        // FileLock frees a dead holder's lock at once; the bound is the lease (5 s) plus a loaded machine's margin.
        #expect(elapsed < 5 + 25, "took \(elapsed) s")
        #expect(zipFetches(module) == 2)
        // A's clients lost their connection; none got a partial zip as a 200.
        let answersA = try #require(toA.wait())
        #expect(answersA.allSatisfy { $0 == nil || $0?.status != 200 || $0?.body == expected })
        // Stored complete: a fresh process serves it from storage without asking upstream.
        let c = try athens("c")
        defer { c.stop() }
        let again = try c.get("/\(module)/@v/v1.0.0.zip")
        #expect(again.status == 200 && again.body == expected)
        #expect(zipFetches(module) == 2)
    }

    @Test("the lock directory gone at run time: requests still succeed, the fallback is logged once and counted in /metrics")
    func fallbackWhenTheLockFails() throws {
        let a = try athens("a")
        defer { a.stop() }
        // FileLock made the (empty) directory at start-up; without it every acquire fails with ATH_UNAVAILABLE.
        try FileManager.default.removeItem(atPath: work + "/locks")
        for module in ["example.com/m", "example.com/dep"] {
            let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tree + "/\(module)/@v/v1.0.0.zip")))
            let answer = try a.get("/\(module)/@v/v1.0.0.zip", timeout: 60)
            #expect(answer.status == 200 && answer.body == expected)
        }
        let text = try a.metrics()
        #expect(metric(text, "athens_lock_fallback_total", labels: #"lock="FileLock",cause="unavailable""#) == 2)
        #expect(a.process.stderr.components(separatedBy: "lock backend failed").count == 2, "\(a.process.stderr)")
    }

    @Test("a bad lock stops start-up with one line naming the key", arguments: [
        (#"{"plugin": "MemoryStorage"}"#, "stash.wrappers.lock.plugin:"),
        (#"{"plugin": "NoSuchLock"}"#, "libNoSuchLock.so: cannot load"),
        (#"{"plugin": "FileLock"}"#, "stash.wrappers.lock.config: config.directory: required"),
        (#"{"plugin": "FileLock", "config": {"directory": "/dev/null/locks"}}"#, "stash.wrappers.lock.config: config.directory /dev/null/locks"),
    ])
    func badLockStart(lock: String, message: String) throws {
        let result = try AthensCommandTests.start(manifest: """
        {"pluginDirectory": "\(TestSupport.productsDirectory)", "storage": {"plugin": "MemoryStorage"},
         "stash": {"wrappers": [{"type": "singleflight", "lock": \(lock)}]}}
        """)
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(message), "stderr: \(result.stderr)")
        if message.hasPrefix("stash.wrappers.lock.plugin") { #expect(result.stderr.contains("is a storage plugin")) }
    }
}
