// The go command through the built athens with GitFetcher as its only fetcher (no upstream proxy): what it
// downloads must hash exactly as what it downloads from the same repositories in direct mode.
import Foundation
import Testing

@Suite("end to end: the go command through athens with GitFetcher only", .blockingBodies, .serialized)
final class GitFetcherEndToEndTests {
    let work = TestSupport.makeTemporaryDirectory("gitfetcher-e2e")
    let fixture: GitFixture
    let athens: ChildProcess
    let athensURL: String

    init() throws {
        let fixture = try GitFixture.shared()
        self.fixture = fixture
        // UpperCase has no rule: it is found through the github.com layout and git's insteadOf in HOME.
        let rules = GitFixture.roots.filter { $0 != "github.com/Fixture/UpperCase" }
            .map { #"{"root": "\#($0)", "url": "\#(fixture.url($0))"}"# }.joined(separator: ", ")
        let manifest = work + "/athens.json"
        try """
            {"listen": "127.0.0.1:0", "pluginDirectory": "\(TestSupport.productsDirectory)",
             "storage": {"plugin": "MemoryStorage", "config": {}},
             "fetchers": [{"name": "git", "plugin": "GitFetcher",
                           "config": {"cacheDirectory": "\(work)/mirrors", "repositories": [\(rules)]}}]}
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        var environment = fixture.goEnvironment(proxy: "off", cache: work)
        environment["GOPROXY"] = nil
        athens = try ChildProcess(TestSupport.athens, ["--config", manifest], environment: environment)
        guard let line = athens.firstLine(), line.hasPrefix("listening on "), let address = line.split(separator: " ").last else {
            throw TestFailure("athens did not start: \(athens.stderr)")
        }
        athensURL = "http://\(address)"
    }

    deinit {
        athens.stop()
        TestSupport.removeDirectory(work)
    }

    static let queries = ["github.com/fixture/hello@v1.1.0", "github.com/fixture/hello@v1.3.0", "github.com/fixture/hello@feature",
                          "github.com/fixture/hello@latest", "github.com/fixture/multi/sub@v1.1.0", "github.com/fixture/multi/v2@v2.0.0",
                          "github.com/fixture/major/v2@latest", "github.com/fixture/legacy@v2.0.0+incompatible",
                          "github.com/fixture/legacy@main", "github.com/Fixture/UpperCase@v0.1.0", "github.com/fixture/notags@latest"]

    @Test("go mod download through athens + GitFetcher gets direct mode's versions and hashes")
    func downloadHashes() throws {
        let direct = try fixture.goDownload(Self.queries, proxy: "direct")
        let viaAthens = try fixture.goDownload(Self.queries, proxy: athensURL)
        for query in Self.queries {
            let expected = try #require(direct[query], "direct: no answer for \(query)")
            #expect(expected.error == nil, "direct: \(query): \(expected.error ?? "")")
            #expect(expected.sum?.hasPrefix("h1:") == true)
            let got = try #require(viaAthens[query], "athens: no answer for \(query)")
            #expect(got.error == nil, "athens: \(query): \(got.error ?? "")")
            #expect(got.version == expected.version, "\(query)")
            #expect(got.sum == expected.sum, "\(query)")
            #expect(got.goModSum == expected.goModSum, "\(query)")
        }
        // A second, cold client is served from storage with the same hashes.
        let again = try fixture.goDownload(Self.queries.filter { !$0.hasSuffix("@latest") && !$0.contains("@main") && !$0.contains("@feature") },
                                           proxy: athensURL)
        #expect(again.count == 6)
        for (key, value) in again { #expect(value.sum == direct[key]?.sum, "\(key)") }
    }

    @Test("go list -m -versions through athens equals direct mode (retracted versions hidden alike)")
    func listVersions() throws {
        for module in ["github.com/fixture/hello", "github.com/fixture/legacy", "github.com/fixture/multi/sub"] {
            let cache = work + "/list-" + UUID().uuidString
            let viaAthens = try TestSupport.run("/usr/bin/env", ["go", "list", "-m", "-versions", module],
                                                environment: fixture.goEnvironment(proxy: athensURL, cache: cache), directory: fixture.home)
            let direct = try TestSupport.run("/usr/bin/env", ["go", "list", "-m", "-versions", module],
                                             environment: fixture.goEnvironment(proxy: "direct", cache: cache + "-d"), directory: fixture.home)
            #expect(viaAthens.status == 0, "\(viaAthens.stderr)")
            #expect(viaAthens.stdout == direct.stdout)
        }
    }

    @Test("an unknown module is 404, so GOPROXY falls through")
    func unknownIs404() throws {
        let cache = work + "/unknown"
        let result = try TestSupport.run("/usr/bin/env", ["go", "mod", "download", "-json", "github.com/fixture/nothere@v1.0.0"],
                                         environment: fixture.goEnvironment(proxy: athensURL, cache: cache), directory: fixture.home)
        #expect(result.status != 0)
        #expect(result.stdout.contains("404") || result.stdout.contains("not found"), "\(result.stdout)")
    }
}
