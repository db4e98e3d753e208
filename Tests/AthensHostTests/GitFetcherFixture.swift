// Shared fixture of the GitFetcher tests: local git repositories made by Tests/Fixtures/git/make_repos.sh,
// the go command in direct mode pointed at them (git's url.insteadOf maps https://github.com/ to the local
// bare repos; GIT_CONFIG_NOSYSTEM keeps the machine's own git config out), and helpers to drive the plugin.
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Foundation
import GoModule
import Testing

/// One set of fixture repositories per test run, made on first use and shared by the GitFetcher suites.
final class GitFixture: @unchecked Sendable {
    // @unchecked: everything is immutable after init.
    /// Made once per run (a static's lazy initialisation is thread-safe); removed when the test process exits.
    private static let made = Result { () throws -> GitFixture in
        let fixture = try GitFixture()
        atexit { GitFixture.cleanUp() }
        return fixture
    }

    /// The shared fixture.
    static func shared() throws -> GitFixture { try made.get() }

    private static func cleanUp() {
        if case .success(let fixture) = made { TestSupport.removeDirectory(fixture.work) }
    }

    /// Root of the temporary folder (repos/, home/, caches).
    let work: String
    /// Where the bare repositories are: <repos>/github.com/<owner>/<name>.
    let repos: String
    /// HOME for the go command and for athens: its .gitconfig maps https://github.com/ to `repos`.
    let home: String
    /// Repository root module path → file:// URL, for GitFetcher's `repositories` rules.
    static let roots = ["github.com/fixture/hello", "github.com/fixture/multi", "github.com/fixture/major",
                        "github.com/fixture/legacy", "github.com/Fixture/UpperCase", "github.com/fixture/notags",
                        "github.com/fixture/collide"]

    private init() throws {
        work = TestSupport.makeTemporaryDirectory("gitfetcher")
        repos = work + "/repos"
        home = work + "/home"
        let made = try TestSupport.run("/bin/bash", [TestSupport.packageRoot + "/Tests/Fixtures/git/make_repos.sh", repos, "8"])
        guard made.status == 0 else { throw TestFailure("make_repos.sh: \(made.stderr)") }
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try "[url \"file://\(repos)/github.com/\"]\n\tinsteadOf = https://github.com/\n"
            .write(toFile: home + "/.gitconfig", atomically: true, encoding: .utf8)
    }

    /// The file:// URL of a fixture repository root.
    func url(_ root: String) -> String { "file://" + repos + "/" + root }

