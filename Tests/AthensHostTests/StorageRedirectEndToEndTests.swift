// Storage `url` through the C header (Tests/Fixtures/CPlugins/redirect_storage.c) and the real go command following
// athens' 302s to a static file server on 127.0.0.1 that serves the very zips the storage holds.
import Foundation
import Testing
import PluginABI
@testable import PluginHost

@Suite("storage url through the C header: answers, refusals, lies", .blockingBodies)
struct StorageURLPluginTests {
    static let directory = TestSupport.makeTemporaryDirectory("storage-url")

    /// A fixture instance holding module@v1.0.0 for each of `modules` (honest files).
    func storage(holding modules: [String], source: String = "redirect_storage.c", defines: [String] = []) throws -> StoragePlugin {
        let path = try TestSupport.compileCPlugin(source, defines: defines, into: Self.directory,
                                                  name: "lib\(source.prefix { $0 != "." })-\(UUID().uuidString).so")
        let storage = try StoragePlugin(library: try PluginLibrary(path: path), configJSON: "{}")
        for module in modules {
            let files = FakeVersion.honest(module: module, version: "v1.0.0")
            let zipPath = Self.directory + "/zip-\(UUID().uuidString)"
            FileManager.default.createFile(atPath: zipPath, contents: Data(files.zip))
            let fd = open(zipPath, O_RDONLY)
            defer { close(fd); unlink(zipPath) }
            try storage.save(module: module, version: "v1.0.0", info: files.info, mod: files.mod, zipFD: fd, zipSize: UInt64(files.zip.count))
        }
        return storage
    }

    @Test("a stored file gets the plugin's URL and validity; a version not stored gets none")
    func answers() throws {
        let storage = try storage(holding: ["example.com/Good"])
        let zip = try #require(storage.url(module: "example.com/Good", version: "v1.0.0", artifact: .zip))
        #expect(zip.url == "http://127.0.0.1:9/example.com/!good/@v/v1.0.0.zip")
        #expect(zip.validSeconds == 600)
        #expect(storage.url(module: "example.com/Good", version: "v1.0.0", artifact: .info)?.url.hasSuffix("v1.0.0.info") == true)
        #expect(storage.url(module: "example.com/Good", version: "v2.0.0", artifact: .zip) == nil)
    }

    @Test("declined, failed, CR/LF, unterminated, file: and zero-validity answers all become nil (serve bytes)")
    func refusals() throws {
        let modules = ["url-decline", "url-fail", "url-crlf", "url-nonul", "url-file", "url-novalidity"].map { "example.com/\($0)" }
        let storage = try storage(holding: modules)
        for module in modules {
            for _ in 1...2 {
                #expect(storage.url(module: module, version: "v1.0.0", artifact: .zip) == nil, "\(module)")
            }
            // Bytes are still there: the fallback works.
            let blob = try storage.open(module: module, version: "v1.0.0", artifact: .zip)
            #expect(blob.readAll(limit: 1 << 20) == FakeVersion.honest(module: module, version: "v1.0.0").zip)
        }
    }

    @Test("a storage without the url entry (test_storage.c) never redirects")
    func noEntry() throws {
        let storage = try storage(holding: ["example.com/plain"], source: "test_storage.c")
        #expect(storage.url(module: "example.com/plain", version: "v1.0.0", artifact: .zip) == nil)
    }

    @Test("a url entry past the table's struct_size (a table ending where 1.1 added url) is never called")
    func entryPastStructSize() throws {
        let offset = MemoryLayout<ath_storage_methods>.offset(of: \.url)!
        let storage = try storage(holding: ["example.com/short"], defines: ["TABLE_SIZE=\(offset)"])
        #expect(storage.url(module: "example.com/short", version: "v1.0.0", artifact: .zip) == nil)
        // The same source with its full table does answer: the size alone made the difference.
        let full = try self.storage(holding: ["example.com/short"])
        #expect(full.url(module: "example.com/short", version: "v1.0.0", artifact: .zip) != nil)
    }
}

@Suite("redirect serving end to end: the go command follows 302s to the storage's URLs", .blockingBodies, .serialized)
final class StorageRedirectEndToEndTests {
    let work = TestSupport.makeTemporaryDirectory("redirect-e2e")
    let upstream: FakeUpstream
    /// The static file server on the storage's published tree: its log shows what clients fetched from it.
    let files: FakeUpstream
    let athens: ChildProcess
    let athensPort: UInt16
    static let lying = ["url-fail", "url-crlf"].map { "example.com/\($0)" }

