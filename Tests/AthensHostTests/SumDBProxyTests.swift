import Foundation
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Testing

/// Collects what a SumDBProxy answers, whether at once or later from its pool.
private final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Response] = []
    func add(_ response: Response) { lock.withLock { items.append(response) } }
    var all: [Response] { lock.withLock { items } }

    final class Keeper: @unchecked Sendable {
        private let lock = NSLock()
        private var proxies: [SumDBProxy] = []
        func keep(_ proxy: SumDBProxy) { lock.withLock { proxies.append(proxy) } }
    }

    /// Waits (polling, bounded) until `count` answers are in.
    func wait(for count: Int, timeout: Double) -> [Response] {
        _ = waitUntil(timeout: timeout) { all.count >= count }
        return all
    }
}

/// Every proxy a test made, kept for the life of the test process: its WorkerPool's threads reference the
/// pool unowned and may start only after a short test has ended.
private let keptProxies = Answers.Keeper()

/// A proxy that outlives the test that made it (see `keptProxies`).
private func makeProxy(_ databases: [(name: String, url: String)], policy: DownloadPolicy = DownloadPolicy(),
                       workers: Int = 4, queue: Int = 16, timeout: Double = 30, idleTimeout: Double = 10) -> SumDBProxy {
    let proxy = SumDBProxy(databases: databases, policy: policy, workers: workers, queue: queue, timeout: timeout, idleTimeout: idleTimeout)
    keptProxies.keep(proxy)
    return proxy
}

private func bodyText(_ response: Response) -> String {
    if case .bytes(let bytes) = response.body { return String(decoding: bytes, as: UTF8.self) }
    return ""
}

@Suite("SumDBProxy: path checks, own pool, bounded answers", .blockingBodies)
struct SumDBProxyTests {
    @Test("traversal, encoded dot-dots, double encoding and foreign shapes are refused before anything is forwarded",
          arguments: [
              ("/sumdb/sum.golang.org/tile/%2e%2e/%2e%2e/etc/passwd", 404),
              ("/sumdb/sum.golang.org/tile/8/0/%2E%2E", 404),
              ("/sumdb/sum.golang.org/tile/8/0/x001/../002", 404),
              ("/sumdb/sum.golang.org/tile/8/0/x001/./002", 404),
              ("/sumdb/sum.golang.org/tile/8/0//001", 404),
              ("/sumdb/sum.golang.org/tile/8/0/%252e%252e/001", 404),
              ("/sumdb/sum.golang.org/tile/8/0/%2f001", 404),
              ("/sumdb/sum.golang.org/tile/8/0/%zz", 400),
              ("/sumdb/sum.golang.org/tile/31/0/001", 404),
              ("/sumdb/sum.golang.org/tile/8/0/x001/234.p/256", 404),
              ("/sumdb/sum.golang.org/tile/8/0/1234", 404),
              ("/sumdb/sum.golang.org/%2e%2e/x", 404),
              ("/sumdb/sum.golang.org/latest/x", 404),
              ("/sumdb/sum.golang.org/latest%2f..%2fx", 404),
              ("/sumdb/sum.golang.org/lookup/example.com/%2e%2e/%2e%2e/x@v1.0.0", 404),
              ("/sumdb/sum.golang.org/lookup/example.com/hello", 400),
              ("/sumdb/sum.golang.org/lookup/example.com/hello@v1.0.0%2f..", 404),
              ("/sumdb/sum.golang.org/lookup/Example.com/hello@v1.0.0", 400),
              ("/sumdb/sum.golang.org/lookup/corp.example/secret@v1.0.0", 403),
              ("/sumdb/sum.golang.org/nonsense", 404),
              ("/sumdb/other.example/latest", 404),
          ])
    func refusedPaths(path: String, status: Int) throws {
        let work = TestSupport.makeTemporaryDirectory("sumdb")
        defer { TestSupport.removeDirectory(work) }
        let upstream = try FakeUpstream(root: work, logPath: work + "/requests.log")
        defer { upstream.stop() }
        let proxy = makeProxy([("sum.golang.org", upstream.url)], policy: DownloadPolicy(noSumPatterns: "corp.example"))
        defer { proxy.retire() }
        let answers = Answers()
        proxy.handle(Substring(path)) { answers.add($0) }
        // Refusals are immediate: nothing was queued.
        let got = answers.all
        #expect(got.count == 1)
        #expect(got.first?.status == status, "\(path): \(got.first.map(bodyText) ?? "no answer")")
        #expect(upstream.requests.isEmpty, "\(path) reached the database as \(upstream.requests)")
    }

