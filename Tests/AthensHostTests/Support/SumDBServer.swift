import Foundation
import Testing

/// The test checksum database (Tests/Fixtures/sumdb, x/mod's own sumdb server) on 127.0.0.1; stopped by `stop()`.
final class SumDBServer: @unchecked Sendable {
    let process: ChildProcess
    let url: String
    let port: UInt16
    /// "name+hash+key", as GOSUMDB takes it.
    let verifierKey: String
    /// "PRIVATE+KEY+…", to start another server that signs with the same key.
    let signerKey: String
    let logPath: String

    /// The helper, built once per test process (offline: Debian's x/mod in GOPATH mode).
    static let binary: Result<String, TestFailure> = {
        let directory = NSTemporaryDirectory() + "/athens-sumdb-fixture-\(getuid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let output = directory + "/sumdb-\(getpid())"
        let environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": directory,
            "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": directory + "/gocache", "GOFLAGS": "",
        ]
        do {
            let result = try TestSupport.run("/usr/bin/env", ["go", "build", "-o", output,
                                                              TestSupport.packageRoot + "/Tests/Fixtures/sumdb/main.go"],
                                             environment: environment, timeout: 300)
            guard result.status == 0 else {
                return .failure(TestFailure("building the sumdb fixture failed (is golang-golang-x-mod-dev installed?): \(result.stderr)"))
            }
            return .success(output)
        } catch {
            return .failure(TestFailure("building the sumdb fixture: \(error)"))
        }
    }()

    /// Starts a server; `gosum` lines are all added at start in order, `proxy` versions on first lookup.
    init(gosum: String? = nil, proxy: String? = nil, signerKey: String? = nil, directory: String) throws {
        let binary = try Self.binary.get()
        var arguments: [String] = []
        if let gosum {
            let path = directory + "/gosum-\(UUID().uuidString)"
            try gosum.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["-gosum", path]
        }
        if let proxy { arguments += ["-proxy", proxy] }
        if let signerKey { arguments += ["-key", signerKey] }
        logPath = directory + "/sumdb-log-\(UUID().uuidString)"
        arguments += ["-log", logPath]
        process = try ChildProcess(binary, arguments)
        guard let line = process.firstLine() else { throw TestFailure("sumdb did not start: \(process.stderr)") }
        let fields = line.split(separator: " ").map(String.init)
        guard fields.count == 3, let port = UInt16(fields[0].split(separator: ":").last ?? "") else {
            throw TestFailure("sumdb printed \(line)")
        }
        url = fields[0]
        self.port = port
        verifierKey = fields[1]
        self.signerKey = fields[2]
    }

    /// GETs `path` (relative, e.g. "lookup/…"); the body of a 200, else throws. HTTP/1.0 so that the body simply
    /// runs to the close, whatever framing the server would choose.
    func fetch(_ path: String) throws -> [UInt8] {
        let client = try RawClient(port: port)
        client.send("GET /\(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        let answer = client.readAll(timeout: 30)
        guard let end = answer.indices.dropLast(3).first(where: { answer[$0] == 13 && answer[$0 + 1] == 10 && answer[$0 + 2] == 13 && answer[$0 + 3] == 10 }) else {
            throw TestFailure("no answer to \(path)")
        }
        let statusLine = String(decoding: answer[..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let body = Array(answer[(end + 4)...])
        guard statusLine.split(separator: " ").dropFirst().first == "200" else {
            throw TestFailure("\(statusLine): \(String(decoding: body, as: UTF8.self))")
        }
        return body
    }

    /// Every request path the server has seen so far.
    var requests: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() { process.stop() }
}
