import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// The storage conformance checks, run against one instance at run time.
///
/// Every module the checks save lives under a prefix unique to the run, so a storage that already holds
/// data (a persistent backend pointed at a real directory) is neither confused by it nor changed: lists
/// and catalog pages are filtered to the prefix, and everything saved is removed at the end.
package struct StorageChecks {
    package let storage: InstrumentedStorage
    package let report: CheckReport
    /// e.g. "example.com/athens-plugin-check/r1a2b3c4".
    package let prefix: String
    /// Size of the large streamed zip.
    package let largeZipBytes: UInt64
    /// Versions saved for the catalog walk (at least 1000 by default).
    package let catalogVersions: Int
    let saved = SavedVersions()

    package init(storage: InstrumentedStorage, report: CheckReport, runID: String, largeZipBytes: UInt64, catalogVersions: Int = 1050) {
        self.storage = storage
        self.report = report
        self.prefix = "example.com/athens-plugin-check/r" + runID
        self.largeZipBytes = largeZipBytes
        self.catalogVersions = catalogVersions
    }

    /// Runs every check, in order, recording one row each.
    package func run() {
        report.check("storage: missing version is not found") { try missingIsNotFound() }
        report.check("storage: round trip of all three files") { try roundTrip() }
        report.check("storage: empty files round trip") { try emptyFiles() }
        report.check("storage: module paths are case-sensitive") { try caseSensitive() }
        report.check("storage: second save keeps the first bytes") { try secondSave() }
        report.check("storage: failed zip read stores nothing") { try failedSave() }
        report.check("storage: concurrent saves of one version") { try concurrentSaves() }
        report.check("storage: concurrent reads of one version") { try concurrentReads() }
        report.check("storage: concurrent saves of many versions") { try concurrentMany() }
        report.check("storage: list") { try list() }
        report.check("storage: remove keeps a held blob readable") { try removeWithHeldBlob() }
        report.check("storage: catalog pages complete, never repeat") { try catalogPaging() }
        report.check("storage: large streamed zip") { try largeZip() }
        report.check("storage: url of a saved zip") { try urlOfSavedZip() }
        report.check("storage: everything saved is removed") { try cleanup() }
        // The audits come last: they sum up every call the checks above made.
        report.check("storage: error messages NUL-terminated, bounded") {
            if let problems = storage.errors.problems.summary { throw CheckFailure(problems) }
            return "\(storage.errors.auditedCalls) failing calls audited"
        }
        report.check("storage: blobs well-formed, released exactly once") { try blobAudit() }
        report.check("storage: zip reader read to its end, serially") {
            if let problems = storage.readerProblems.summary { throw CheckFailure(problems) }
            return "every successful save read exactly the zip's size"
        }
    }

    // MARK: - Helpers

    func info(_ version: String, tag: String = "") -> [UInt8] {
        Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"\#(tag.isEmpty ? "" : #","Tag":"\#(tag)""#)}"#.utf8)
    }

    func mod(_ module: String, tag: String = "") -> [UInt8] {
        Array("module \(module)\n\ngo 1.21\n\(tag.isEmpty ? "" : "// \(tag)\n")".utf8)
    }

    /// Saves and remembers the version for the clean-up; `ATH_ALREADY_EXISTS` is thrown.
    func save(_ module: String, _ version: String, info: [UInt8], mod: [UInt8], zip: [UInt8]) throws(PluginCallError) {
        try save(module, version, info: info, mod: mod, source: ZipSource(bytes: zip))
    }

    func save(_ module: String, _ version: String, info: [UInt8], mod: [UInt8], source: ZipSource) throws(PluginCallError) {
        do {
            try storage.save(module, version, info: info, mod: mod, zip: source)
            saved.insert(module, version)
        } catch {
            if error.isAlreadyExists { saved.insert(module, version) }
            throw error
        }
    }

    /// Reads a whole (small) stored file.
    func read(_ module: String, _ version: String, _ artifact: Artifact) throws -> [UInt8] {
        let blob = try storage.open(module, version, artifact)
        return try Self.readAll(blob, what: "\(module)@\(version) \(artifact)")
    }

    /// Reads a whole blob, whatever its shape, and checks its length against its declared size.
    package static func readAll(_ blob: Blob, what: String) throws -> [UInt8] {
        guard blob.size <= 1 << 30 else { throw CheckFailure("\(what): blob claims \(blob.size) bytes") }
        guard let bytes = blob.readAll(limit: 1 << 30) else {
            throw CheckFailure("\(what): reading the \(shapeName(blob)) blob failed or did not give exactly its size (\(blob.size) bytes)")
        }
        return bytes
    }

    package static func shapeName(_ blob: Blob) -> String {
        switch blob.shape {
        case .file: "fd"
        case .bytes: "data"
        case .stream: "read"
        }
    }

    func expectNotFound(_ what: String, _ body: () throws(PluginCallError) -> Void) throws {
        do {
            try body()
            throw CheckFailure("\(what) succeeded; expected ATH_NOT_FOUND")
        } catch let error as PluginCallError {
            guard error.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(error)") }
        }
    }

    // MARK: - Checks

    func missingIsNotFound() throws -> String {
        let module = prefix + "/missing", version = "v9.9.9"
        var messages: [String] = []
        for artifact in [Artifact.info, .mod, .zip] {
            do {
                _ = try storage.open(module, version, artifact)
                throw CheckFailure("open \(artifact) of a missing version returned a blob")
            } catch let error as PluginCallError {
                guard error.isNotFound else { throw CheckFailure("open \(artifact): expected ATH_NOT_FOUND: \(error)") }
                messages.append(error.message)
            }
        }
        guard try storage.exists(module, version) == false else { throw CheckFailure("exists says a missing version is stored") }
        let versions = try storage.list(module)
        guard versions.isEmpty else { throw CheckFailure("list of a module never saved gave \(versions)") }
        try expectNotFound("remove of a missing version") { () throws(PluginCallError) in try storage.remove(module, version) }
        let named = messages.allSatisfy { $0.contains(module) }
        return "open/exists/list/remove agree" + (named ? "" : "; note: the open message does not name the module (\"\(messages[0])\")")
    }

    func roundTrip() throws -> String {
        let module = prefix + "/roundtrip", version = "v1.2.3-pre.1"
        let zip = PatternBytes(seed: 1).bytes(300_000)
        let infoBytes = info(version), modBytes = mod(module)
        try save(module, version, info: infoBytes, mod: modBytes, zip: zip)
        guard try storage.exists(module, version) else { throw CheckFailure("exists is false after a successful save") }
        var shapes: [String] = []
        for (artifact, expected) in [(Artifact.info, infoBytes), (.mod, modBytes), (.zip, zip)] {
            let blob = try storage.open(module, version, artifact)
            shapes.append("\(artifact)=\(Self.shapeName(blob))")
            guard blob.size == UInt64(expected.count) else {
                throw CheckFailure("\(artifact): blob size \(blob.size), saved \(expected.count) bytes")
            }
            guard try Self.readAll(blob, what: "\(artifact)") == expected else { throw CheckFailure("\(artifact): bytes differ from the saved ones") }
        }
        // Two blobs of one file are independent: interleaved reads must not disturb each other.
        let first = try storage.open(module, version, .zip), second = try storage.open(module, version, .zip)
        if case .stream = first.shape {
            var half = [UInt8](repeating: 0, count: 150_000)
            var got = 0
            while got < half.count {
                guard let n = half.withUnsafeMutableBytes({ first.readStream(into: UnsafeMutableRawBufferPointer(rebasing: $0[got...])) }), n > 0 else {
                    throw CheckFailure("zip stream ended or failed after \(got) bytes")
                }
                got += n
            }
            guard try Self.readAll(second, what: "second zip blob") == zip else { throw CheckFailure("a second blob of the zip read wrong bytes") }
            var rest: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                guard let n = chunk.withUnsafeMutableBytes({ first.readStream(into: $0) }) else { throw CheckFailure("zip stream failed") }
                if n == 0 { break }
                rest += chunk[0..<n]
            }
            guard half + rest == zip else { throw CheckFailure("interleaved reads of two zip blobs disturbed each other") }
        } else {
            guard try Self.readAll(second, what: "zip") == zip, try Self.readAll(first, what: "zip") == zip else {
                throw CheckFailure("two blobs of the zip read different bytes")
            }
        }
        return "300000-byte zip; shapes " + shapes.joined(separator: " ")
    }

    func emptyFiles() throws -> String {
        let module = prefix + "/empty", version = "v0.0.1"
        try save(module, version, info: info(version), mod: [], zip: [])
        guard try read(module, version, .mod).isEmpty else { throw CheckFailure(".mod: saved empty, read non-empty") }
        guard try read(module, version, .zip).isEmpty else { throw CheckFailure(".zip: saved empty, read non-empty") }
        return "empty .mod and .zip read back empty"
    }

    func caseSensitive() throws -> String {
        let module = prefix + "/Mixed/Case", lower = prefix + "/mixed/case", version = "v1.0.0"
        try save(module, version, info: info(version), mod: mod(module), zip: [1, 2, 3])
        guard try storage.exists(module, version) else { throw CheckFailure("\(module)@\(version) not stored after save") }
        guard try storage.exists(lower, version) == false else { throw CheckFailure("\(lower) reads as stored after saving \(module): paths must be case-sensitive") }
        guard try storage.list(lower).isEmpty else { throw CheckFailure("list of \(lower) shows \(module)'s version") }
        try expectNotFound("open of the lower-case path") { () throws(PluginCallError) in _ = try storage.open(lower, version, .zip) }
        return "\(module) and \(lower) are different modules"
    }

    func secondSave() throws -> String {
        let module = prefix + "/twice", version = "v1.0.0"
        try save(module, version, info: info(version, tag: "first"), mod: mod(module, tag: "first"), zip: [1, 2, 3])
        var answer = "ATH_OK"
        do {
            try save(module, version, info: info(version, tag: "second"), mod: mod(module, tag: "second"), zip: [4, 5, 6, 7])
        } catch {
            guard error.isAlreadyExists else { throw CheckFailure("second save must answer ATH_OK or ATH_ALREADY_EXISTS: \(error)") }
            answer = "ATH_ALREADY_EXISTS"
        }
        guard try read(module, version, .zip) == [1, 2, 3] else { throw CheckFailure("the second save replaced the stored .zip") }
        guard try read(module, version, .info) == info(version, tag: "first") else { throw CheckFailure("the second save replaced the stored .info") }
        guard try read(module, version, .mod) == mod(module, tag: "first") else { throw CheckFailure("the second save replaced the stored .mod") }
        return "second save answered \(answer); first bytes kept"
    }

    func failedSave() throws -> String {
        let module = prefix + "/failed", version = "v1.0.0"
        let zip = PatternBytes(seed: 2).bytes(100_000)
        do {
            try save(module, version, info: info(version), mod: mod(module), source: ZipSource(bytes: zip, failAt: 50_000))
            throw CheckFailure("save returned ATH_OK although the zip reader returned -1")
        } catch let error as PluginCallError {
            guard !error.isAlreadyExists else { throw CheckFailure("save of a new version answered ATH_ALREADY_EXISTS after a failed read") }
        }
        guard try storage.exists(module, version) == false else { throw CheckFailure("the version reads as stored after its save failed") }
        for artifact in [Artifact.info, .mod, .zip] {
            try expectNotFound("open \(artifact) after a failed save") { () throws(PluginCallError) in _ = try storage.open(module, version, artifact) }
        }
        guard try storage.list(module).isEmpty else { throw CheckFailure("list shows a version whose save failed") }
        // The failure left nothing behind that blocks a later, good save.
        try save(module, version, info: info(version), mod: mod(module), zip: zip)
        guard try read(module, version, .zip) == zip else { throw CheckFailure("a save after a failed one stored wrong bytes") }
        return "nothing visible after the failure; a retry stores the version"
    }

    func list() throws -> String {
        let module = prefix + "/listed"
        let versions = ["v1.0.0", "v1.1.0-rc.1", "v2.0.0+incompatible"]
        for version in versions { try save(module, version, info: info(version), mod: mod(module), zip: Array(version.utf8)) }
        try save(module + "/sub", "v0.1.0", info: info("v0.1.0"), mod: mod(module + "/sub"), zip: [9])
        let listed = try storage.list(module)
        guard listed.count == versions.count, Set(listed) == Set(versions) else {
            throw CheckFailure("list of \(module) gave \(listed); saved \(versions)")
        }
        guard try storage.list(module + "/sub") == ["v0.1.0"] else { throw CheckFailure("list of the nested module \(module)/sub is wrong") }
        return "exactly the saved versions; a nested module's are separate"
    }

    func removeWithHeldBlob() throws -> String {
        let module = prefix + "/removed", version = "v1.1.0"
        let zip = PatternBytes(seed: 9).bytes(123_457)
        let infoBytes = info(version), modBytes = mod(module)
        try save(module, version, info: infoBytes, mod: modBytes, zip: zip)
        try save(module, "v1.0.0", info: info("v1.0.0"), mod: modBytes, zip: [1])
        let held = try [Artifact.info, .mod, .zip].map { try storage.open(module, version, $0) }
        try storage.remove(module, version)
        guard try Self.readAll(held[2], what: "held .zip") == zip, try Self.readAll(held[0], what: "held .info") == infoBytes,
              try Self.readAll(held[1], what: "held .mod") == modBytes else {
            throw CheckFailure("a blob opened before remove read wrong bytes after it")
        }
        guard try storage.exists(module, version) == false else { throw CheckFailure("exists is true after remove") }
        try expectNotFound("open after remove") { () throws(PluginCallError) in _ = try storage.open(module, version, .zip) }
        guard try storage.list(module) == ["v1.0.0"] else { throw CheckFailure("list after remove is \(try storage.list(module))") }
        try expectNotFound("a second remove") { () throws(PluginCallError) in try storage.remove(module, version) }
        saved.remove(module, version)
        // A removed version can be stored again.
        try save(module, version, info: infoBytes, mod: modBytes, zip: [7, 7, 7])
        guard try read(module, version, .zip) == [7, 7, 7] else { throw CheckFailure("a save after remove did not store the new bytes") }
        return "held blobs read their bytes after remove; the version can be saved again"
    }

}

/// module@version pairs the checks saved and have not removed, for the clean-up.
final class SavedVersions: @unchecked Sendable {
    private let lock = PosixLock()
    private var versions = Set<[String]>()

    func insert(_ module: String, _ version: String) { _ = lock.withLock { versions.insert([module, version]) } }
    func remove(_ module: String, _ version: String) { _ = lock.withLock { versions.remove([module, version]) } }
    var all: [(String, String)] { lock.withLock { versions.map { ($0[0], $0[1]) } } }
}