    init() throws {
        let tree = work + "/tree", published = work + "/published"
        try FileManager.default.createDirectory(atPath: published, withIntermediateDirectories: true)
        try TestSupport.makeFixtureProxy(tree)
        for module in Self.lying {
            let files = FakeVersion.honest(module: module, version: "v1.0.0"), dir = tree + "/" + module + "/@v"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (ext, bytes) in [("info", files.info), ("mod", files.mod), ("zip", files.zip)] {
                FileManager.default.createFile(atPath: dir + "/v1.0.0." + ext, contents: Data(bytes))
            }
            try "v1.0.0\n".write(toFile: dir + "/list", atomically: true, encoding: .utf8)
        }
        upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        files = try FakeUpstream(root: published, logPath: work + "/files.log")
        let plugin = try TestSupport.compileCPlugin("redirect_storage.c", into: work, name: "libRedirectStorage.so")
        let manifest = work + "/athens.json"
        try """
        {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)",
         "storage": {"plugin": "\(plugin)", "config": {}, "serve": "redirect"},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 10}}]}
        """.write(toFile: manifest, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["ATH_TEST_URL_DIR"] = published
        environment["ATH_TEST_URL_BASE"] = files.url
        athens = try ChildProcess(TestSupport.athens, ["--config", manifest], environment: environment)
        guard let line = athens.firstLine(), line.hasPrefix("listening on "), let port = UInt16(line.split(separator: ":").last ?? "") else {
            throw TestFailure("athens did not start: \(athens.stderr)")
        }
        athensPort = port
    }

    deinit {
        athens.stop()
        files.stop()
        upstream.stop()
        TestSupport.removeDirectory(work)
    }

    func get(_ path: String, method: String = "GET") throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        let client = try RawClient(port: athensPort)
        client.send("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        guard let response = client.readResponse(head: method == "HEAD", timeout: 60) else { throw TestFailure("no response to \(path): \(athens.stderr)") }
        return response
    }

    static let modules = ["example.com/hello@v1.0.0", "example.com/Upper/Case@v0.1.0", "example.com/multi/v2@v2.0.0", "example.com/m@v1.0.0"]

    @Test("go mod download through athens: same hashes as the upstream, every zip fetched from the file server")
    func goFollowsRedirects() throws {
        let direct = try GoCommand.sums(Self.modules, proxy: upstream.url)
        #expect(direct.count == Self.modules.count && direct.values.allSatisfy { $0.hasPrefix("h1:") }, "\(direct)")
        let viaAthens = try GoCommand.sums(Self.modules, proxy: "http://127.0.0.1:\(athensPort)")
        #expect(viaAthens == direct, "athens stderr: \(athens.stderr)")
        let served = files.requests.filter { $0.hasSuffix(".zip") }
        for expected in ["/example.com/hello/@v/v1.0.0.zip", "/example.com/!upper/!case/@v/v0.1.0.zip",
                         "/example.com/multi/v2/@v/v2.0.0.zip", "/example.com/m/@v/v1.0.0.zip"] {
            #expect(served.contains(expected), "the file server served \(expected): \(served)")
        }
        #expect(!files.requests.contains { $0.hasSuffix(".info") || $0.hasSuffix(".mod") }, ".info and .mod stay bytes by default")
        // A second cold client: redirected again (the zip is not in athens' memory), no new upstream zip fetch.
        let upstreamZips = upstream.requests.filter { $0.hasSuffix(".zip") }.count
        #expect(try GoCommand.sums(Self.modules, proxy: "http://127.0.0.1:\(athensPort)") == direct)
        #expect(upstream.requests.filter { $0.hasSuffix(".zip") }.count == upstreamZips)
        #expect(files.requests.filter { $0.hasSuffix(".zip") }.count == served.count + Self.modules.count)
    }

    @Test("GET and HEAD of a stored zip answer 302 with a bounded Cache-Control and no body")
    func headAndGet() throws {
        _ = try GoCommand.sums(["example.com/m@v1.0.0"], proxy: "http://127.0.0.1:\(athensPort)")
        for method in ["GET", "HEAD"] {
            let response = try get("/example.com/m/@v/v1.0.0.zip", method: method)
            #expect(response.status == 302)
            #expect(response.headers["location"] == files.url + "/example.com/m/@v/v1.0.0.zip")
            #expect(response.headers["cache-control"] == "private, max-age=300")
            #expect(response.body.isEmpty)
        }
    }

    @Test("a lying or failing url is never sent: the zip's bytes are served instead, the cause logged once")
    func lyingPluginFallsBack() throws {
        for module in Self.lying {
            for _ in 1...3 {
                let response = try get("/\(module)/@v/v1.0.0.zip")
                #expect(response.status == 200, "\(module)")
                #expect(response.headers["location"] == nil)
                #expect(response.body == FakeVersion.honest(module: module, version: "v1.0.0").zip)
            }
        }
        #expect(waitUntil { athens.stderr.contains("signer on fire") && athens.stderr.contains("not printable ASCII") }, "\(athens.stderr)")
        #expect(athens.stderr.components(separatedBy: "signer on fire").count == 2, "once per cause: \(athens.stderr)")
        #expect(athens.stderr.components(separatedBy: "not printable ASCII").count == 2, "once per cause: \(athens.stderr)")
        #expect(!athens.stderr.contains("Set-Cookie"))
    }
}
