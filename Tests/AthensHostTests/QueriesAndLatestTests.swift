// Issue 10, findings 1 and 2: a plain tag of a +incompatible version (`go get m@v3.2.0`) and @latest of a module
// with no tagged release, checked against what the go command itself computes from the same static tree
// (GOPROXY=file://), through athens (ProxyFetcher, GitFetcher) and through athens' own storage folder.
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Foundation
import GoModule
import Testing

@Suite("GoModule: versions canonical for a path, and the go command's pick of latest", .blockingBodies)
struct VersionRulesTests {
    @Test("a canonical version is canonical for a path only if its major fits", arguments: [
        ("github.com/dgrijalva/jwt-go", "v3.2.0", false),
        ("github.com/dgrijalva/jwt-go", "v3.2.0+incompatible", true),
        ("github.com/dgrijalva/jwt-go", "v1.2.0", true),
        ("github.com/dgrijalva/jwt-go", "v1.2.0+incompatible", true),
        ("example.com/m/v3", "v3.2.0", true),
        // module.Check accepts it (the major matches); only a repository can tell that it is not a +incompatible tag.
        ("example.com/m/v3", "v3.2.0+incompatible", true),
        ("example.com/m/v3", "v4.0.0+incompatible", false),
        ("example.com/m/v3", "v2.0.0", false),
        ("gopkg.in/yaml.v2", "v2.4.0", true),
        ("gopkg.in/yaml.v2", "v3.0.0", false),
        ("example.com/m", "v1.2", false),
        ("example.com/m", "main", false),
    ])
    func canonicalForPath(path: String, version: String, expected: Bool) {
        #expect(ModulePath.isCanonical(path: path, version: version) == expected)
    }

    @Test("latest: highest release, else highest pre-release, else the newest pseudo-version by time", arguments: [
        (["v1.0.0", "v1.1.0-pre", "v0.9.0", "v0.0.0-20990101000000-abcdefabcdef"], "v1.0.0"),
        (["v1.1.0-pre", "v1.0.1-rc.1", "v0.0.0-20990101000000-abcdefabcdef"], "v1.1.0-pre"),
        // Time, not semver: the v0.0.0 one is newer although v1.2.4-0.… sorts higher.
        (["v1.2.4-0.20230101000000-123456123456", "v0.0.0-20240102030405-abcdefabcdef"], "v0.0.0-20240102030405-abcdefabcdef"),
        (["v0.0.0-20240102030405-abcdefabcdef", "v1.2.4-0.20230101000000-123456123456"], "v0.0.0-20240102030405-abcdefabcdef"),
        // Same time: semver decides, whatever the order.
        (["v0.0.0-20240102030405-abcdefabcdef", "v0.1.1-0.20240102030405-abcdefabcdef"], "v0.1.1-0.20240102030405-abcdefabcdef"),
        (["v0.1.1-0.20240102030405-abcdefabcdef", "v0.0.0-20240102030405-abcdefabcdef"], "v0.1.1-0.20240102030405-abcdefabcdef"),
        (["v2.0.0+incompatible", "v1.5.0"], "v2.0.0+incompatible"),
        // Not canonical: ignored.
        (["v1.2", "main", "v1.0.0"], "v1.0.0"),
    ])
    func pick(versions: [String], expected: String) {
        #expect(LatestVersion.pick(versions) == expected)
    }

    @Test("latest of nothing usable is nil")
    func pickNothing() {
        #expect(LatestVersion.pick([String]()) == nil)
        #expect(LatestVersion.pick(["main", "v1", "1.0.0"]) == nil)
    }
}

@Suite("queries and @latest as the go command makes them, over a static tree and a git repository", .blockingBodies, .serialized)
final class QueriesAndLatestTests {
    let work = TestSupport.makeTemporaryDirectory("queries")
    let tree: String
    let upstream: FakeUpstream

    init() throws {
        tree = work + "/tree"
        try TestSupport.makeFixtureProxy(tree, "--queries")
        upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
    }

    deinit {
        upstream.stop()
        TestSupport.removeDirectory(work)
    }

