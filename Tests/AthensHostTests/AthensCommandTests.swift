import Foundation
import Testing

/// Start-up failures of the athens command: one line naming the file or key, non-zero exit.
@Suite("athens command", .blockingBodies)
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

    @Test("the manifest's listen address is used, and a port in use stops a second athens")
    func portInUse() throws {
        let dir = TestSupport.makeTemporaryDirectory("cmd-port")
        defer { TestSupport.removeDirectory(dir) }
        let manifest = dir + "/athens.json"
        try #"{"listen": "127.0.0.1:0", "storage": {"plugin": "MemoryStorage"}, "fetchers": []}"#.write(toFile: manifest, atomically: true, encoding: .utf8)
        let first = try ChildProcess(TestSupport.athens, ["--config", manifest])
        defer { first.stop() }
        let line = try #require(first.firstLine())
        let port = try #require(line.split(separator: ":").last.map(String.init))
        #expect(line == "listening on 127.0.0.1:\(port)")
        #expect(port != "3000" && port != "0")
        let second = try TestSupport.run(TestSupport.athens, ["--config", manifest, "--listen", "127.0.0.1:\(port)"], timeout: 30)
        #expect(second.status != 0)
        #expect(second.stderr.contains("Address already in use"), "\(second.stderr)")
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
        #expect(version.stdout.contains("plugin ABI 1.1"))
    }
}
