import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// One conformance suite for every storage plugin, loaded from its .so by path, whatever its language.
@Suite("storage plugin conformance", .blockingBodies)
struct StorageConformanceTests {
    /// (label, how to make a fresh instance). FileStorage joins when it is built.
    static let plugins: [String] = {
        var names = ["MemoryStorage", "CTestStorage"]
        if FileManager.default.fileExists(atPath: TestSupport.plugin("FileStorage")) { names.append("FileStorage") }
        // Against the RGW of scripts/rgw.sh (scripts/test.sh starts one for every run).
        if RGW.isAvailable { names.append("S3Storage") }
        return names
    }()

    /// The C plugin, compiled once for all the suite's tests (a static's initialiser runs once, whoever asks first).
    static let cPlugin = Result { try TestSupport.compileCPlugin("test_storage.c", into: TestSupport.makeTemporaryDirectory("conformance-c"),
                                                                 name: "libCTestStorage.so") }

    static func makeStorage(_ label: String) throws -> StoragePlugin {
        switch label {
        case "CTestStorage":
            return try StoragePlugin(library: PluginLibrary(path: cPlugin.get()), configJSON: "{}")
        case "FileStorage":
            let root = TestSupport.makeTemporaryDirectory("filestorage")
            let config = String(decoding: try JSONSerialization.data(withJSONObject: ["root": root]), as: UTF8.self)
            return try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin(label)), configJSON: config)
        case "S3Storage":
            let config = RGW.json(RGW.config(bucket: try RGW.makeBucket("conformance"), ["prefix": "conformance"]))
            return try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin(label)), configJSON: config)
        default:
            return try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin(label)), configJSON: "{}")
        }
    }

    /// Saves through a zip file on disk, as the host does.
    static func save(_ storage: StoragePlugin, _ module: String, _ version: String, zip: [UInt8], info: [UInt8]? = nil, mod: [UInt8]? = nil,
                     call: CallContext = CallContext()) throws {
        let path = NSTemporaryDirectory() + "/zip-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(zip))
        let fd = open(path, O_RDONLY)
        defer { close(fd); unlink(path) }
        let info = info ?? Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"}"#.utf8)
        let mod = mod ?? Array("module \(module)\n".utf8)
        try storage.save(module: module, version: version, info: info, mod: mod, zipFD: fd, zipSize: UInt64(zip.count), call: call)
    }

    static func read(_ storage: StoragePlugin, _ module: String, _ version: String, _ artifact: Artifact) throws -> [UInt8] {
        let blob = try storage.open(module: module, version: version, artifact: artifact)
        return try #require(blob.readAll(limit: 1 << 30))
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &+ 0x9E3779B97F4A7C15
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    @Test("a missing version is notFound, with a message naming it", arguments: plugins)
    func missingIsNotFound(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        for artifact in [Artifact.info, .mod, .zip] {
            let error = #expect(throws: PluginError.self) { _ = try storage.open(module: "example.com/none", version: "v9.9.9", artifact: artifact) }
            #expect(error?.code == .notFound)
        }
        #expect(try storage.exists(module: "example.com/none", version: "v9.9.9") == false)
        #expect(try storage.list(module: "example.com/none") == [])
        let removeError = #expect(throws: PluginError.self) { try storage.remove(module: "example.com/none", version: "v9.9.9") }
        #expect(removeError?.code == .notFound)
    }

    @Test("save then open returns the exact bytes of all three files", arguments: plugins)
    func roundTrip(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        let zip = Self.randomBytes(300_000, seed: 1)
        try Self.save(storage, "example.com/Mixed/Case", "v1.2.3-pre.1", zip: zip)
        #expect(try Self.read(storage, "example.com/Mixed/Case", "v1.2.3-pre.1", .zip) == zip)
        #expect(try Self.read(storage, "example.com/Mixed/Case", "v1.2.3-pre.1", .mod) == Array("module example.com/Mixed/Case\n".utf8))
        #expect(String(decoding: try Self.read(storage, "example.com/Mixed/Case", "v1.2.3-pre.1", .info), as: UTF8.self).contains("v1.2.3-pre.1"))
        #expect(try storage.exists(module: "example.com/Mixed/Case", version: "v1.2.3-pre.1"))
        // Case matters: the lower-case path is another module.
        #expect(try storage.exists(module: "example.com/mixed/case", version: "v1.2.3-pre.1") == false)
    }

    @Test("empty files round-trip too", arguments: plugins)
    func emptyFiles(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        try Self.save(storage, "example.com/empty", "v0.0.1", zip: [], info: Array("{}".utf8), mod: [])
        #expect(try Self.read(storage, "example.com/empty", "v0.0.1", .zip) == [])
        #expect(try Self.read(storage, "example.com/empty", "v0.0.1", .mod) == [])
    }

    @Test("a second save of a version is accepted and keeps the first bytes", arguments: plugins)
    func secondSaveKeepsFirst(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        try Self.save(storage, "example.com/twice", "v1.0.0", zip: [1, 2, 3])
        try Self.save(storage, "example.com/twice", "v1.0.0", zip: [4, 5, 6, 7])
        #expect(try Self.read(storage, "example.com/twice", "v1.0.0", .zip) == [1, 2, 3])
    }

    @Test("list and remove", arguments: plugins)
    func listAndRemove(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        for version in ["v1.0.0", "v1.1.0", "v2.0.0+incompatible"] {
            try Self.save(storage, "example.com/listed", version, zip: Array(version.utf8))
        }
        try Self.save(storage, "example.com/listed/sub", "v0.1.0", zip: [9])
        #expect(Set(try storage.list(module: "example.com/listed")) == ["v1.0.0", "v1.1.0", "v2.0.0+incompatible"])
        let held = try storage.open(module: "example.com/listed", version: "v1.1.0", artifact: .zip)
        try storage.remove(module: "example.com/listed", version: "v1.1.0")
        // A blob opened before the remove still reads its bytes.
        #expect(held.readAll(limit: 100) == Array("v1.1.0".utf8))
        #expect(Set(try storage.list(module: "example.com/listed")) == ["v1.0.0", "v2.0.0+incompatible"])
        #expect(try storage.exists(module: "example.com/listed", version: "v1.1.0") == false)
        #expect(try storage.list(module: "example.com/listed/sub") == ["v0.1.0"])
    }

    @Test("concurrent saves of one version: one wins, readers never see mixed bytes", arguments: plugins)
    func concurrentSaves(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        let candidates = (0..<8).map { Self.randomBytes(200_000, seed: UInt64($0) + 100) }
        nonisolated(unsafe) var failures: [String] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                if i < 8 {
                    try Self.save(storage, "example.com/race", "v1.0.0", zip: candidates[i])
                } else {
                    do {
                        let blob = try storage.open(module: "example.com/race", version: "v1.0.0", artifact: .zip)
                        let bytes = blob.readAll(limit: 1 << 20) ?? []
                        if !candidates.contains(bytes) { lock.withLock { failures.append("reader saw bytes of no candidate") } }
                    } catch let error as PluginError where error.code == .notFound {
                        // Not saved yet: a reader may come before every writer. Any other error is a failure.
                    }
                }
            } catch {
                lock.withLock { failures.append("\(error)") }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        let stored = try Self.read(storage, "example.com/race", "v1.0.0", .zip)
        #expect(candidates.contains(stored))
        #expect(try storage.list(module: "example.com/race") == ["v1.0.0"])
    }

    @Test("many threads saving and reading different versions", arguments: plugins)
    func concurrentMixed(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        nonisolated(unsafe) var failures: [String] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let version = "v1.0.\(i)"
            let zip = Self.randomBytes(1000 + i, seed: UInt64(i))
            do {
                try Self.save(storage, "example.com/many", version, zip: zip)
                if try Self.read(storage, "example.com/many", version, .zip) != zip {
                    lock.withLock { failures.append("\(version): bytes differ") }
                }
            } catch {
                lock.withLock { failures.append("\(version): \(error)") }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(try storage.list(module: "example.com/many").count == 64)
    }

    @Test("catalog pages are complete and never repeat, whatever the page size",
          arguments: plugins.filter { $0 != "CTestStorage" })
    func catalogPaging(plugin: String) throws {
        let storage = try Self.makeStorage(plugin)
        var expected = Set<String>()
        for m in 0..<40 {
            for v in 0..<(m % 7 + 1) * 10 {
                let module = "example.com/cat/m\(m)", version = "v0.\(v).0"
                try Self.save(storage, module, version, zip: [UInt8(v & 0xFF)])
                expected.insert(module + "@" + version)
            }
        }
        #expect(expected.count >= 1000)
        for pageSize in [1, 7, 100, 1000, 5000] {
            var seen: [String] = []
            var token = ""
            var pages = 0
            repeat {
                let page = try storage.catalog(token: token, pageSize: pageSize)
                #expect(page.entries.count <= pageSize)
                if !page.next.isEmpty { #expect(page.entries.count == pageSize) }
                seen += page.entries.map { $0.module + "@" + $0.version }
                token = page.next
                pages += 1
            } while !token.isEmpty && pages < 10_000
            #expect(seen.count == expected.count, "page size \(pageSize)")
            #expect(Set(seen) == expected, "page size \(pageSize)")
        }
        let bad = #expect(throws: PluginError.self) { _ = try storage.catalog(token: "not-a-token-we-issued!", pageSize: 10) }
        #expect(bad?.code == .invalid)
    }
}