    /// athens on FileStorage at `root`; `fetcherURL` nil means no fetcher at all.
    func athens(root: String, fetcherURL: String?, mode: String = "fallback") throws -> AthensServer {
        let fetchers = fetcherURL.map { #"[{"name": "up", "plugin": "ProxyFetcher", "config": {"url": "\#($0)", "timeoutSeconds": 5}}]"# } ?? "[]"
        return try AthensServer(manifest: """
        {"storage": {"plugin": "FileStorage", "config": {"root": "\(root)"}}, "spoolDirectory": "\(work)",
         "networkMode": "\(mode)", "listCacheSeconds": 0, "fetchers": \(fetchers)}
        """, directory: work)
    }

    /// `go <arguments>` in a fresh module `example.com/app` with GOPROXY=`proxy`; the go.mod after it ran.
    func goInModule(_ arguments: [String], proxy: String) throws -> (status: Int32, stderr: String, goMod: String) {
        let directory = TestSupport.makeTemporaryDirectory("queries-app")
        defer { TestSupport.removeDirectory(directory) }
        try "module example.com/app\n\ngo 1.19\n".write(toFile: directory + "/go.mod", atomically: true, encoding: .utf8)
        let result = try GoCommand.run(arguments, proxy: proxy, directory: directory)
        return (result.status, result.stderr, (try? String(contentsOfFile: directory + "/go.mod", encoding: .utf8)) ?? "")
    }

    func latest(_ module: String, proxy: String) throws -> String {
        let result = try GoCommand.run(["list", "-m", module + "@latest"], proxy: proxy)
        return result.status == 0 ? result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : "failed: \(result.stderr)"
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The "Version" of a .info body.
    static func version(_ bytes: [UInt8]) -> String? {
        ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any])?["Version"] as? String
    }

    @Test("go get m@v3.2.0 of a module whose v3 tag has no go.mod: v3.2.0+incompatible through athens, as straight from the tree")
    func incompatibleByPlainTag() throws {
        let root = work + "/storage-plain-tag"
        let server = try athens(root: root, fetcherURL: upstream.url)
        defer { server.stop() }
        let direct = try goInModule(["get", "example.com/jwt@v3.2.0"], proxy: "file://" + tree)
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(direct.goMod.contains("example.com/jwt v3.2.0+incompatible"), "\(direct.goMod)")
        let viaAthens = try goInModule(["get", "example.com/jwt@v3.2.0"], proxy: server.url)
        #expect(viaAthens.status == 0, "\(viaAthens.stderr)")
        #expect(viaAthens.goMod == direct.goMod)
        let sums = try GoCommand.sums(["example.com/jwt@v3.2.0"], proxy: server.url)
        let directSums = try GoCommand.sums(["example.com/jwt@v3.2.0"], proxy: "file://" + tree)
        #expect(sums["example.com/jwt@v3.2.0+incompatible"]?.hasPrefix("h1:") == true, "\(sums)")
        #expect(sums == directSums)

        // Over HTTP: the .info query names the +incompatible version; .mod and .zip of the plain tag stay 404.
        let info = try server.get("/example.com/jwt/@v/v3.2.0.info")
        #expect(info.status == 200 && Self.version(info.body) == "v3.2.0+incompatible", "\(Self.text(info.body))")
        #expect(try server.get("/example.com/jwt/@v/v3.2.0.mod").status == 404)
        #expect(try server.get("/example.com/jwt/@v/v3.2.0.zip").status == 404)
        // Stored under the canonical version only.
        let stored = try FileManager.default.contentsOfDirectory(atPath: root + "/example.com/jwt/@v").filter { !$0.hasPrefix(".") }.sorted()
        #expect(stored == ["list", "v3.2.0+incompatible.info", "v3.2.0+incompatible.mod", "v3.2.0+incompatible.zip"])

        // Without any fetcher the stored twin still answers the plain tag; nothing else is invented.
        let alone = try athens(root: root, fetcherURL: nil)
        defer { alone.stop() }
        let fromStorage = try alone.get("/example.com/jwt/@v/v3.2.0.info")
        #expect(fromStorage.status == 200 && Self.version(fromStorage.body) == "v3.2.0+incompatible")
        #expect(try alone.get("/example.com/jwt/@v/v3.3.0.info").status == 404)
    }

    @Test("a fetcher that answers a plain-tag query with an unrelated version is refused, nothing stored")
    func plainTagLie() throws {
        let lying = work + "/lying-tree"
        try FileManager.default.createDirectory(atPath: lying + "/example.com/jwt/@v", withIntermediateDirectories: true)
        // v3.2.0 "resolves" to v4.0.0+incompatible: the only honest answer is v3.2.0+incompatible.
        try #"{"Version":"v4.0.0+incompatible","Time":"2024-01-02T03:04:05Z"}"#.write(toFile: lying + "/example.com/jwt/@v/v3.2.0.info", atomically: true, encoding: .utf8)
        let liar = try FakeUpstream(root: lying, logPath: work + "/lying.log")
        defer { liar.stop() }
        let root = work + "/storage-lie"
        let server = try athens(root: root, fetcherURL: liar.url)
        defer { server.stop() }
        let answer = try server.get("/example.com/jwt/@v/v3.2.0.info")
        #expect(answer.status == 502, "\(Self.text(answer.body))")
        #expect(Self.text(answer.body).contains("v4.0.0+incompatible"))
        #expect(!FileManager.default.fileExists(atPath: root + "/example.com/jwt"), "nothing stored")
    }

