import Foundation
import Testing

/// The real go command against the built athens, whose upstream is a static GOPROXY tree served by a
/// process on 127.0.0.1. What the go command downloads through athens must hash exactly as what it
/// downloads from the upstream directly.
@Suite("end to end: the go command through athens", .blockingBodies, .serialized)
final class EndToEndTests {
    let work = TestSupport.makeTemporaryDirectory("e2e")
    let tree: String
    let upstream: ChildProcess
    let upstreamURL: String
    let athens: ChildProcess
    let athensURL: String
    let requestLog: String

    init() throws {
        tree = work + "/tree"
        requestLog = work + "/upstream-requests.log"
        try TestSupport.makeFixtureProxy(tree)
        upstream = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/fake_upstream.py",
                                                     "--root", tree, "--port", "0", "--log", requestLog])
        guard let line = upstream.firstLine(), let port = line.split(whereSeparator: { !$0.isNumber }).last else {
            throw TestFailure("upstream did not start: \(upstream.stderr)")
        }
        upstreamURL = "http://127.0.0.1:\(port)"
        let manifest = work + "/athens.json"
        let manifestText = """
        {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)",
         "storage": {"plugin": "MemoryStorage", "config": {}},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstreamURL)", "timeoutSeconds": 10}}]}
        """
        try manifestText.write(toFile: manifest, atomically: true, encoding: .utf8)
        athens = try ChildProcess(TestSupport.athens, ["--config", manifest])
        guard let athensLine = athens.firstLine(), athensLine.hasPrefix("listening on "), let address = athensLine.split(separator: " ").last else {
            throw TestFailure("athens did not start: \(athens.stderr)")
        }
        athensURL = "http://\(address)"
    }

    deinit {
        athens.stop()
        upstream.stop()
        TestSupport.removeDirectory(work)
    }

    /// Runs the go command with a fresh module cache and the given GOPROXY.
    /// `cache`: a module cache of the caller's, kept after the call (the fresh one is removed with its home).
    func go(_ arguments: [String], proxy: String, directory: String? = nil, cache: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try GoCommand.run(arguments, proxy: proxy, directory: directory, extraEnvironment: cache.map { ["GOMODCACHE": $0] } ?? [:])
    }

    /// `go mod download -json` output as path@version → (Sum, GoModSum).
    func downloadSums(_ modules: [String], proxy: String) throws -> [String: [String]] {
        let result = try go(["mod", "download", "-json"] + modules, proxy: proxy)
        #expect(result.status == 0, "go mod download via \(proxy): \(result.stderr) \(result.stdout)")
        var sums: [String: [String]] = [:]
        // The output is a stream of JSON objects.
        for chunk in result.stdout.components(separatedBy: "\n}") where chunk.contains("\"Path\"") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data((chunk + "\n}").utf8)) as? [String: Any])
            #expect(object["Error"] == nil, "\(object)")
            let key = "\(object["Path"] ?? "")@\(object["Version"] ?? "")"
            sums[key] = [object["Sum"] as? String ?? "", object["GoModSum"] as? String ?? ""]
        }
        return sums
    }

    static let modules = ["example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "example.com/hello@v1.2.0-pre.1",
                          "example.com/Upper/Case@v0.1.0", "example.com/multi/v2@v2.0.0",
                          "example.com/legacy@v2.0.0+incompatible", "example.com/m@v1.0.0"]

    @Test("go mod download through athens gets exactly the upstream's hashes")
    func downloadHashes() throws {
        let direct = try downloadSums(Self.modules, proxy: upstreamURL)
        let viaAthens = try downloadSums(Self.modules, proxy: athensURL)
        #expect(direct.count == Self.modules.count)
        #expect(viaAthens == direct)
        // Independent known answer (x/mod dirhash), so a bug shared by both paths cannot hide.
        #expect(viaAthens["example.com/m@v1.0.0"] == ["h1:fCHMqo5ggHEQvwcrsN81zr5orRk5lClR36KRHpfUjKg=",
                                                       "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k="])
        // A second, cold client is served from storage: same hashes, no new upstream zip fetch.
        let zipFetches = try upstreamRequests().filter { $0.hasSuffix(".zip") }.count
        let again = try downloadSums(Self.modules, proxy: athensURL)
        #expect(again == direct)
        #expect(try upstreamRequests().filter { $0.hasSuffix(".zip") }.count == zipFetches)
    }

    @Test("go list -m -versions and @latest through athens")
    func listVersions() throws {
        let versions = try go(["list", "-m", "-versions", "example.com/hello"], proxy: athensURL)
        #expect(versions.status == 0, "\(versions.stderr)")
        #expect(versions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "example.com/hello v1.0.0 v1.1.0 v1.2.0-pre.1")
        let latest = try go(["list", "-m", "example.com/hello@latest"], proxy: athensURL)
        #expect(latest.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "example.com/hello v1.1.0")
        let upper = try go(["list", "-m", "-versions", "example.com/Upper/Case"], proxy: athensURL)
        #expect(upper.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "example.com/Upper/Case v0.1.0")
    }

    @Test("go get in a module records the upstream's go.sum lines")
    func goGet() throws {
        func goSum(proxy: String) throws -> String {
            let dir = TestSupport.makeTemporaryDirectory("gomod")
            try "module example.com/consumer\n\ngo 1.19\n".write(toFile: dir + "/go.mod", atomically: true, encoding: .utf8)
            try "package consumer\n\nimport \"example.com/app\"\n\nvar _ = app.Run\n".write(toFile: dir + "/c.go", atomically: true, encoding: .utf8)
            let result = try go(["get", "example.com/app@v1.0.0"], proxy: proxy, directory: dir)
            #expect(result.status == 0, "go get via \(proxy): \(result.stderr)")
            let build = try go(["build", "./..."], proxy: proxy, directory: dir)
            #expect(build.status == 0, "go build: \(build.stderr)")
            return (try? String(contentsOfFile: dir + "/go.sum", encoding: .utf8)) ?? ""
        }
        let direct = try goSum(proxy: upstreamURL)
        let viaAthens = try goSum(proxy: athensURL)
        #expect(direct.contains("example.com/dep v1.0.0 h1:"))
        #expect(viaAthens == direct)
    }

    @Test("unknown modules are 404 so GOPROXY falls through to the next proxy")
    func fallsThrough() throws {
        let missing = try go(["mod", "download", "-json", "example.com/nowhere@v1.0.0"], proxy: athensURL)
        #expect(missing.status != 0)
        #expect(missing.stdout.contains("404") || missing.stdout.contains("not found"), "\(missing.stdout)")
        // With a second proxy after a comma, the go command moves on after our 404 and gets the module there.
        let second = work + "/second"
        try TestSupport.makeFixtureProxy(second, "--second")
        let chained = try downloadSums(["example.com/second@v1.0.0"], proxy: "\(athensURL),file://\(second)")
        #expect(chained["example.com/second@v1.0.0"]?.first?.hasPrefix("h1:") == true)
        #expect(try upstreamRequests().contains { $0.contains("example.com/second/@v/v1.0.0.info") }, "athens asked its upstream first")
    }

    @Test("cached modules are still served when the upstream is gone")
    func servesWithoutUpstream() throws {
        _ = try downloadSums(["example.com/dep@v1.0.0"], proxy: athensURL)
        upstream.stop()
        let offline = try downloadSums(["example.com/dep@v1.0.0"], proxy: athensURL)
        #expect(offline["example.com/dep@v1.0.0"]?.first?.hasPrefix("h1:") == true)
        // Not cached and the upstream is down: a clear 502 at once, not a hang, a 404 or a crash.
        let port = try #require(UInt16(athensURL.split(separator: ":").last ?? ""))
        let client = try RawClient(port: port)
        client.send("GET /example.com/hello/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try #require(client.readResponse(timeout: 20))
        #expect(response.status == 502)
        #expect(String(decoding: response.body, as: UTF8.self).contains("upstream"))
        let versions = try go(["list", "-m", "-versions", "example.com/dep"], proxy: athensURL)
        #expect(versions.stdout.contains("v1.0.0"), "stored versions are listed when the upstream is down: \(versions.stderr)")
    }

    @Test("through athens on FileStorage, then straight from its folder as GOPROXY=file://, with identical hashes")
    func fileStorageTree() throws {
        let root = work + "/storage"
        let manifest = work + "/file.json"
        try """
        {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)",
         "storage": {"plugin": "FileStorage", "config": {"root": "\(root)"}},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstreamURL)"}}]}
        """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let server = try ChildProcess(TestSupport.athens, ["--config", manifest])
        defer { server.stop() }
        let line = try #require(server.firstLine())
        let url = "http://" + (line.split(separator: " ").last.map(String.init) ?? "")
        let direct = try downloadSums(Self.modules, proxy: upstreamURL)
        let viaAthens = try downloadSums(Self.modules, proxy: url)
        let fromFolder = try downloadSums(Self.modules, proxy: "file://" + root)
        #expect(direct.count == Self.modules.count)
        #expect(viaAthens == direct)
        #expect(fromFolder == direct)
        let versions = try go(["list", "-m", "-versions", "example.com/hello"], proxy: "file://" + root)
        #expect(versions.stdout.contains("example.com/hello v1.0.0 v1.1.0 v1.2.0-pre.1"), "\(versions.stderr)")
    }

    func upstreamRequests() throws -> [String] {
        let text = (try? String(contentsOfFile: requestLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }
}
