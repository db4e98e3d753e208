import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Fetchers that fail or lie: a clear HTTP error, nothing stored, no crash. Driven by the C fetcher
/// fixture (Tests/Fixtures/CPlugins/test_fetcher.c), whose behaviour depends on the module path.
@Suite("download protocol with failing and lying fetchers", .blockingBodies, .serialized)
final class DownloadProtocolTests {
    let work = TestSupport.makeTemporaryDirectory("protocol")
    let fetcherPath: String

    init() throws {
        fetcherPath = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
    }

    deinit { TestSupport.removeDirectory(work) }

    func makeStasher() throws -> (FetchingStasher, StoragePlugin) {
        let storage = try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin("MemoryStorage")), configJSON: "{}")
        let fetcher = try FetcherPlugin(library: PluginLibrary(path: fetcherPath), configJSON: "{}")
        return (FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: work), storage)
    }

    @Test("a valid fetch is validated and stored")
    func validFetch() throws {
        let (stasher, storage) = try makeStasher()
        try stasher.stash(module: "example.com/ok/a", version: "v1.0.0")
        #expect(try storage.exists(module: "example.com/ok/a", version: "v1.0.0"))
        let mod = try #require(try storage.open(module: "example.com/ok/a", version: "v1.0.0", artifact: .mod).readAll(limit: 1000))
        #expect(String(decoding: mod, as: UTF8.self).hasPrefix("module example.com/ok/a\n"))
    }

    @Test("failures and lies give the right status and store nothing", arguments: [
        ("example.com/notfound", 404, "no such module upstream"),
        ("example.com/unavailable", 502, "upstream answered 503"),
        ("example.com/timeout", 504, "took too long"),
        ("example.com/internal", 500, "internal error"),
        ("example.com/weird-status", 500, "internal error"),
        ("example.com/lies/version", 502, "instead of the requested v1.0.0"),
        ("example.com/lies/prefix", 502, "invalid zip"),
        ("example.com/lies/garbage", 502, "invalid zip"),
        ("example.com/lies/empty-zip", 502, "invalid zip"),
        ("example.com/lies/nomodule", 502, "without a module directive"),
        ("example.com/lies/wrong-module", 502, "module declares its path as: example.com/other but was required as: example.com/lies/wrong-module"),
        ("example.com/lies/bad-crc", 502, "zip: checksum error in entry \"example.com/lies/bad-crc@v1.0.0/go.mod\""),
        ("example.com/lies/huge-mod", 502, ".mod larger than"),
        ("example.com/lies/long-error", 502, "xxxx"),
    ])
    func lies(module: String, status: Int, message: String) throws {
        let (stasher, storage) = try makeStasher()
        let error = #expect(throws: DownloadError.self) { try stasher.stash(module: module, version: "v1.0.0") }
        #expect(error?.status == status)
        #expect(error?.message.contains(message) == true, "got \(error?.message ?? "")")
        #expect((error?.message.utf8.count ?? 0) < 1200, "messages stay bounded")
        if status == 500 { #expect(error?.message.contains("secret") == false, "internal details are not sent to clients") }
        #expect(try storage.exists(module: module, version: "v1.0.0") == false)
        #expect(try storage.list(module: module).isEmpty)
    }

    /// Starts athens with MemoryStorage and the C fetcher; returns it and its port.
    func startAthens(extra: String = "") throws -> (ChildProcess, UInt16) {
        let manifest = work + "/athens.json"
        try """
        {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)", "spoolDirectory": "\(work)",
         "storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "c", "plugin": "\(fetcherPath)"}]\(extra)}
        """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let athens = try ChildProcess(TestSupport.athens, ["--config", manifest])
        guard let line = athens.firstLine(), let port = UInt16(line.split(separator: ":").last ?? "") else {
            throw TestFailure("athens did not start: \(athens.stderr)")
        }
        return (athens, port)
    }

    func get(_ port: UInt16, _ path: String, method: String = "GET") throws -> (status: Int, headers: [String: String], body: String) {
        let client = try RawClient(port: port)
        client.send("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try #require(client.readResponse(head: method == "HEAD", timeout: 20))
        return (r.status, r.headers, String(decoding: r.body, as: UTF8.self))
    }

    @Test("over HTTP: statuses, content types, list filtering, latest, queries")
    func overHTTP() throws {
        let (athens, port) = try startAthens()
        defer { athens.stop() }
        let info = try get(port, "/example.com/ok/b/@v/v1.0.0.info")
        #expect(info.status == 200)
        #expect(info.headers["content-type"] == "application/json")
        #expect(info.body.contains("\"Version\":\"v1.0.0\""))
        let zip = try get(port, "/example.com/ok/b/@v/v1.0.0.zip")
        #expect(zip.status == 200 && zip.headers["content-type"] == "application/zip")
        let head = try get(port, "/example.com/ok/b/@v/v1.0.0.zip", method: "HEAD")
        #expect(head.status == 200 && head.headers["content-length"] == zip.headers["content-length"])
        #expect(try get(port, "/example.com/ok/b/@v/v1.0.0.mod").body.hasPrefix("module example.com/ok/b"))
        let list = try get(port, "/example.com/ok/b/@v/list")
        #expect(list.status == 200)
        #expect(list.body == "v1.0.0\nv1.1.0\nv1.2.0-pre\n", "junk and pseudo-versions are filtered, semver order")
        #expect(try get(port, "/example.com/ok/b/@latest").body.contains("v1.1.0"))
        let query = try get(port, "/example.com/ok/b/@v/main.info")
        #expect(query.status == 200 && query.body.contains("v1.1.0"))
        #expect(try get(port, "/example.com/ok/b/@v/v1.1.0.zip").status == 200, "the query stored v1.1.0")
        #expect(try get(port, "/example.com/ok/b/@v/nosuchbranch.info").status == 404)
        #expect(try get(port, "/example.com/ok/b/@v/main.zip").status == 404, "non-canonical .zip is 404")
        #expect(try get(port, "/example.com/ok/b/@v/latest.info").status == 404)
        #expect(try get(port, "/example.com/notfound/@v/v1.0.0.info").status == 404)
        #expect(try get(port, "/example.com/notfound/@v/list").status == 404)
        #expect(try get(port, "/example.com/unavailable/@v/v1.0.0.zip").status == 502)
        #expect(try get(port, "/example.com/unavailable/@latest").status == 502)
        #expect(try get(port, "/example.com/lies/version/@latest").status == 502)
        #expect(try get(port, "/example.com/lies/prefix/@v/v1.0.0.zip").status == 502)
        #expect(try get(port, "/healthz").status == 200)
        #expect(try get(port, "/readyz").status == 200)
        #expect(try get(port, "/version").body.contains("\"pluginABI\":\"1.1\""))
        // The server survived every lie.
        #expect(try get(port, "/example.com/ok/b/@v/v1.0.0.info").status == 200)
    }

    @Test("hostile paths get a 4xx and never reach a fetcher or a file", arguments: [
        ("/example.com/ok/../../etc/passwd/@v/list", 400),
        ("/example.com/ok/%2e%2e/x/@v/list", 400),
        ("/example.com/OK/@v/list", 400),
        ("/example.com/ok/@v/v1.0.0%00.info", 400),
        ("/example.com/ok/@v/v1.0.0.info%", 400),
        ("/example.com/ok/@v/v1.0.0.info%zz", 400),
        ("/example.com/ok/@v/V1.0.0.info", 400),
        ("/example.com/ok/@v/v1.0.0!.info", 400),
        ("/example.com/ok/@v/v1.0.0/x.info", 400),
        ("/example.com//ok/@v/list", 400),
        ("/example.com/ok/@v/.info", 400),
        ("/example.com/ok/@v/v1.0.0.tar", 404),
        ("/example.com/ok/@v/", 404),
        ("/example.com/ok/@v/v2.0.0.info", 404),
        ("/example.com/ok/@v/v1.0.info", 404),
        ("/@v/list", 400),
        ("/x/@latest", 400),
        ("/example.com/ok/@latest/extra", 404),
        ("/nothing-here", 404),
        ("/example.com/%C3%A9/@v/list", 400),
        ("/example.com/%FF/@v/list", 400),
    ])
    func hostilePaths(path: String, status: Int) throws {
        // One athens for all cases would be faster, but per-case isolation keeps failures independent.
        let (athens, port) = try startAthens()
        defer { athens.stop() }
        let response = try get(port, path)
        #expect(response.status == status, "\(path): \(response.body)")
        #expect(response.headers["content-type"] == "text/plain; charset=utf-8")
    }

    @Test("a full download pool answers 503 with Retry-After at once")
    func poolFull() throws {
        let (athens, port) = try startAthens(extra: #", "download": {"workers": 1, "queue": 0}"#)
        defer { athens.stop() }
        let slow = try RawClient(port: port)
        slow.send("GET /example.com/slow/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n")
        // The one worker holds the slow miss.
        #expect(try waitUntil { metric(try AthensServer.metrics(port: port), "athens_pool_running", labels: #"pool="download""#) == 1 })
        let busy = try get(port, "/example.com/slow/@v/v1.1.0.info")
        #expect(busy.status == 503)
        #expect(busy.headers["retry-after"] == "1")
        // At once: refused while the slow miss (1 s) is still running, not after waiting for the worker.
        var pending = pollfd(fd: slow.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0, "the 503 came only after the slow miss was answered")
        #expect(slow.readResponse(timeout: 10)?.status == 200)
        // Hits never queue behind misses.
        #expect(try get(port, "/example.com/slow/@v/v1.0.0.info").status == 200)
    }
}
