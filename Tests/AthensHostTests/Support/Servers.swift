import Foundation
import Testing

/// A fake GOPROXY upstream (Tests/Fixtures/fake_upstream.py) serving a directory, logging every path.
final class FakeUpstream {
    let process: ChildProcess
    let url: String
    let port: UInt16
    let logPath: String

    init(root: String, logPath: String) throws {
        self.logPath = logPath
        process = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/fake_upstream.py",
                                                    "--root", root, "--port", "0", "--log", logPath])
        guard let line = process.firstLine(), let port = UInt16(line.split(whereSeparator: { !$0.isNumber }).last ?? "") else {
            throw TestFailure("upstream did not start: \(process.stderr)")
        }
        self.port = port
        url = "http://127.0.0.1:\(port)"
    }

    /// Every request path the upstream has seen so far.
    var requests: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() { process.stop() }
}

/// The set-up most end-to-end suites share: a fresh work folder holding the fixture GOPROXY tree (`tree`), served by
/// a `FakeUpstream`. When it goes, the upstream is stopped and the folder removed.
final class FixtureUpstream {
    let work: String
    let tree: String
    let upstream: FakeUpstream

    /// `name` prefixes the work folder's name.
    init(_ name: String) throws {
        work = TestSupport.makeTemporaryDirectory(name)
        tree = work + "/tree"
        do {
            try TestSupport.makeFixtureProxy(tree)
            upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        } catch {
            TestSupport.removeDirectory(work)
            throw error
        }
    }

    deinit {
        upstream.stop()
        TestSupport.removeDirectory(work)
    }
}

/// The built athens started with a manifest; stopped by `stop()` or deinit.
final class AthensServer {
    let process: ChildProcess
    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)" }

    /// `manifest` is the JSON text; `listen` and `pluginDirectory` are filled in when absent.
    init(manifest: String, directory: String) throws {
        var text = manifest
        if !text.contains("\"listen\"") { text = text.replacingOccurrences(of: "{", with: "{\"listen\": \"127.0.0.1:0\", ", options: [], range: text.range(of: "{")) }
        if !text.contains("\"pluginDirectory\"") {
            text = text.replacingOccurrences(of: "{", with: "{\"pluginDirectory\": \"\(TestSupport.productsDirectory)\", ", options: [], range: text.range(of: "{"))
        }
        let path = directory + "/athens-\(UUID().uuidString).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        process = try ChildProcess(TestSupport.athens, ["--config", path])
        guard let line = process.firstLine(), line.hasPrefix("listening on "), let port = UInt16(line.split(separator: ":").last ?? "") else {
            throw TestFailure("athens did not start: \(process.stderr)")
        }
        self.port = port
    }

    /// One request on a fresh connection.
    func get(_ path: String, method: String = "GET", timeout: Double = 30) throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        let client = try RawClient(port: port)
        client.send("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        guard let response = client.readResponse(head: method == "HEAD", timeout: timeout) else {
            throw TestFailure("no response to \(path); athens stderr: \(process.stderr)")
        }
        return response
    }

    /// The /metrics text (read a sample with `metric(_:_:labels:)`).
    func metrics() throws -> String { try Self.metrics(port: port) }

    /// The /metrics text of the athens on `port` (one started as a bare ChildProcess too).
    static func metrics(port: UInt16) throws -> String {
        let client = try RawClient(port: port)
        client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        guard let response = client.readResponse(timeout: 20), response.status == 200 else { throw TestFailure("/metrics on port \(port) did not answer 200") }
        return String(decoding: response.body, as: UTF8.self)
    }

    func stop() { process.stop() }
}

/// Runs the go command with a fresh module cache.
enum GoCommand {
    static func run(_ arguments: [String], proxy: String, directory: String? = nil, extraEnvironment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let home = TestSupport.makeTemporaryDirectory("gohome")
        defer { TestSupport.removeDirectory(home) }   // -modcacherw: the module cache is removable
        var env: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": home, "GOPATH": home + "/gopath", "GOCACHE": home + "/gocache",
            "GOMODCACHE": home + "/modcache", "GOPROXY": proxy, "GOSUMDB": "off", "GOFLAGS": "-modcacherw",
            "GO111MODULE": "on", "GONOPROXY": "", "GOPRIVATE": "", "GONOSUMDB": "",
        ]
        env.merge(extraEnvironment) { $1 }
        return try TestSupport.run("/usr/bin/env", ["go"] + arguments, environment: env, directory: directory ?? home)
    }

    /// `go mod download -json` → path@version → Sum (empty when it failed).
    static func sums(_ modules: [String], proxy: String) throws -> [String: String] {
        let result = try run(["mod", "download", "-json"] + modules, proxy: proxy)
        var sums: [String: String] = [:]
        for chunk in result.stdout.components(separatedBy: "\n}") where chunk.contains("\"Path\"") {
            guard let object = try JSONSerialization.jsonObject(with: Data((chunk + "\n}").utf8)) as? [String: Any] else { continue }
            sums["\(object["Path"] ?? "")@\(object["Version"] ?? "")"] = object["Sum"] as? String ?? ""
        }
        return sums
    }
}