    /// GitFetcher config with one rule per fixture repository and a mirror folder of its own.
    func config(cache: String, extra: String = "") -> String {
        let rules = Self.roots.map { #"{"root": "\#($0)", "url": "\#(url($0))"}"# }.joined(separator: ", ")
        return #"{"cacheDirectory": "\#(cache)", "repositories": [\#(rules)]\#(extra)}"#
    }

    /// A commit hash of a fixture repository (`rev` is anything git rev-parse takes).
    func commit(_ root: String, _ rev: String) throws -> String {
        let result = try TestSupport.run("/usr/bin/env", ["git", "--git-dir=" + repos + "/" + root, "rev-parse", rev + "^{commit}"])
        guard result.status == 0 else { throw TestFailure("git rev-parse \(rev): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The environment of a go command (or athens) run: the fixture HOME, a fresh module cache, GOPROXY as given.
    func goEnvironment(proxy: String, cache: String) -> [String: String] {
        [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": home, "GOPATH": cache + "/gopath", "GOCACHE": cache + "/gocache", "GOMODCACHE": cache + "/modcache",
            "GOPROXY": proxy, "GOSUMDB": "off", "GOFLAGS": "-modcacherw", "GO111MODULE": "on",
            "GONOPROXY": "", "GOPRIVATE": "", "GONOSUMDB": "", "GOINSECURE": "", "GIT_CONFIG_NOSYSTEM": "1",
        ]
    }

    /// `go mod download -json <queries>` as Path@Query (Path@Version for exact versions) → what it said.
    func goDownload(_ queries: [String], proxy: String) throws -> [String: GoDownloaded] {
        let cache = TestSupport.makeTemporaryDirectory("gocache")
        defer { TestSupport.removeDirectory(cache) }
        let result = try TestSupport.run("/usr/bin/env", ["go", "mod", "download", "-json"] + queries,
                                         environment: goEnvironment(proxy: proxy, cache: cache), directory: home, timeout: 300)
        var downloads: [String: GoDownloaded] = [:]
        // The go command prints one JSON object per argument.
        for chunk in result.stdout.components(separatedBy: "\n}") where chunk.contains("\"Path\"") {
            guard let object = try JSONSerialization.jsonObject(with: Data((chunk + "\n}").utf8)) as? [String: Any] else { continue }
            // The .info body is read now: the cache is removed on return.
            let info = (object["Info"] as? String).flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            let key = "\(object["Path"] ?? "")@\(object["Query"] ?? object["Version"] ?? "")"
            downloads[key] = GoDownloaded(version: object["Version"] as? String, sum: object["Sum"] as? String,
                                          goModSum: object["GoModSum"] as? String, error: object["Error"] as? String, info: info)
        }
        return downloads
    }

    /// `go list -m -versions -retracted <module>` in direct mode: every listed version, retracted ones included.
    func goListVersions(_ module: String) throws -> [String] {
        let cache = TestSupport.makeTemporaryDirectory("gocache")
        defer { TestSupport.removeDirectory(cache) }
        let result = try TestSupport.run("/usr/bin/env", ["go", "list", "-m", "-versions", "-retracted", module],
                                         environment: goEnvironment(proxy: "direct", cache: cache), directory: home)
        guard result.status == 0 else { throw TestFailure("go list -m -versions \(module): \(result.stderr)") }
        return Array(result.stdout.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init))
    }
}

/// One module of a `go mod download -json` run.
struct GoDownloaded: Sendable, Equatable {
    var version: String?
    var sum: String?
    var goModSum: String?
    var error: String?
    /// The .info file the go command stored.
    var info: String?
}

/// What one GitFetcher fetch wrote into its three sinks.
struct GitFetched {
    var info: [UInt8] = []
    var mod: [UInt8] = []
    var zip: [UInt8] = []

    /// The .info "Version".
    var version: String? {
        (try? JSONSerialization.jsonObject(with: Data(info)) as? [String: Any])?["Version"] as? String
    }
}

/// Helpers around a loaded libGitFetcher.so.
enum GitFetcherDriver {
    /// Loads the built plugin with `config`.
    static func load(_ config: String) throws -> FetcherPlugin {
        try FetcherPlugin(library: PluginLibrary(path: TestSupport.plugin("GitFetcher")), configJSON: config)
    }

    /// Fetches module@version into memory.
    static func fetch(_ fetcher: FetcherPlugin, _ module: String, _ version: String) throws -> GitFetched {
        var got = GitFetched()
        try fetcher.fetch(module: module, version: version,
                          info: { got.info += $0; return true },
                          mod: { got.mod += $0; return true },
                          zip: { got.zip += $0; return true })
        return got
    }

    /// The .info JSON object `resolve` gives for `query`.
    static func resolve(_ fetcher: FetcherPlugin, _ module: String, _ query: String) throws -> [String: Any] {
        let bytes = try fetcher.resolve(module: module, query: query)
        return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// Writes a fetched version into a GOPROXY tree rooted at `tree` (served with GOPROXY=file://tree).
    static func store(_ fetched: GitFetched, module: String, version: String, tree: String) throws {
        let directory = tree + "/" + (try ModulePath.escapePath(module)) + "/@v/"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = directory + (try ModulePath.escapeVersion(version))
        try Data(fetched.info).write(to: URL(fileURLWithPath: name + ".info"))
        try Data(fetched.mod).write(to: URL(fileURLWithPath: name + ".mod"))
        try Data(fetched.zip).write(to: URL(fileURLWithPath: name + ".zip"))
    }
}
