import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Builds C plugins for the plugin-kit tests: the examples, and fixtures written by the tests themselves.
enum CPluginBuild {
    /// The flags docs/PLUGINS.md and Examples/Makefile give plugin authors.
    static let flags = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
    static var examples: String { TestSupport.packageRoot + "/Examples" }
    static var storageSource: String { examples + "/storage/example_storage.c" }
    static var fetcherSource: String { examples + "/fetcher/example_fetcher.c" }

    /// Compiles `source` into `directory/name` with the authors' flags; throws with cc's message on failure.
    static func compile(_ source: String, into directory: String, name: String, extra: [String] = []) throws -> String {
        let output = directory + "/" + name
        let result = try TestSupport.run("/usr/bin/cc", flags + ["-I", TestSupport.packageRoot + "/Sources/PluginABI/include"]
                                         + extra + [source, "-o", output, "-lpthread"])
        guard result.status == 0 else { throw TestFailure("cc \(source) failed: \(result.stderr)") }
        return output
    }

    /// Writes `text` as a C file and compiles it; it may `#include` the examples by absolute path.
    static func compile(text: String, into directory: String, name: String, extra: [String] = []) throws -> String {
        let source = directory + "/" + name + ".c"
        try text.write(toFile: source, atomically: true, encoding: .utf8)
        return try compile(source, into: directory, name: name, extra: extra)
    }

    /// The two examples, built once per test run (a build failure fails each test that needs them).
    static var built: (storage: String, fetcher: String, directory: String) {
        get throws { try builtOnce.get() }
    }
    private static let builtOnce = Result { () throws -> (storage: String, fetcher: String, directory: String) in
        let directory = TestSupport.makeTemporaryDirectory("examples")
        let storage = try compile(storageSource, into: directory, name: "libExampleStorage.so")
        let fetcher = try compile(fetcherSource, into: directory, name: "libExampleFetcher.so")
        return (storage, fetcher, directory)
    }

    /// A GOPROXY tree from Tests/Fixtures/make_fixture_proxy.py, written once per test run.
    static var tree: String {
        get throws { try treeOnce.get() }
    }
    private static let treeOnce = Result { () throws -> String in
        let tree = TestSupport.makeTemporaryDirectory("example-tree") + "/tree"
        try TestSupport.makeFixtureProxy(tree)
        return tree
    }

    /// JSON text of {"root": tree}.
    static func rootConfig(_ tree: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: ["root": tree]), as: UTF8.self)
    }
}

/// One row of plugin-check's table, read back from its output.
struct CheckRow: Equatable {
    var name: String
    var outcome: String
    var detail: String

    /// The rows of a plugin-check output (the lines between the heading and the summary).
    static func parse(_ output: String) -> [CheckRow] {
        output.split(separator: "\n").compactMap { line -> CheckRow? in
            let text = String(line)
            guard text.count > CheckReport.nameWidth + 1, !text.hasPrefix("CHECK ") else { return nil }
            let name = String(text.prefix(CheckReport.nameWidth)).trimmingCharacters(in: .whitespaces)
            let rest = text.dropFirst(CheckReport.nameWidth + 1)
            let outcome = String(rest.prefix(6)).trimmingCharacters(in: .whitespaces)
            guard ["PASS", "FAIL", "SKIP"].contains(outcome) else { return nil }
            return CheckRow(name: name, outcome: outcome, detail: String(rest.dropFirst(7)))
        }
    }
}

/// The C examples: built with the documented command line, passing plugin-check, serving the go command.
@Suite("C example plugins", .blockingBodies, .serialized)
struct ExamplePluginsTests {
    @Test("both examples build with -Wall -Wextra -Werror, with cc and through the Makefile")
    func build() throws {
        let built = try CPluginBuild.built
        #expect(FileManager.default.fileExists(atPath: built.storage))
        #expect(FileManager.default.fileExists(atPath: built.fetcher))
        let out = TestSupport.makeTemporaryDirectory("make")
        defer { TestSupport.removeDirectory(out) }
        let make = try TestSupport.run("/usr/bin/make", ["-C", CPluginBuild.examples, "OUT=" + out])
        #expect(make.status == 0, "\(make.stdout) \(make.stderr)")
        for name in ["libExampleStorage.so", "libExampleFetcher.so"] {
            let library = try PluginLibrary(path: out + "/" + name)
            #expect(library.descriptor.toolchain == nil, "C plugins carry no toolchain")
        }
        // Each needs nothing but libc (and pthreads): no Swift runtime, no athens symbol.
        let needed = try TestSupport.run("/usr/bin/readelf", ["-d", built.storage]).stdout
        #expect(!needed.contains("swift"))
    }

