// What a fetcher hands over is checked by one validator (GoModule's ArtifactValidator) before anything is stored,
// and what a storage plugin hands back is checked before a status line is sent (issue 10, findings 3 and 9).
import Foundation
import GoModule
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

@Suite("ArtifactValidator reads a .info as the go command does", .blockingBodies)
struct InfoValidationTests {
    @Test("accepted: what json.Unmarshal into RevInfo accepts", arguments: [
        #"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}"#,
        #"{"Version":"v1.0.0","Time":null}"#,
        #"{"Version":"v1.0.0"}"#,
        #"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05.123456789+05:30"}"#,
        #"{"Version":"v1.0.0","Time":"2024-02-29T23:59:59-00:00"}"#,
        #" {"version":"v1.0.0", "Origin":{"VCS":"git","Hash":"abc","Ref":["a",{"b":null}]}, "x":[1,-2.5e3,0,true,false,null,"\u00e9\n"]} "#,
        #"{"Version":"v0.1.0","Version":"v1.0.0"}"#,
    ])
    func accepted(json: String) throws {
        #expect(try ArtifactValidator.checkInfo(Array(json.utf8), version: "v1.0.0") == "v1.0.0")
    }

    @Test("refused, with the reason", arguments: [
        (#"{"Version":"v1.0.0","Time":5}"#, #""Time" is neither a string nor null"#),
        (#"{"Version":"v1.0.0","Time":"yesterday"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0","Time":"2023-02-29T00:00:00Z"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0","Time":"2024-01-02 03:04:05Z"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:60Z"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05+24:00"}"#, "is not an RFC 3339 time"),
        // time.Time.UnmarshalJSON parses the raw bytes: an escaped "Z" is not a "Z".
        (#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05\u005a"}"#, "is not an RFC 3339 time"),
        (#"{"Version":"v1.0.0"} x"#, "not a JSON object"),
        (#"{"Version":"v1.0.0",}"#, "not a JSON object"),
        (#"{"Version":"v1.0.0","n":01}"#, "not a JSON object"),
        (#"{"Version":"v1.0.0""#, "not a JSON object"),
        (#"["v1.0.0"]"#, "not a JSON object"),
        ("{\"Version\":\"v1.0.0\",\"x\":\"\u{01}\"}", "not a JSON object"),
        (String(repeating: "[", count: 300), "not a JSON object"),
        (#"{"Version":1}"#, #"without a string "Version""#),
        (#"{"Version":null}"#, #"without a string "Version""#),
        (#"{"Version":"v1.0"}"#, "non-canonical version"),
    ])
    func refused(json: String, reason: String) {
        let error = #expect(throws: ValidationError.self) { try ArtifactValidator.checkInfo(Array(json.utf8), version: nil) }
        #expect(error?.message.contains(reason) == true, "\(json): \(error?.message ?? "")")
    }

    @Test("a .info for another version than the one asked for is refused")
    func otherVersion() {
        let error = #expect(throws: ValidationError.self) {
            try ArtifactValidator.checkInfo(Array(#"{"Version":"v1.0.1"}"#.utf8), version: "v1.0.0")
        }
        #expect(error?.message == #"a .info for version "v1.0.1" instead of the requested v1.0.0"#)
    }

    @Test("the time is returned raw, nil when null or absent")
    func time() throws {
        #expect(try ArtifactValidator.readInfo(Array(#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}"#.utf8), version: nil).time == "2024-01-02T03:04:05Z")
        #expect(try ArtifactValidator.readInfo(Array(#"{"Version":"v1.0.0","Time":null}"#.utf8), version: nil).time == nil)
    }
}

@Suite("ArtifactValidator: a .mod must declare the path it was required as", .blockingBodies)
struct ModValidationTests {
    @Test("accepted", arguments: ["module example.com/m\n", "// a comment\nmodule \"example.com/m\" // trailing\n\ngo 1.21\n",
                                  "go 1.21\nmodule   example.com/m\r\n"])
    func accepted(mod: String) throws {
        try ArtifactValidator.checkMod(Array(mod.utf8), module: "example.com/m")
    }

    @Test("refused with the go command's words", arguments: [
        ("module example.com/other\n", "module declares its path as: example.com/other but was required as: example.com/m"),
        ("module example.com/M\n", "module declares its path as: example.com/M but was required as: example.com/m"),
        ("module example.com/m/v2\n", "module declares its path as: example.com/m/v2 but was required as: example.com/m"),
        ("go 1.21\n", "a .mod without a module directive"),
        ("modules example.com/m\n", "a .mod without a module directive"),
    ])
    func refused(mod: String, message: String) {
        let error = #expect(throws: ValidationError.self) { try ArtifactValidator.checkMod(Array(mod.utf8), module: "example.com/m") }
        #expect(error?.message.hasSuffix(message) == true, "\(error?.message ?? "")")
    }

    @Test("a .mod that is not UTF-8 is refused")
    func notUTF8() {
        let error = #expect(throws: ValidationError.self) { try ArtifactValidator.checkMod([0x6D, 0xFF, 0x0A], module: "example.com/m") }
        #expect(error?.message == "a .mod that is not UTF-8")
    }
}

/// The lying GOPROXY tree of Tests/Fixtures/make_lying_upstream.py, written once per suite instance.
struct LyingTree {
    let root: String

    init() throws {
        root = TestSupport.makeTemporaryDirectory("lying-tree")
        let made = try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_lying_upstream.py", root])
        guard made.status == 0 else { throw TestFailure("make_lying_upstream.py failed: \(made.stderr)") }
    }

    func zip(_ name: String) -> String { root + "/example.com/liar/\(name)/@v/v1.0.0.zip" }
}

@Suite("ArtifactValidator reads every zip entry in full", .blockingBodies)
final class ZipContentsTests {
    let tree: LyingTree

    init() throws { tree = try LyingTree() }
    deinit { TestSupport.removeDirectory(tree.root) }

    func check(_ name: String) throws(ZipError) -> [ZipEntry] {
        let path = tree.zip(name)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let size = UInt64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0)
        return try ArtifactValidator.checkZip(fd: fd, size: size, module: "example.com/liar/\(name)", version: "v1.0.0")
    }

    @Test("a valid deflated zip passes")
    func valid() throws {
        #expect(try check("good").map(\.name) == ["example.com/liar/good@v1.0.0/go.mod", "example.com/liar/good@v1.0.0/x.go"])
    }

    @Test("a flipped data byte is Go's checksum error")
    func badCRC() {
        let error = #expect(throws: ZipError.self) { try self.check("badcrc") }
        #expect(error?.message == #"zip: checksum error in entry "example.com/liar/badcrc@v1.0.0/x.go""#)
    }

    @Test("corrupt deflate data is refused")
    func badDeflate() {
        let error = #expect(throws: ZipError.self) { try self.check("baddeflate") }
        #expect(error?.message.hasPrefix(#"zip: "#) == true)
        #expect(error?.message.contains("baddeflate@v1.0.0/x.go") == true, "\(error?.message ?? "")")
    }

    @Test("an entry that inflates past its declared size is refused after declared + 1 bytes, not 600 MiB")
    func bomb() {
        // The directory and the local header say 1000 bytes; the data inflates to 600 MiB. Output is bounded by the
        // declared size + 1, so this is refused after inflating 1001 bytes (the e2e test measures athens' RSS).
        let error = #expect(throws: ZipError.self) { try self.check("bomb") }
        #expect(error?.message == #"zip: entry "example.com/liar/bomb@v1.0.0/zeros.bin" inflates to more than the 1000 bytes its directory declares"#)
    }
}

/// athens with ProxyFetcher in front of a fake upstream that lies, and FileStorage behind it.
@Suite("a lying upstream's files are refused and never stored", .blockingBodies, .serialized)
final class LyingUpstreamTests {
    let work = TestSupport.makeTemporaryDirectory("lying-upstream")
    let tree: LyingTree
    let upstream: FakeUpstream
    let athens: AthensServer
    var storageRoot: String { work + "/storage" }

    init() throws {
        tree = try LyingTree()
        upstream = try FakeUpstream(root: tree.root, logPath: work + "/upstream.log")
        athens = try AthensServer(manifest: """
            {"spoolDirectory": "\(work)",
             "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/storage"}},
             "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)"}}]}
            """, directory: work)
    }

    deinit {
        athens.stop()
        upstream.stop()
        TestSupport.removeDirectory(tree.root)
        TestSupport.removeDirectory(work)
    }

    /// Files FileStorage holds whose path mentions the module's last element.
    func stored(_ name: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: storageRoot)?.allObjects as? [String] ?? []
        return all.filter { $0.contains("liar/" + name) && !$0.hasSuffix("/") && $0.contains(".") }
    }

    @Test("each lie is a 502 naming it; nothing is stored; asking again asks upstream again", arguments: [
        ("wrongmod", "module declares its path as: example.com/liar/other but was required as: example.com/liar/wrongmod"),
        ("badcrc", "zip: checksum error in entry"),
        ("baddeflate", "baddeflate@v1.0.0/x.go"),
        ("badtime", "is not an RFC 3339 time"),
    ])
    func lie(name: String, message: String) throws {
        for artifact in [".zip", ".info"] {
            let response = try athens.get("/example.com/liar/\(name)/@v/v1.0.0\(artifact)")
            let body = String(decoding: response.body, as: UTF8.self)
            #expect(response.status == 502, "\(artifact): \(body)")
            #expect(body.contains(message), "\(artifact): \(body)")
        }
        #expect(stored(name).isEmpty, "\(stored(name))")
        #expect(upstream.requests.filter { $0.hasSuffix("/liar/\(name)/@v/v1.0.0.info") }.count == 2, "a refused version is fetched again, never served")
    }

    @Test("a valid version, and one whose .info has \"Time\": null (as the go command accepts), are stored and served")
    func accepted() throws {
        for name in ["good", "nulltime"] {
            let zip = try athens.get("/example.com/liar/\(name)/@v/v1.0.0.zip")
            #expect(zip.status == 200, "\(name): \(String(decoding: zip.body, as: UTF8.self))")
            #expect(!stored(name).isEmpty)
        }
        let info = try athens.get("/example.com/liar/nulltime/@v/v1.0.0.info")
        #expect(String(decoding: info.body, as: UTF8.self).hasPrefix(#"{"Version":"v1.0.0","Time":null,"Athens":{"Zip":"h1:"#), "as sent, plus the ingest record")
    }

    @Test("a zip entry that inflates to 600 MiB is refused with athens' peak RSS far below it")
    func bomb() throws {
        let response = try athens.get("/example.com/liar/bomb/@v/v1.0.0.zip", timeout: 60)
        #expect(response.status == 502)
        #expect(String(decoding: response.body, as: UTF8.self).contains("inflates to more than the 1000 bytes its directory declares"))
        #expect(stored("bomb").isEmpty)
        let status = try String(contentsOfFile: "/proc/\(athens.process.process.processIdentifier)/status", encoding: .utf8)
        let peakLine = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        let peakKiB = Int(peakLine.split(separator: " ").dropFirst().first ?? "") ?? .max
        #expect(peakKiB < 150 << 10, "athens' peak RSS \(peakKiB) KiB")
    }
}

/// athens with the C storage fixture (named by its file path in the manifest) and the C fetcher.
@Suite("storage plugins that lie or crash", .blockingBodies, .serialized)
final class StorageFaultTests {
    let work = TestSupport.makeTemporaryDirectory("storage-faults")
    let storagePath: String
    let fetcherPath: String

    init() throws {
        storagePath = try TestSupport.compileCPlugin("test_storage.c", into: work, name: "libCTestStorage.so")
        fetcherPath = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
    }

    deinit { TestSupport.removeDirectory(work) }

    func start() throws -> AthensServer {
        try AthensServer(manifest: """
            {"spoolDirectory": "\(work)", "storage": {"plugin": "\(storagePath)"},
             "fetchers": [{"name": "c", "plugin": "\(fetcherPath)"}]}
            """, directory: work)
    }

    @Test("an fd blob whose range runs past its file's end is a 502 naming the plugin, never a short 200")
    func fdPastEnd() throws {
        let athens = try start()
        defer { athens.stop() }
        for artifact in [".info", ".mod", ".zip"] {
            let response = try athens.get("/example.com/ok/fd-past-end/@v/v1.0.0\(artifact)")
            let body = String(decoding: response.body, as: UTF8.self)
            #expect(response.status == 502, "\(artifact): \(body)")
            #expect(body.contains("CTestStorage"), "\(body)")
            #expect(!body.contains(work), "clients never see the plugin's file path: \(body)")
        }
        _ = waitUntil(timeout: 10) { athens.process.stderr.contains("runs past the end of its file") }
        let log = athens.process.stderr
        #expect(log.contains("CTestStorage storage.open: contract violation: fd blob: range offset 0 + size"), "\(log)")
        #expect(log.contains(storagePath), "the log keeps the path")
    }

    @Test("a save that fails half-way is removed: asked again, the version is fetched again, not served truncated")
    func partialSave() throws {
        let athens = try start()
        defer { athens.stop() }
        for attempt in 1...2 {
            let response = try athens.get("/example.com/ok/save-partial/@v/v1.0.0.zip")
            let body = String(decoding: response.body, as: UTF8.self)
            #expect(response.status == 502, "attempt \(attempt): \(response.status) \(body)")
            #expect(body.contains("CTestStorage unavailable") && body.contains("disk full half-way"), "\(body)")
            #expect(!body.contains(work), "clients never see the plugin's file path: \(body)")
        }
        #expect(try athens.get("/example.com/ok/save-partial/@v/v1.0.0.info").status == 502, "nothing of the version is served")
    }

    @Test("a crash inside a plugin entry prints one line naming the plugin, the entry, the version and the request")
    func crash() throws {
        let athens = try start()
        defer { athens.stop() }
        let client = try RawClient(port: athens.port)
        client.send("GET /example.com/ok/crash-open/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nAthens-Request-ID: crash-test-42\r\n\r\n")
        #expect(client.readResponse(timeout: 30).map { _ in true } == nil, "the process died instead of answering")
        #expect(waitUntil { !athens.process.process.isRunning })
        #expect(athens.process.process.terminationReason == .uncaughtSignal)
        #expect(athens.process.process.terminationStatus == SIGSEGV, "re-raised with the default action")
        let expected = #"athens: fatal SIGSEGV (bad memory access) in plugin call: storage "CTestStorage" entry open, "#
            + "example.com/ok/crash-open@v1.0.0; request_id=crash-test-42; the process dies\n"
        #expect(waitUntil(timeout: 10) { athens.process.stderr.contains(expected) }, "\(athens.process.stderr.suffix(2000))")
    }
}
