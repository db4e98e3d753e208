// GitFetcher against the go command itself: for each fixture query, direct mode (GOPROXY=direct, git over
// file:// repos) and GitFetcher must agree on the resolved version, the .info time, and the h1: hashes of the
// zip and go.mod. GitFetcher's output is served to the go command as a GOPROXY=file:// tree, so the hashes
// are computed by the go command on both sides and the go command also validates our zips.
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Foundation
import GoModule
import Testing

@Suite("GitFetcher cross-check with the go command's direct mode")
struct GitFetcherCrossCheckTests {
    /// module@query, each a case of the issue: tags, pre-release, retractions, branches, commits, /v2 in both
    /// conventions, +incompatible, a subdirectory module with prefixed tags, upper case, vendor directories,
    /// nested modules (go.mod and GO.MOD), symlinks, odd names, a large file, .gitattributes, CRLF.
    static let queries = [
        "github.com/fixture/hello@v1.0.0",
        "github.com/fixture/hello@v1.1.0",             // vendor/, nested go.mod, symlinks, odd names, .gitattributes
        "github.com/fixture/hello@v1.2.0-pre.1",
        "github.com/fixture/hello@v1.3.0",             // large file, retract block
        "github.com/fixture/hello@latest",             // v1.1.0 and v1.3.0 retracted: v1.0.0
        "github.com/fixture/hello@feature",            // branch → pseudo-version on a +meta tag base
        "github.com/fixture/hello@main",
        "github.com/fixture/multi@v1.0.0",
        "github.com/fixture/multi/sub@v1.0.0",         // subdirectory module, sub/ tags, root LICENSE copied
        "github.com/fixture/multi/sub@v1.1.0",
        "github.com/fixture/multi/sub@latest",
        "github.com/fixture/multi/sub@main",
        "github.com/fixture/multi/v2@v2.0.0",          // /v2 in a v2/ subdirectory
        "github.com/fixture/major@v1.0.0",
        "github.com/fixture/major/v2@v2.0.0",          // /v2 on the major branch (root go.mod)
        "github.com/fixture/major/v2@v2.1.0",
        "github.com/fixture/major/v2@main",
        "github.com/fixture/legacy@v1.0.0",            // no go.mod: synthesised
        "github.com/fixture/legacy@v2.0.0+incompatible",
        "github.com/fixture/legacy@latest",
        "github.com/fixture/legacy@main",              // pseudo-version with +incompatible
        "github.com/Fixture/UpperCase@v0.1.0",
        "github.com/fixture/notags@latest",            // no tags: pseudo-version of the default branch
    ]

    /// Direct-mode results for every query (and the commit queries), downloaded once in one go command run.
    static let direct = Result { () throws -> [String: GoDownloaded] in
        let fixture = try GitFixture.shared()
        return try fixture.goDownload(queries + (try commitQueries()), proxy: "direct")
    }

    /// Commit-hash queries: a 12-digit prefix of a branch commit, and the full hash of a tagged commit.
    static func commitQueries() throws -> [String] {
        let fixture = try GitFixture.shared()
        let feature = try fixture.commit("github.com/fixture/hello", "feature")
        let tagged = try fixture.commit("github.com/fixture/multi", "sub/v1.0.0")
        return ["github.com/fixture/hello@" + feature.prefix(12), "github.com/fixture/multi/sub@" + tagged]
    }

    /// One GitFetcher instance for the suite: concurrent tests share its mirrors, as in production.
    static let fetcher = Result { () throws -> FetcherPlugin in
        let fixture = try GitFixture.shared()
        return try GitFetcherDriver.load(fixture.config(cache: fixture.work + "/crosscheck-mirrors"))
    }

    /// Resolves and fetches `query` with GitFetcher, then has the go command download the result from a
    /// GOPROXY=file:// tree; everything must equal direct mode.
    func check(_ query: String) throws {
        let direct = try #require(try Self.direct.get()[query], "direct mode gave no answer for \(query)")
        let directVersion = try #require(direct.version, "direct mode failed for \(query): \(direct.error ?? "")")
        let parts = query.split(separator: "@", maxSplits: 1).map(String.init)
        let module = parts[0]
        let fetcher = try Self.fetcher.get()

        let info = try GitFetcherDriver.resolve(fetcher, module, parts[1])
        #expect(info["Version"] as? String == directVersion, "\(query): GitFetcher resolved \(info["Version"] ?? "nil")")
        let fetched = try GitFetcherDriver.fetch(fetcher, module, directVersion)
        #expect(fetched.version == directVersion)
        // The .info as the go command wrote it in direct mode: same version and time.
        let directInfo = try #require(try JSONSerialization.jsonObject(with: Data((direct.info ?? "").utf8)) as? [String: Any])
        let ourInfo = try #require(try JSONSerialization.jsonObject(with: Data(fetched.info)) as? [String: Any])
        #expect(ourInfo["Time"] as? String == directInfo["Time"] as? String, "\(query): .info Time")

        let tree = TestSupport.makeTemporaryDirectory("gitfetcher-tree")
        defer { TestSupport.removeDirectory(tree) }
        try GitFetcherDriver.store(fetched, module: module, version: directVersion, tree: tree)
        let fixture = try GitFixture.shared()
        let viaTree = try fixture.goDownload(["\(module)@\(directVersion)"], proxy: "file://" + tree)
        let ours = try #require(viaTree["\(module)@\(directVersion)"])
        #expect(ours.error == nil, "\(query): the go command refused GitFetcher's files: \(ours.error ?? "")")
        #expect(ours.sum == direct.sum, "\(query): zip h1")
        #expect(ours.goModSum == direct.goModSum, "\(query): go.mod h1")
    }

    @Test("resolve, .info, zip and go.mod hashes equal the go command's direct mode", arguments: queries)
    func sameAsDirectMode(query: String) throws {
        try check(query)
    }

    @Test("commit hashes (a prefix, a full tagged hash) resolve as in direct mode")
    func commits() throws {
        for query in try Self.commitQueries() { try check(query) }
    }

    @Test("the version list equals go list -m -versions -retracted in direct mode",
          arguments: ["github.com/fixture/hello", "github.com/fixture/multi", "github.com/fixture/multi/sub",
                      "github.com/fixture/multi/v2", "github.com/fixture/major", "github.com/fixture/major/v2",
                      "github.com/fixture/legacy", "github.com/Fixture/UpperCase", "github.com/fixture/notags"])
    func listEqualsDirectMode(module: String) throws {
        let fixture = try GitFixture.shared()
        let expected = try fixture.goListVersions(module)
        let ours = SemVer.sorted(try Self.fetcher.get().list(module: module))
        #expect(ours == expected)
    }

    @Test("a case-fold collision fails in both: the go command's create-zip error, not found from GitFetcher")
    func collision() throws {
        let fixture = try GitFixture.shared()
        let direct = try fixture.goDownload(["github.com/fixture/collide@v1.0.0"], proxy: "direct")
        let error = try #require(direct["github.com/fixture/collide@v1.0.0"]?.error)
        #expect(error.contains("case-insensitive file name collision"))
        let failure = #expect(throws: PluginError.self) {
            _ = try GitFetcherDriver.fetch(try Self.fetcher.get(), "github.com/fixture/collide", "v1.0.0")
        }
        #expect(failure?.code == .notFound)
        #expect(failure?.message.contains("case-insensitive file name collision: \"README.txt\" and \"readme.txt\"") == true)
    }
}
