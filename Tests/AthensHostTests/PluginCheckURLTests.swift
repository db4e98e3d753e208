// `athens plugin-check`'s url row against the redirect fixture (Tests/Fixtures/CPlugins/redirect_storage.c): honest
// (a loopback file server serving the very bytes it saved), declining, and lying ($ATH_TEST_URL_LIE: wrong bytes, no
// NUL, a file: URL). The checks run in a child athens, since the fixture reads its answers from the environment.
import Foundation
import Testing
@testable import PluginCheck

@Suite("plugin-check: the storage url entry", .blockingBodies)
struct PluginCheckURLTests {
    static let directory = TestSupport.makeTemporaryDirectory("plugin-check-url")
    static let rowName = "storage: url of a saved zip"

    /// The url row of `athens plugin-check` on `source` with `environment` added, and the whole output.
    static func urlRow(_ source: String = "redirect_storage.c", environment: [String: String] = [:]) throws -> (row: CheckRow, output: String) {
        let plugin = try TestSupport.compileCPlugin(source, into: directory, name: "lib\(source.prefix { $0 != "." })-\(UUID().uuidString).so")
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", plugin, "--large-zip-mib", "1"],
                                         environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, timeout: 300)
        let output = result.stdout + result.stderr
        let row = try #require(CheckRow.parse(result.stdout).first { $0.name == rowName }, "no url row: \(output)")
        return (row, output)
    }

    /// A file server on 127.0.0.1 over a fresh directory the fixture publishes every saved version into.
    static func published() throws -> (files: FakeUpstream, environment: [String: String]) {
        let tree = TestSupport.makeTemporaryDirectory("url-tree")
        let files = try FakeUpstream(root: tree, logPath: directory + "/files-\(UUID().uuidString).log")
        return (files, ["ATH_TEST_URL_DIR": tree, "ATH_TEST_URL_BASE": files.url])
    }

    @Test("a URL on a loopback file server that serves open's bytes passes, and was fetched")
    func honestURL() throws {
        let (files, environment) = try Self.published()
        defer { files.stop() }
        let (row, output) = try Self.urlRow(environment: environment)
        #expect(row.outcome == "PASS", "\(output)")
        #expect(row.detail.contains("valid 600 s; GET on 127.0.0.1 gave open's 70000 bytes"), "\(row)")
        #expect(files.requests.contains { $0.hasSuffix("/@v/v1.0.0.zip") && $0.contains("athens-plugin-check") }, "\(files.requests)")
        #expect(!row.detail.contains(files.url), "the URL itself is not printed")
    }

    @Test("declining (ATH_DECLINED) passes: the host serves bytes")
    func declines() throws {
        let (row, output) = try Self.urlRow(environment: ["ATH_TEST_URL_LIE": "decline"])
        #expect(row.outcome == "PASS" && row.detail.contains("declines"), "\(output)")
        // A decline is an answer, not a failure: its message is not audited.
        let audit = CheckRow.parse(output).first { $0.name == "storage: error messages NUL-terminated, bounded" }
        #expect(audit?.outcome == "PASS", "\(String(describing: audit))")
    }

    @Test("lying url answers fail the row with what is wrong", arguments: [
        ("wrongbytes", "bytes that differ from open's 70000"),
        ("nonul", "not NUL-terminated within ATH_URL_CAPACITY bytes"),
        ("file", "not an absolute http:// or https:// URL"),
    ])
    func lies(lie: String, detail: String) throws {
        let (files, environment) = try Self.published()
        defer { files.stop() }
        let (row, output) = try Self.urlRow(environment: environment.merging(["ATH_TEST_URL_LIE": lie]) { $1 })
        #expect(row.outcome == "FAIL", "\(output)")
        #expect(row.detail.contains(detail), "\(row)")
    }

    @Test("a storage without the url entry skips the row")
    func noEntry() throws {
        let (row, output) = try Self.urlRow("test_storage.c")
        #expect(row.outcome == "SKIP" && row.detail.contains("no url entry"), "\(output)")
    }

    @Test("only loopback URLs are fetched: 127.0.0.0/8, localhost, [::1]; not names that start with 127.")
    func loopbackHosts() {
        #expect(StorageChecks.loopbackHost("http://127.0.0.1:9000/a.zip") == "127.0.0.1")
        #expect(StorageChecks.loopbackHost("https://user:pw@LOCALHOST/x") == "LOCALHOST")
        #expect(StorageChecks.loopbackHost("http://[::1]:80/x") == "[::1]")
        #expect(StorageChecks.loopbackHost("http://127.2.3.4?x") == "127.2.3.4")
        #expect(StorageChecks.loopbackHost("http://127.example.com/x") == nil)
        #expect(StorageChecks.loopbackHost("https://s3.example/b/k?X-Amz-Signature=1") == nil)
        #expect(StorageChecks.loopbackHost("http://10.0.0.1/a@127.0.0.1") == nil)
        #expect(StorageChecks.loopbackHost("no scheme") == nil)
    }
}
