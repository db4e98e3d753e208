import Foundation
import Testing

/// Start-up failures of the athens command: one line naming the file or key, non-zero exit.
@Suite("athens command")
struct AthensCommandTests {
    static func start(manifest: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = TestSupport.makeTemporaryDirectory("cmd")
        defer { TestSupport.removeDirectory(dir) }
        let path = dir + "/athens.json"
        try manifest.write(toFile: path, atomically: true, encoding: .utf8)
        return try TestSupport.run(TestSupport.athens, ["--config", path], timeout: 30)
    }

    @Test("bad manifests and plugins stop start-up with one clear line", arguments: [
        (#"{"listen": 1}"#, "manifest.listen: must be a string"),
        (#"{"storage": {"plugin": "NoSuchPlugin"}}"#, "libNoSuchPlugin.so: cannot load"),
        (#"{"storage": {"plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:9"}}}"#, "is a fetcher plugin"),
        (#"{"storage": {"plugin": "MemoryStorage", "config": {"size": 1}}}"#, "storage.config: config.size: unknown key"),
        (#"{"storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {}}]}"#, "fetchers[0].config:"),
        (#"{"storage": {"plugin": "MemoryStorage"}, "listen": "127.0.0.1:notaport"}"#, "bad port"),
    ])
    func badStart(manifest: String, message: String) throws {
        let fixed = manifest.replacingOccurrences(of: "{\"", with: "{\"pluginDirectory\": \"\(TestSupport.productsDirectory)\", \"", options: [], range: manifest.range(of: "{\""))
        let result = try Self.start(manifest: fixed)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.hasPrefix("athens: "))
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
    }

    @Test("an unreadable manifest file is named")
    func missingManifest() throws {
        let result = try TestSupport.run(TestSupport.athens, ["--config", "/nonexistent/athens.json"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("/nonexistent/athens.json"))
    }

    @Test("unknown arguments are refused; --version answers")
    func arguments() throws {
        let bad = try TestSupport.run(TestSupport.athens, ["--bogus"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown argument --bogus"))
        let version = try TestSupport.run(TestSupport.athens, ["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.contains("plugin ABI 1.0"))
    }
}