    @Test("athens plugin-check passes the C storage example, catalog included")
    func storagePassesPluginCheck() throws {
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", CPluginBuild.built.storage], timeout: 300)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let rows = CheckRow.parse(result.stdout)
        #expect(rows.count >= 20)
        // The example has no url entry (redirects are optional): that row is a SKIP, never a FAIL.
        #expect(rows.allSatisfy { $0.outcome == "PASS" || ($0.name == "storage: url of a saved zip" && $0.outcome == "SKIP") },
                "\(rows.filter { $0.outcome != "PASS" })")
        #expect(rows.first { $0.name.hasPrefix("storage: round trip") }?.detail.contains(".zip=fd") == true)
        #expect(rows.first { $0.name.hasPrefix("storage: large streamed zip") }?.detail.hasPrefix("64 MiB") == true)
    }

    @Test("athens plugin-check passes the C fetcher example for every kind of module in the tree", arguments: [
        ("example.com/hello", "v1.1.0"), ("example.com/hello", "v1.2.0-pre.1"), ("example.com/Upper/Case", "v0.1.0"),
        ("example.com/multi/v2", "v2.0.0"), ("example.com/legacy", "v2.0.0+incompatible"),
    ])
    func fetcherPassesPluginCheck(module: String, version: String) throws {
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", CPluginBuild.built.fetcher,
                                                              "--config", CPluginBuild.rootConfig(CPluginBuild.tree),
                                                              "--module", module, "--version", version])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let rows = CheckRow.parse(result.stdout)
        #expect(rows.count == 15)
        #expect(rows.allSatisfy { $0.outcome == "PASS" }, "\(rows.filter { $0.outcome != "PASS" })")
    }

    @Test("the examples refuse bad configs, naming the problem", arguments: [
        ("storage", #"{"bogus":"x"}"#, "unknown key \"bogus\""),
        ("storage", #"{"spoolDirectory":1}"#, "spoolDirectory must be a non-empty JSON string"),
        ("storage", #"{"spoolDirectory":"/nonexistent/dir"}"#, "/nonexistent/dir"),
        ("storage", "[]", "must be a JSON object"),
        ("fetcher", "{}", "root is required"),
        ("fetcher", #"{"root":"/nonexistent/tree"}"#, "/nonexistent/tree is not a directory"),
        ("fetcher", #"{"root":"/tmp","extra":"1"}"#, "unknown key \"extra\""),
        ("fetcher", #"{"root":"/tmp"} trailing"#, "text after the object"),
    ])
    func badConfigs(kind: String, config: String, message: String) throws {
        let path = try kind == "storage" ? CPluginBuild.built.storage : CPluginBuild.built.fetcher
        let library = try PluginLibrary(path: path)
        let error = #expect(throws: PluginError.self) {
            if kind == "storage" { _ = try StoragePlugin(library: library, configJSON: config) } else { _ = try FetcherPlugin(library: library, configJSON: config) }
        }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains(message) == true, "got: \(error?.message ?? "")")
    }

    @Test("the example fetcher lists only canonical tagged versions and resolves latest as the go command does")
    func fetcherVersions() throws {
        let tree = TestSupport.makeTemporaryDirectory("versions-tree")
        defer { TestSupport.removeDirectory(tree) }
        let versions = tree + "/example.com/v/@v"
        try FileManager.default.createDirectory(atPath: versions, withIntermediateDirectories: true)
        let listed = ["v1.2.0", "v1.10.0 2024-01-01T00:00:00Z", "v1.9.9", "junk", "v1.2", "v0.0.0-20240101000000-abcdefabcdef",
                      "v1.11.0-0.20240101000000-abcdefabcdef", "v2.0.0-rc.1", "v01.0.0", ""]
        try (listed.joined(separator: "\n") + "\n").write(toFile: versions + "/list", atomically: true, encoding: .utf8)
        try #"{"Version":"v1.10.0"}"#.write(toFile: versions + "/v1.10.0.info", atomically: true, encoding: .utf8)
        let fetcher = try FetcherPlugin(library: PluginLibrary(path: CPluginBuild.built.fetcher), configJSON: CPluginBuild.rootConfig(tree))
        #expect(Set(try fetcher.list(module: "example.com/v")) == ["v1.2.0", "v1.10.0", "v1.9.9", "v2.0.0-rc.1"])
        // Numeric, not textual, order: v1.10.0 beats v1.9.9; a release beats a later pre-release.
        #expect(String(decoding: try fetcher.resolve(module: "example.com/v", query: "latest"), as: UTF8.self) == #"{"Version":"v1.10.0"}"#)
        let branch = #expect(throws: PluginError.self) { _ = try fetcher.resolve(module: "example.com/v", query: "main") }
        #expect(branch?.code == .notFound)
        let unknown = #expect(throws: PluginError.self) { _ = try fetcher.list(module: "example.com/nothing") }
        #expect(unknown?.code == .notFound)
    }

    @Test("the go command through athens with the C storage and C fetcher gets exactly the hashes of GOPROXY=file://tree")
    func goCommandEndToEnd() throws {
        let work = TestSupport.makeTemporaryDirectory("example-e2e")
        defer { TestSupport.removeDirectory(work) }
        let tree = try CPluginBuild.tree
        let built = try CPluginBuild.built
        let manifest = work + "/athens.json"
        let manifestObject: [String: Any] = [
            "listen": "127.0.0.1:0",
            "storage": ["plugin": built.storage, "config": ["spoolDirectory": work]],
            "fetchers": [["name": "tree", "plugin": built.fetcher, "config": ["root": tree]]],
        ]
        try JSONSerialization.data(withJSONObject: manifestObject).write(to: URL(fileURLWithPath: manifest))
        let athens = try ChildProcess(TestSupport.athens, ["--config", manifest])
        defer { athens.stop() }
        let line = try #require(athens.firstLine(), "athens did not start: \(athens.stderr)")
        let address = try #require(line.split(separator: " ").last.map(String.init))
        let proxy = "http://" + address
        let modules = ["example.com/hello@v1.0.0", "example.com/hello@v1.2.0-pre.1", "example.com/Upper/Case@v0.1.0",
                       "example.com/multi/v2@v2.0.0", "example.com/legacy@v2.0.0+incompatible", "example.com/m@v1.0.0"]
        let direct = try goDownloadSums(modules, proxy: "file://" + tree, work: work)
        let viaAthens = try goDownloadSums(modules, proxy: proxy, work: work)
        #expect(direct.count == modules.count)
        #expect(viaAthens == direct)
        #expect(viaAthens["example.com/m@v1.0.0"]?.first == "h1:fCHMqo5ggHEQvwcrsN81zr5orRk5lClR36KRHpfUjKg=")
        // Served from the C storage the second time: the same hashes from a cold client.
        #expect(try goDownloadSums(modules, proxy: proxy, work: work) == direct)
        let versions = try go(["list", "-m", "-versions", "example.com/hello"], proxy: proxy, work: work)
        #expect(versions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "example.com/hello v1.0.0 v1.1.0 v1.2.0-pre.1", "\(versions.stderr)")
        let latest = try go(["list", "-m", "example.com/hello@latest"], proxy: proxy, work: work)
        #expect(latest.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "example.com/hello v1.1.0", "\(latest.stderr)")
    }

    private func go(_ arguments: [String], proxy: String, work: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let home = work + "/home-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": home, "GOPATH": home + "/gopath",
                   "GOCACHE": home + "/gocache", "GOMODCACHE": home + "/modcache", "GOPROXY": proxy, "GOSUMDB": "off",
                   "GOFLAGS": "-modcacherw", "GO111MODULE": "on", "GONOPROXY": "", "GOPRIVATE": "", "GONOSUMDB": ""]
        return try TestSupport.run("/usr/bin/env", ["go"] + arguments, environment: env, directory: home)
    }

    /// `go mod download -json` as path@version → [Sum, GoModSum].
    private func goDownloadSums(_ modules: [String], proxy: String, work: String) throws -> [String: [String]] {
        let result = try go(["mod", "download", "-json"] + modules, proxy: proxy, work: work)
        #expect(result.status == 0, "go mod download via \(proxy): \(result.stderr) \(result.stdout)")
        var sums: [String: [String]] = [:]
        for chunk in result.stdout.components(separatedBy: "\n}") where chunk.contains("\"Path\"") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data((chunk + "\n}").utf8)) as? [String: Any])
            #expect(object["Error"] == nil, "\(object)")
            sums["\(object["Path"] ?? "")@\(object["Version"] ?? "")"] = [object["Sum"] as? String ?? "", object["GoModSum"] as? String ?? ""]
        }
        return sums
    }
}