    @Test("ProxyFetcher: a plain-tag query may name its +incompatible twin; latest without @latest is picked from the raw list")
    func proxyFetcherRules() throws {
        let fetcher = try FetcherPlugin(library: PluginLibrary(path: TestSupport.plugin("ProxyFetcher")), configJSON: #"{"url": "\#(upstream.url)"}"#)
        #expect(Self.version(try fetcher.resolve(module: "example.com/jwt", query: "v3.2.0")) == "v3.2.0+incompatible")
        #expect(Self.version(try fetcher.resolve(module: "example.com/untagged", query: "latest")) == "v0.0.0-20240102030405-abcdefabcdef")
        #expect(Self.version(try fetcher.resolve(module: "example.com/jwt", query: "latest")) == "v3.2.0+incompatible")
        // The list entry still gives tagged versions only (athens_plugin.h).
        #expect(try fetcher.list(module: "example.com/untagged") == [])
        // Neither @latest nor a list: not found.
        let missing = #expect(throws: PluginError.self) { _ = try fetcher.resolve(module: "example.com/nothing", query: "latest") }
        #expect(missing?.code == .notFound)
        // A version canonical for its path must come back as itself.
        let lying = work + "/lying-proxy"
        try FileManager.default.createDirectory(atPath: lying + "/example.com/jwt/v3/@v", withIntermediateDirectories: true)
        try #"{"Version":"v3.2.1","Time":"2024-01-02T03:04:05Z"}"#.write(toFile: lying + "/example.com/jwt/v3/@v/v3.2.0.info", atomically: true, encoding: .utf8)
        let liar = try FakeUpstream(root: lying, logPath: work + "/lying-proxy.log")
        defer { liar.stop() }
        let liarFetcher = try FetcherPlugin(library: PluginLibrary(path: TestSupport.plugin("ProxyFetcher")), configJSON: #"{"url": "\#(liar.url)"}"#)
        let error = #expect(throws: PluginError.self) { _ = try liarFetcher.resolve(module: "example.com/jwt/v3", query: "v3.2.0") }
        #expect(error?.message.contains("instead of v3.2.0") == true, "\(error?.message ?? "")")
    }

    @Test("@latest of an untagged module: through athens, through its storage folder and straight from the tree alike")
    func untaggedLatest() throws {
        let root = work + "/storage-untagged"
        let server = try athens(root: root, fetcherURL: upstream.url)
        defer { server.stop() }
        let direct = try latest("example.com/untagged", proxy: "file://" + tree)
        #expect(direct == "example.com/untagged v0.0.0-20240102030405-abcdefabcdef")
        #expect(try latest("example.com/untagged", proxy: server.url) == direct)
        // @v/list still drops pseudo-versions; @latest names the newest one.
        let list = try server.get("/example.com/untagged/@v/list")
        #expect(list.status == 200 && list.body.isEmpty, "\(Self.text(list.body))")
        let info = try server.get("/example.com/untagged/@latest")
        #expect(info.status == 200 && Self.version(info.body) == "v0.0.0-20240102030405-abcdefabcdef")
        // Have it stored, then ask the storage folder itself.
        let downloaded = try GoCommand.run(["mod", "download", "example.com/untagged@latest"], proxy: server.url)
        #expect(downloaded.status == 0, "\(downloaded.stderr)")
        #expect(try latest("example.com/untagged", proxy: "file://" + root) == direct)
    }

    @Test("@latest from storage when there is no fetcher, when fetchers fail (fallback, offline), never in strict with a failing one")
    func latestFromStorage() throws {
        let root = work + "/storage-fallback"
        // Fill storage through a working athens: the untagged module's newest pseudo-version and the older one.
        do {
            let filler = try athens(root: root, fetcherURL: upstream.url)
            defer { filler.stop() }
            for version in ["v0.0.0-20240102030405-abcdefabcdef", "v1.2.4-0.20230101000000-123456123456"] {
                #expect(try filler.get("/example.com/untagged/@v/\(version).zip").status == 200)
            }
            #expect(try filler.get("/example.com/jwt/@v/v3.2.0+incompatible.zip").status == 200)
        }
        let expected = "example.com/untagged v0.0.0-20240102030405-abcdefabcdef"
        // A closed port: every fetch fails at once.
        let dead = "http://127.0.0.1:1"
        for (fetcher, mode) in [(nil, "fallback"), (nil, "strict"), (dead, "fallback"), (dead, "offline"), (upstream.url, "offline")] as [(String?, String)] {
            let server = try athens(root: root, fetcherURL: fetcher, mode: mode)
            defer { server.stop() }
            let what = "\(fetcher ?? "no fetcher"), \(mode)"
            let answer = try server.get("/example.com/untagged/@latest")
            #expect(answer.status == 200, "\(what): \(Self.text(answer.body))")
            #expect(Self.version(answer.body) == "v0.0.0-20240102030405-abcdefabcdef", "\(what)")
            #expect(answer.headers["cache-control"] == "no-cache", "\(what)")
            #expect(Self.version(try server.get("/example.com/jwt/@latest").body) == "v3.2.0+incompatible", "\(what)")
            #expect(try latest("example.com/untagged", proxy: server.url) == expected, "\(what)")
            // Nothing stored: not found, unless a fetcher was asked and failed (that failure is the answer).
            #expect(try server.get("/example.com/nothing/@latest").status == (fetcher == dead && mode != "offline" ? 502 : 404), "\(what)")
        }
        let strict = try athens(root: root, fetcherURL: dead, mode: "strict")
        defer { strict.stop() }
        #expect(try strict.get("/example.com/untagged/@latest").status == 502, "strict: the fetcher's failure is the answer")
    }

    @Test("GitFetcher: go mod download m@v2.1.0 of a repository whose v2 tags have no go.mod gives direct mode's v2.1.0+incompatible")
    func gitPlainTag() throws {
        let fixture = try GitFixture.shared()
        let manifest = work + "/git-athens.json"
        try """
            {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)",
             "storage": {"plugin": "MemoryStorage", "config": {}},
             "fetchers": [{"name": "git", "plugin": "GitFetcher", "config": \(fixture.config(cache: work + "/mirrors"))}]}
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        var environment = fixture.goEnvironment(proxy: "off", cache: work)
        environment["GOPROXY"] = nil
        let athens = try ChildProcess(TestSupport.athens, ["--config", manifest], environment: environment)
        defer { athens.stop() }
        guard let line = athens.firstLine(), line.hasPrefix("listening on "), let address = line.split(separator: " ").last else {
            throw TestFailure("athens did not start: \(athens.stderr)")
        }
        let queries = ["github.com/fixture/legacy@v2.1.0", "github.com/fixture/legacy@v2.0.0"]
        let direct = try fixture.goDownload(queries, proxy: "direct")
        let viaAthens = try fixture.goDownload(queries, proxy: "http://\(address)")
        for (query, version) in zip(queries, ["v2.1.0+incompatible", "v2.0.0+incompatible"]) {
            let expected = try #require(direct[query], "direct: no answer for \(query)")
            #expect(expected.version == version, "direct mode: \(query) \(expected.error ?? "")")
            let got = try #require(viaAthens[query], "athens: no answer for \(query)")
            #expect(got.error == nil, "athens: \(query): \(got.error ?? "")")
            #expect(got.version == expected.version && got.sum == expected.sum && got.goModSum == expected.goModSum, "\(query)")
        }
        // The plugin itself: the plain tag resolves to its twin; a tag that fits the path still must come back as itself.
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: work + "/mirrors-direct"))
        #expect(try GitFetcherDriver.resolve(fetcher, "github.com/fixture/legacy", "v2.1.0")["Version"] as? String == "v2.1.0+incompatible")
        #expect(try GitFetcherDriver.resolve(fetcher, "github.com/fixture/legacy", "v1.0.0")["Version"] as? String == "v1.0.0")
        // Only the resolved version is fetched: the plain tag is no version of its own.
        let fetchError = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, "github.com/fixture/legacy", "v2.1.0") }
        #expect(fetchError?.code == .notFound)
    }

    @Test("GitFetcher: github.com/OWNER is refused at once, without a discovery request")
    func githubOwnerOnly() throws {
        let discovery = try FakeUpstream(root: work, logPath: work + "/discovery.log")
        defer { discovery.stop() }
        let config = #"{"cacheDirectory": "\#(work)/mirrors-owner", "insecureHosts": ["github.com", "example.org"], "hostAddresses": {"github.com": "127.0.0.1:\#(discovery.port)", "example.org": "127.0.0.1:\#(discovery.port)"}, "discoveryTimeoutSeconds": 5}"#
        let fetcher = try GitFetcherDriver.load(config)
        for module in ["github.com/owner", "github.com/owner/repo.git"] {
            let error = #expect(throws: PluginError.self) { _ = try fetcher.list(module: module) }
            #expect(error?.code == .notFound, "\(module)")
            #expect(error?.message.contains("invalid github.com import path") == true, "\(error?.message ?? "")")
        }
        #expect(discovery.requests.isEmpty, "no discovery for github.com paths: \(discovery.requests)")
        // The control: another host is discovered through the same server, so a request would have been seen.
        _ = try? fetcher.list(module: "example.org/owner")
        #expect(discovery.requests.contains { $0.hasPrefix("/owner?go-get=1") }, "\(discovery.requests)")
    }
}
