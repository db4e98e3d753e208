import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Whether the go command is installed (Go plugin tests build Examples/gofetcher with it).
let goAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/go")
    || (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/go") }

/// The control signals' bits (SIGHUP, SIGINT, SIGTERM) in /proc's SigBlk masks.
private let controlSignalBits: UInt64 = 1 << (UInt64(SIGHUP) - 1) | 1 << (UInt64(SIGINT) - 1) | 1 << (UInt64(SIGTERM) - 1)

/// Every thread of `pid` but the main one (which takes them, in sigwait, so they read as unblocked there)
/// that does not block all of SIGHUP, SIGINT and SIGTERM, as "tid (comm)".
func threadsTakingControlSignals(_ pid: pid_t) throws -> [String] {
    let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").filter { $0 != String(pid) }
    return tasks.compactMap { tid in
        guard let status = try? TestSupport.run("/bin/cat", ["/proc/\(pid)/task/\(tid)/status"]).stdout,
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
              let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
        let name = status.split(separator: "\n").first { $0.hasPrefix("Name:") }.map(String.init) ?? ""
        return mask & controlSignalBits == controlSignalBits ? nil : "\(tid) (\(name))"
    }
}

/// Go `c-shared` plugins: the example builds and passes plugin-check, serves the go command, and a second Go
/// plugin in one process is refused with a clear line while the first keeps serving.
@Suite("Go plugins", .blockingBodies, .serialized, .enabled(if: goAvailable, "needs the go command"))
struct GoPluginTests {
    static let work = TestSupport.makeTemporaryDirectory("goplugin")

    /// Builds Examples/gofetcher offline (no dependencies) with `-X main.variant=` (another variant: other bytes).
    static func buildExample(variant: String) throws -> String {
        let output = work + "/libGoFetcher-\(variant).so"
        if FileManager.default.fileExists(atPath: output) { return output }
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": work,
                           "GOCACHE": work + "/gocache", "GOPATH": work + "/gopath", "GOFLAGS": "-mod=mod",
                           "GOPROXY": "off", "GO111MODULE": "on", "CGO_ENABLED": "1"]
        let result = try TestSupport.run("/usr/bin/env", ["go", "build", "-buildmode=c-shared", "-ldflags=-X=main.variant=\(variant)", "-o", output, "."],
                                         environment: environment, directory: TestSupport.packageRoot + "/Examples/gofetcher", timeout: 900)
        guard result.status == 0 else { throw TestFailure("go build failed: \(result.stderr)") }
        return output
    }

    @Test("Examples/gofetcher builds with go build -buildmode=c-shared and passes athens plugin-check")
    func examplePassesPluginCheck() throws {
        let library = try Self.buildExample(variant: "a")
        #expect(ELFSymbols.definesAny(of: GoRuntimeGuard.runtimeSymbols, inFileAt: library), "detected as a Go library")
        let check = try TestSupport.run(TestSupport.athens, ["plugin-check", library, "--module", "example.com/gohello", "--version", "v1.0.0"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        #expect(check.stdout.contains("plugin-check OK"), "\(check.stdout)")
        #expect(check.stdout.contains("fetcher plugin \"GoFetcher\""))
        let badConfig = try TestSupport.run(TestSupport.athens, ["plugin-check", library, "--config", #"{"color": "red"}"#,
                                                                 "--module", "example.com/gohello", "--version", "v1.0.0"])
        #expect(badConfig.status != 0)
        #expect(badConfig.stdout.contains("unknown field \\\"color\\\"") || badConfig.stdout.contains("unknown field \"color\""), "\(badConfig.stdout)")
    }

    @Test("a second Go plugin is refused at SIGHUP with a clear line; the first keeps serving the go command")
    func secondGoPluginRefusedAtReload() throws {
        let first = try Self.buildExample(variant: "a"), second = try Self.buildExample(variant: "b")
        let manifestPath = Self.work + "/reload.json"
        func write(_ fetchers: [(String, String)]) throws {
            let list = fetchers.map { #"{"name": "\#($0.0)", "plugin": "\#($0.1)"}"# }.joined(separator: ", ")
            try #"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [\#(list)]}"#
                .write(toFile: manifestPath, atomically: true, encoding: .utf8)
        }
        try write([("go", first)])
        let process = try ChildProcess(TestSupport.athens, ["--config", manifestPath])
        defer { process.stop() }
        let port = try #require(UInt16(process.firstLine()?.split(separator: ":").last ?? ""), "\(process.stderr)")
        func get(_ path: String) throws -> (Int, String) {
            let client = try RawClient(port: port)
            client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(client.readResponse(timeout: 20))
            return (response.status, String(decoding: response.body, as: UTF8.self))
        }
        let list = try get("/example.com/gohello/@v/list")
        #expect(list.0 == 200 && list.1 == "v1.0.0\n", "\(list)")
        // The Go runtime starts its threads with every signal blocked (docs/PLUGINS.md): a SIGHUP cannot land on one.
        #expect(try threadsTakingControlSignals(process.process.processIdentifier) == [])

        try write([("go", first), ("go2", second)])
        kill(process.process.processIdentifier, SIGHUP)
        _ = waitUntil { process.stderr.contains("reload refused") }
        let refusal = process.stderr.split(separator: "\n").first { $0.contains("reload refused") }.map(String.init) ?? ""
        #expect(refusal.contains("fetchers[1].plugin: plugin \(second): is a Go c-shared library, and the Go plugin \(first) is already loaded"), "\(process.stderr)")
        #expect(process.process.isRunning)

        // The first Go plugin still serves: the go command downloads through it (nothing was fetched before).
        let server = "http://127.0.0.1:\(port)"
        let sums = try GoCommand.sums(["example.com/gohello@v1.0.0"], proxy: server)
        #expect(sums["example.com/gohello@v1.0.0"]?.hasPrefix("h1:") == true, "\(sums); \(process.stderr)")
        #expect(try get("/example.com/gohello/@v/v1.0.0.mod").1 == "module example.com/gohello\n\ngo 1.19\n")
        #expect(try threadsTakingControlSignals(process.process.processIdentifier) == [])
    }

    @Test("two Go plugins in one manifest: athens refuses to start, naming both")
    func secondGoPluginRefusedAtStart() throws {
        let first = try Self.buildExample(variant: "a"), second = try Self.buildExample(variant: "b")
        let manifest = Self.work + "/start.json"
        try #"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "a", "plugin": "\#(first)"}, {"name": "b", "plugin": "\#(second)"}]}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(TestSupport.athens, ["--config", manifest])
        #expect(result.status == 1)
        #expect(result.stderr == "athens: fetchers[1].plugin: plugin \(second): is a Go c-shared library, and the Go plugin \(first) is already loaded: a process can hold only one Go runtime, so athens loads one Go plugin (a new build of it needs a restart)\n", "\(result.stderr)")
        // The same Go library used twice is one runtime: accepted.
        try #"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "a", "plugin": "\#(first)"}, {"name": "b", "plugin": "\#(first)", "config": {"module": "example.com/other"}}]}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let twice = try ChildProcess(TestSupport.athens, ["--config", manifest])
        defer { twice.stop() }
        #expect(twice.firstLine()?.hasPrefix("listening on ") == true, "\(twice.stderr)")
    }
}

/// What Go asks of the host's own signal handlers.
@Suite("Go plugins: host signal handlers", .blockingBodies)
struct GoSignalHandlerTests {
    @Test("the crash handler is installed with SA_ONSTACK (Go requires it of every non-Go handler)")
    func crashHandlerOnAlternateStack() {
        CrashReporter.install()
        for signalNumber in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT] {
            var action = sigaction()
            #expect(sigaction(signalNumber, nil, &action) == 0)
            #expect(action.sa_flags & Int32(SA_ONSTACK) != 0, "signal \(signalNumber)")
        }
    }
}
