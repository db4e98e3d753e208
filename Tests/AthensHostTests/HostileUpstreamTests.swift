import Foundation
import Testing

/// Tests/Fixtures/hostile_upstream.py: endless `.info`s, gzip-bomb `.mod`s, ordinary modules otherwise, and
/// optionally a socket that accepts and never answers.
final class HostileUpstream {
    let process: ChildProcess
    let url: String
    /// "http://127.0.0.1:N" of the stalling socket, when asked for.
    let stallURL: String?

    init(stallPort: Bool = false) throws {
        process = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/hostile_upstream.py", "--port", "0"]
                                   + (stallPort ? ["--stall-port"] : []))
        // Building the bomb takes a few seconds of CPU before the first line.
        guard let line = process.firstLine(timeout: 120), line.hasPrefix("port "), let port = UInt16(line.dropFirst(5)) else {
            throw TestFailure("hostile upstream did not start: \(process.stderr)")
        }
        url = "http://127.0.0.1:\(port)"
        if stallPort {
            guard let line = process.firstLine(), line.hasPrefix("stall "), let port = UInt16(line.dropFirst(6)) else {
                throw TestFailure("hostile upstream has no stall port: \(process.stderr)")
            }
            stallURL = "http://127.0.0.1:\(port)"
        } else {
            stallURL = nil
        }
    }

    func stop() { process.stop() }
    deinit { stop() }
}

/// VmRSS and VmHWM of a process, in KiB.
func memory(of pid: Int32) -> (rss: Int, hwm: Int) {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Int {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return -1 }
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]) ?? -1
    }
    return (field("VmRSS"), field("VmHWM"))
}

/// Samples a process's RSS every 20 ms until stopped; keeps the peak.
final class RSSSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var highest = 0
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32) {
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                let now = memory(of: pid).rss
                lock.withLock { highest = max(highest, now) }
                usleep(20_000)   // the sampling interval, not synchronisation
            }
            done.signal()
        }
    }

    /// Stops sampling; the highest RSS seen, in KiB.
    func stop() -> Int {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { highest }
    }
}

/// Requests sent from their own threads at once; each result is (status or -1, seconds taken).
func concurrentGets(port: UInt16, _ paths: [String], timeout: Double) -> [(path: String, status: Int, seconds: Double)] {
    final class Results: @unchecked Sendable {
        let lock = NSLock()
        var items: [(path: String, status: Int, seconds: Double)] = []
    }
    let results = Results()
    let group = DispatchGroup()
    for path in paths {
        group.enter()
        Thread.detachNewThread {
            let start = Date()
            var status = -1
            if let client = try? RawClient(port: port) {
                client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                status = client.readResponse(timeout: timeout)?.status ?? -1
            }
            results.lock.withLock { results.items.append((path, status, Date().timeIntervalSince(start))) }
            group.leave()
        }
    }
    group.wait()
    return results.items
}