    @Test("the database's own path shapes are forwarded exactly")
    func forwardedPaths() throws {
        let work = TestSupport.makeTemporaryDirectory("sumdb")
        defer { TestSupport.removeDirectory(work) }
        try FileManager.default.createDirectory(atPath: work + "/lookup/example.com", withIntermediateDirectories: true)
        try "12345\nexample.com/hello v1.0.0 h1:x=\n".write(toFile: work + "/lookup/example.com/hello@v1.0.0", atomically: true, encoding: .utf8)
        let upstream = try FakeUpstream(root: work, logPath: work + "/requests.log")
        defer { upstream.stop() }
        let proxy = makeProxy([("sum.golang.org", upstream.url + "/")])
        defer { proxy.retire() }
        let paths = ["/lookup/example.com/hello@v1.0.0", "/latest", "/tile/8/0/001", "/tile/8/1/x001/234.p/5", "/tile/8/data/x002/000",
                     "/lookup/github.com/!azure/go-autorest@v1.0.0+incompatible"]
        let answers = Answers()
        for path in paths { proxy.handle(Substring("/sumdb/sum.golang.org" + path)) { answers.add($0) } }
        let got = answers.wait(for: paths.count, timeout: 30)
        #expect(got.count == paths.count)
        #expect(got.contains { $0.status == 200 && bodyText($0).contains("example.com/hello v1.0.0") })
        #expect(got.filter { $0.status == 404 }.count == paths.count - 1)  // the fake database has only the one file
        #expect(Set(upstream.requests) == Set(paths))
        // /supported is answered here, never forwarded.
        proxy.handle("/sumdb/sum.golang.org/supported") { answers.add($0) }
        #expect(answers.all.last?.status == 200)
        #expect(upstream.requests.count == paths.count)
    }

    @Test("a stalled database fills only the lookup pool: the overflow is 503 at once, the rest 504 after the idle timeout")
    func stalledDatabase() throws {
        let upstream = try HostileUpstream(stallPort: true)
        let proxy = makeProxy([("sum.golang.org", upstream.stallURL!)], workers: 2, queue: 2, timeout: 30, idleTimeout: 1)
        defer { proxy.retire() }
        let answers = Answers()
        let start = Date()
        for index in 0..<10 { proxy.handle(Substring("/sumdb/sum.golang.org/lookup/example.com/m\(index)@v1.0.0")) { answers.add($0) } }
        // At most workers + queue are taken (fewer when a worker has not yet picked its job up); the rest at once.
        let immediate = answers.all
        #expect((6...8).contains(immediate.count), "\(immediate.count) refused at once")
        #expect(immediate.allSatisfy { $0.status == 503 && $0.headers.contains { $0.name == "Retry-After" } })
        let got = answers.wait(for: 10, timeout: 30)
        let elapsed = Date().timeIntervalSince(start)
        #expect(got.count == 10)
        #expect(got.filter { $0.status == 504 }.count == 10 - immediate.count, "\(got.map(\.status))")
        #expect(got.filter { $0.status == 504 }.allSatisfy { bodyText($0).contains("timed out") })
        // Each taken lookup ends at the 1 s idle timeout, not at the 30 s deadline.
        #expect(elapsed >= 0.9 && elapsed < 15, "took \(elapsed) s")
    }

    @Test("an endless or compressed answer is cut off at once with 502", arguments: ["/endless", "/endless-chunked", "/gzip"])
    func boundedAnswers(prefix: String) throws {
        let server = try HTTPTestServer()
        let proxy = makeProxy([("sum.golang.org", server.base + prefix)])
        defer { proxy.retire() }
        let answers = Answers()
        let start = Date()
        proxy.handle("/sumdb/sum.golang.org/latest") { answers.add($0) }
        let got = answers.wait(for: 1, timeout: 30)
        #expect(got.first?.status == 502, "\(got.first.map(bodyText) ?? "no answer")")
        let text = got.first.map(bodyText) ?? ""
        #expect(text.contains(prefix == "/gzip" ? "compressed" : "limit"), "\(text)")
        #expect(Date().timeIntervalSince(start) < 10)
    }
}
