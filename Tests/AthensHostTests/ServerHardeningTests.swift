import Foundation
import Testing
@testable import AthensHost

/// What a reload frees, connection limits that one client cannot monopolise, shutdown order and the
/// small protocol rules of issue 10, against the built athens.
@Suite("server hardening: reload frees, connection caps, shutdown", .serialized)
final class ServerHardeningTests {
    let work = TestSupport.makeTemporaryDirectory("hardening")
    let tree: String
    let upstream: FakeUpstream
    let cFetcher: String

    init() throws {
        tree = work + "/tree"
        guard try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_fixture_proxy.py", tree]).status == 0 else {
            throw TestFailure("fixture tree")
        }
        upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        cFetcher = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
    }

    deinit {
        upstream.stop()
        TestSupport.removeDirectory(work)
    }

    /// Open descriptors and resident bytes of a process, from /proc.
    static func footprint(_ pid: Int32) -> (fds: Int, rssKiB: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? -1
        return (fds, rss)
    }

    /// Polls `condition` until it holds or `seconds` pass.
    static func eventually(_ seconds: Double = 30, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test("100 SIGHUPs under load, with misses between them, free what they replaced: fds and RSS back within 10 % of the first reload's")
    func reloadFreesWhatItReplaced() throws {
        let manifestPath = work + "/reload.json"
        // MemoryStorage: every assembly starts empty, so each one serves misses and fills its own storage and
        // memory cache, which a leaked assembly would keep for good.
        try #"""
        {"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "spoolDirectory": "\#(work)",
         "accessLog": false, "storage": {"plugin": "MemoryStorage"},
         "download": {"workers": 8, "queue": 64},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\#(upstream.url)", "timeoutSeconds": 5}}]}
        """#.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        let process = try ChildProcess(TestSupport.athens, ["--config", manifestPath])
        defer { process.stop() }
        let port = try #require(UInt16(process.firstLine()?.split(separator: ":").last ?? ""))
        let pid = process.process.processIdentifier

        // Load across every reload: hits and misses on one keep-alive connection.
        final class Flag: @unchecked Sendable { let lock = NSLock(); var stop = false; var served = 0; var failed = 0 }
        let flag = Flag()
        let loadDone = DispatchSemaphore(value: 0)
        Thread {
            defer { loadDone.signal() }
            guard let client = try? RawClient(port: port) else { return }
            var i = 0
            while !flag.lock.withLock({ flag.stop }) {
                let path = i % 2 == 0 ? "/example.com/hello/@v/v1.1.0.info" : "/example.com/dep/@v/v1.0.0.mod"
                client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                let status = client.readResponse(timeout: 20)?.status ?? 0
                flag.lock.withLock { if status == 200 { flag.served += 1 } else { flag.failed += 1 } }
                i += 1
            }
        }.start()

        func get(_ path: String) -> Int {
            guard let c = try? RawClient(port: port) else { return 0 }
            c.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.readResponse(timeout: 20)?.status ?? 0
        }
        func reload(_ n: Int) {
            kill(pid, SIGHUP)
            #expect(Self.eventually { Self.occurrences(of: "msg=reloaded", in: process.stderr) >= n }, "reload \(n) not logged")
            // Misses on the fresh assembly: fetched, validated, saved, cached (200), and one the upstream lacks (404).
            for file in ["hello/@v/v1.0.0.zip", "hello/@v/v1.0.0.mod", "app/@v/v1.0.0.zip", "multi/v2/@v/v2.0.0.zip", "m/@v/v1.0.0.info"] {
                #expect(get("/example.com/" + file) == 200)
            }
            #expect(get("/example.com/nowhere/@v/v1.0.0.zip") == 404)
        }

        reload(1)
        // What the first reload leaves once its replaced assembly has gone.
        usleep(500_000)
        let first = Self.footprint(pid)
        for n in 2...100 { reload(n) }
        flag.lock.withLock { flag.stop = true }
        loadDone.wait()
        let within = { (now: (fds: Int, rssKiB: Int)) in
            Double(now.fds) <= Double(first.fds) * 1.1 && Double(now.rssKiB) <= Double(first.rssKiB) * 1.1
        }
        _ = Self.eventually(20) { within(Self.footprint(pid)) }
        let last = Self.footprint(pid)
        print("reload footprint: after the first reload \(first.fds) fds, \(first.rssKiB) KiB; after 100: \(last.fds) fds, \(last.rssKiB) KiB; load served \(flag.served), failed \(flag.failed)")
        #expect(within(last), "after 100 reloads: \(last.fds) fds, \(last.rssKiB) KiB RSS; after the first: \(first.fds) fds, \(first.rssKiB) KiB")
        #expect(flag.failed == 0 && flag.served > 0, "load during reloads: \(flag.served) served, \(flag.failed) failed")
        #expect(process.process.isRunning)
    }
}

@Suite("worker pool frees what it ran")
struct WorkerPoolFreeingTests {
    final class Payload: Sendable {}

    @Test("a finished job, and what it captured, is freed when it returns")
    func finishedJobsAreFreed() {
        let pool = WorkerPool(name: "test", threads: 2, capacity: 4)
        defer { pool.retire() }
        weak var captured: Payload?
        let ran = DispatchSemaphore(value: 0)
        do {
            let payload = Payload()
            captured = payload
            #expect(pool.submit { withExtendedLifetime(payload) {}; ran.signal() })
        }
        #expect(ran.wait(timeout: .now() + 10) == .success)
        #expect(ServerHardeningTests.eventually(10) { captured == nil }, "the pool still holds a finished job")
    }

    @Test("a retired pool ends its threads and is freed; it refuses new jobs")
    func retiredPoolIsFreed() {
        weak var weakPool: WorkerPool?
        let ran = DispatchSemaphore(value: 0)
        do {
            let pool = WorkerPool(name: "test", threads: 3, capacity: 8)
            weakPool = pool
            for _ in 0..<5 { #expect(pool.submit { ran.signal() }) }
            pool.retire()
            #expect(!pool.submit {})
        }
        for _ in 0..<5 { #expect(ran.wait(timeout: .now() + 10) == .success, "queued jobs still run after retire") }
        #expect(ServerHardeningTests.eventually(10) { weakPool == nil }, "a retired pool outlives its work")
    }
}