@Suite("Hostile upstreams: bounded time and memory", .blockingBodies, .serialized)
struct HostileUpstreamTests {
    @Test("16 endless .info bodies and 16 gzip-bomb .mods at once: each 502 in time, a cold fetch meanwhile is fast, RSS bounded")
    func hostileBodies() throws {
        let work = TestSupport.makeTemporaryDirectory("hostile")
        defer { TestSupport.removeDirectory(work) }
        let upstream = try HostileUpstream()
        let athens = try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage", "config": {}},
             "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 5, "zipTimeoutSeconds": 30}}]}
            """, directory: work)
        let pid = athens.process.process.processIdentifier
        // Warm up: plugin loaded, first connection made; the baseline is what a served miss leaves.
        #expect(try athens.get("/example.com/warm/@v/v1.0.0.zip").status == 200)
        let baseline = memory(of: pid).rss

        let sampler = RSSSampler(pid: pid)
        let hostile = (0..<16).map { "/example.com/endless\($0)/@v/v1.0.0.info" } + (0..<16).map { "/example.com/bomb\($0)/@v/v1.0.0.mod" }
        nonisolated(unsafe) var hostileResults: [(path: String, status: Int, seconds: Double)] = []
        let hostileDone = DispatchSemaphore(value: 0)
        let port = athens.port
        Thread.detachNewThread {
            hostileResults = concurrentGets(port: port, hostile, timeout: 120)
            hostileDone.signal()
        }
        // An unrelated cold fetch while they run.
        let coldStart = Date()
        let cold = (try? athens.get("/example.com/cold/@v/v1.0.0.zip", timeout: 120))?.status ?? -1
        let coldSeconds = Date().timeIntervalSince(coldStart)
        hostileDone.wait()
        let peak = sampler.stop()
        // Freed afterwards: poll (allocators return memory lazily) for the RSS to come back near the baseline.
        var after = memory(of: pid).rss
        _ = waitUntil(timeout: 15) {
            after = memory(of: pid).rss
            return after <= baseline + 20 << 10
        }
        let hwm = memory(of: pid).hwm
        let slowest = hostileResults.map(\.seconds).max() ?? -1
        print("hostile bodies: baseline \(baseline >> 10) MiB, peak \(peak >> 10) MiB, VmHWM \(hwm >> 10) MiB, after \(after >> 10) MiB, "
              + "slowest hostile \(String(format: "%.2f", slowest)) s, cold fetch \(cold) in \(String(format: "%.2f", coldSeconds)) s, "
              + "hostile statuses \(hostileResults.map(\.status).sorted())")

        #expect(cold == 200)
        #expect(coldSeconds < 2)
        #expect(hostileResults.count == 32)
        for result in hostileResults {
            #expect(result.status == 502, "\(result.path): \(result.status)")
            // Well within the 5 s idle timeout: the limit and the encoding decide as the bytes arrive.
            #expect(result.seconds < 5, "\(result.path) took \(result.seconds) s")
        }
        #expect(peak < 100 << 10, "peak RSS \(peak >> 10) MiB")
        #expect(hwm < 100 << 10, "VmHWM \(hwm >> 10) MiB")
        #expect(after <= baseline + 20 << 10, "RSS \(after >> 10) MiB after, baseline \(baseline >> 10) MiB")
    }

    @Test("40 lookups to a checksum database that never answers do not delay an unrelated cold module fetch")
    func stalledSumDB() throws {
        let work = TestSupport.makeTemporaryDirectory("stalled-sumdb")
        defer { TestSupport.removeDirectory(work) }
        let upstream = try HostileUpstream(stallPort: true)
        let athens = try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage", "config": {}},
             "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 5}}],
             "sumdbs": [{"name": "sum.golang.org", "url": "\(upstream.stallURL!)"}]}
            """, directory: work)
        defer { athens.stop() }
        // Lookups from their own threads; not waited for (they end at the lookup timeout, or when athens stops).
        final class Statuses: @unchecked Sendable {
            let lock = NSLock()
            var items: [Int] = []
            var count: Int { lock.withLock { items.count } }
        }
        let statuses = Statuses()
        let port = athens.port
        for index in 0..<40 {
            Thread.detachNewThread {
                var status = -1
                if let client = try? RawClient(port: port) {
                    client.send("GET /sumdb/sum.golang.org/lookup/example.com/m\(index)@v1.0.0 HTTP/1.1\r\nHost: x\r\n\r\n")
                    status = client.readResponse(timeout: 120)?.status ?? -1
                }
                statuses.lock.withLock { statuses.items.append(status) }
            }
        }
        // The overflow beyond the lookup pool and its queue is refused at once: wait for those 503s, so the
        // others are known to be holding the pool. Bounded well below the lookup timeout (30 s), so that
        // where lookups share the download pool (the old design) they still hold it during the cold fetch.
        _ = waitUntil(timeout: 10) { statuses.lock.withLock { statuses.items.filter { $0 == 503 }.count } >= 20 }
        let refused = statuses.lock.withLock { statuses.items.filter { $0 == 503 }.count }
        let start = Date()
        let cold = try athens.get("/example.com/cold/@v/v1.0.0.zip", timeout: 60)
        let seconds = Date().timeIntervalSince(start)
        print("stalled sumdb: \(refused) of 40 lookups refused 503, cold fetch \(cold.status) in \(String(format: "%.2f", seconds)) s")
        // The lookup pool (4 workers, queue 16) holds at most 20; the rest are refused.
        #expect((20...24).contains(refused), "\(refused) refused")
        #expect(cold.status == 200)
        #expect(seconds < 2)
    }
}
