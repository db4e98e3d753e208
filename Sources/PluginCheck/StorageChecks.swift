import HostSupport
import PluginHost
import Foundation
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
    private let saved = SavedVersions()

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

    private func info(_ version: String, tag: String = "") -> [UInt8] {
        Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"\#(tag.isEmpty ? "" : #","Tag":"\#(tag)""#)}"#.utf8)
    }

    private func mod(_ module: String, tag: String = "") -> [UInt8] {
        Array("module \(module)\n\ngo 1.21\n\(tag.isEmpty ? "" : "// \(tag)\n")".utf8)
    }

    /// Saves and remembers the version for the clean-up; `ATH_ALREADY_EXISTS` is thrown.
    private func save(_ module: String, _ version: String, info: [UInt8], mod: [UInt8], zip: [UInt8]) throws(PluginCallError) {
        try save(module, version, info: info, mod: mod, source: ZipSource(bytes: zip))
    }

    private func save(_ module: String, _ version: String, info: [UInt8], mod: [UInt8], source: ZipSource) throws(PluginCallError) {
        do {
            try storage.save(module, version, info: info, mod: mod, zip: source)
            saved.insert(module, version)
        } catch {
            if error.isAlreadyExists { saved.insert(module, version) }
            throw error
        }
    }

    /// Reads a whole (small) stored file.
    private func read(_ module: String, _ version: String, _ artifact: Artifact) throws -> [UInt8] {
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

    private func expectNotFound(_ what: String, _ body: () throws(PluginCallError) -> Void) throws {
        do {
            try body()
            throw CheckFailure("\(what) succeeded; expected ATH_NOT_FOUND")
        } catch let error as PluginCallError {
            guard error.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(error)") }
        }
    }

    // MARK: - Checks

    private func missingIsNotFound() throws -> String {
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

    private func roundTrip() throws -> String {
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

    private func emptyFiles() throws -> String {
        let module = prefix + "/empty", version = "v0.0.1"
        try save(module, version, info: info(version), mod: [], zip: [])
        guard try read(module, version, .mod).isEmpty else { throw CheckFailure(".mod: saved empty, read non-empty") }
        guard try read(module, version, .zip).isEmpty else { throw CheckFailure(".zip: saved empty, read non-empty") }
        return "empty .mod and .zip read back empty"
    }

    private func caseSensitive() throws -> String {
        let module = prefix + "/Mixed/Case", lower = prefix + "/mixed/case", version = "v1.0.0"
        try save(module, version, info: info(version), mod: mod(module), zip: [1, 2, 3])
        guard try storage.exists(module, version) else { throw CheckFailure("\(module)@\(version) not stored after save") }
        guard try storage.exists(lower, version) == false else { throw CheckFailure("\(lower) reads as stored after saving \(module): paths must be case-sensitive") }
        guard try storage.list(lower).isEmpty else { throw CheckFailure("list of \(lower) shows \(module)'s version") }
        try expectNotFound("open of the lower-case path") { () throws(PluginCallError) in _ = try storage.open(lower, version, .zip) }
        return "\(module) and \(lower) are different modules"
    }

    private func secondSave() throws -> String {
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

    private func failedSave() throws -> String {
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

    private func concurrentSaves() throws -> String {
        let module = prefix + "/race", version = "v1.0.0"
        let count = 8
        let zips = (0..<count).map { PatternBytes(seed: 100 + UInt64($0)).bytes(200_000 + $0) }
        let infos = (0..<count).map { info(version, tag: "candidate \($0)") }
        let mods = (0..<count).map { mod(module, tag: "candidate \($0)") }
        let problems = ProblemLog()
        let outcomes = OutcomeCounter()
        DispatchQueue.concurrentPerform(iterations: count * 2) { i in
            if i < count {
                do throws(PluginCallError) {
                    try save(module, version, info: infos[i], mod: mods[i], zip: zips[i])
                    outcomes.add("ok")
                } catch {
                    if error.isAlreadyExists { outcomes.add("exists") } else { problems.add("\(error)") }
                }
            } else {
                // Readers race the savers: whatever they see must be one candidate's bytes.
                for _ in 0..<50 {
                    do {
                        let bytes = try read(module, version, .zip)
                        if !zips.contains(bytes) { problems.add("a reader saw a .zip of \(bytes.count) bytes that is no candidate's") }
                        return
                    } catch let error as PluginCallError where error.isNotFound {
                        usleep(1000)
                    } catch {
                        problems.add("\(error)")
                        return
                    }
                }
            }
        }
        if let summary = problems.summary { throw CheckFailure(summary) }
        let zip = try read(module, version, .zip)
        guard let winner = zips.firstIndex(of: zip) else { throw CheckFailure("the stored .zip is no candidate's") }
        guard try read(module, version, .info) == infos[winner], try read(module, version, .mod) == mods[winner] else {
            throw CheckFailure("mixed bytes: the stored .zip is candidate \(winner)'s but .info or .mod is another's")
        }
        guard try storage.list(module) == [version] else { throw CheckFailure("list after racing saves is \(try storage.list(module))") }
        let ok = outcomes.count("ok")
        guard ok >= 1 else { throw CheckFailure("no save answered ATH_OK") }
        return "\(ok) OK, \(outcomes.count("exists")) ALREADY_EXISTS; all three files from candidate \(winner)"
            + (ok > 1 ? " (note: the ABI says one save wins and the others answer ATH_ALREADY_EXISTS)" : "")
    }

    private func concurrentReads() throws -> String {
        let module = prefix + "/readers", version = "v1.0.0"
        let zip = PatternBytes(seed: 7).bytes(250_000)
        let infoBytes = info(version)
        try save(module, version, info: infoBytes, mod: mod(module), zip: zip)
        let problems = ProblemLog()
        let held = BlobBag()
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            do {
                let blob = try storage.open(module, version, i % 2 == 0 ? .zip : .info)
                let bytes = try Self.readAll(blob, what: "reader \(i)")
                if bytes != (i % 2 == 0 ? zip : infoBytes) { problems.add("reader \(i) read wrong bytes") }
                // Half the blobs are released later, by another thread (release may come from any thread).
                if i % 4 < 2 { held.add(blob) }
            } catch {
                problems.add("\(error)")
            }
        }
        let releasedElsewhere = held.count
        // Released on a thread of its own: dispatch_sync may run on the calling thread.
        let done = DispatchSemaphore(value: 0)
        Thread { held.removeAll(); done.signal() }.start()
        done.wait()
        if let summary = problems.summary { throw CheckFailure(summary) }
        return "32 concurrent opens and reads; \(releasedElsewhere) blobs released on another thread"
    }

    private func concurrentMany() throws -> String {
        let module = prefix + "/many"
        let problems = ProblemLog()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let version = "v1.0.\(i)"
            let zip = PatternBytes(seed: 1000 + UInt64(i)).bytes(1000 + i * 37)
            do {
                try save(module, version, info: info(version), mod: mod(module), zip: zip)
                if try read(module, version, .zip) != zip { problems.add("\(version): bytes differ") }
            } catch {
                problems.add("\(version): \(error)")
            }
        }
        if let summary = problems.summary { throw CheckFailure(summary) }
        let listed = try storage.list(module)
        guard Set(listed) == Set((0..<64).map { "v1.0.\($0)" }), listed.count == 64 else {
            throw CheckFailure("list gives \(listed.count) versions (\(Set(listed).count) distinct) after 64 saves")
        }
        return "64 versions saved and read back from parallel threads"
    }

    private func list() throws -> String {
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

    private func removeWithHeldBlob() throws -> String {
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

    private func catalogPaging() throws -> String {
        guard storage.hasCatalog else { throw CheckSkipped("catalog is NULL (optional): athens answers /catalog with 501") }
        let base = prefix + "/catalog"
        var expected: [String] = []
        var module = 0
        while expected.count < catalogVersions {
            for v in 0..<((module % 7 + 1) * 10) where expected.count < catalogVersions {
                expected.append("\(base)/m\(module)@v0.\(v).0")
            }
            module += 1
        }
        let problems = ProblemLog()
        let keys = expected
        DispatchQueue.concurrentPerform(iterations: 4) { lane in
            for (index, key) in keys.enumerated() where index % 4 == lane {
                let at = key.firstIndex(of: "@")!
                do {
                    try save(String(key[..<at]), String(key[key.index(after: at)...]), info: Array("{}".utf8), mod: [], zip: [UInt8(index & 0xFF)])
                } catch {
                    problems.add("\(error)")
                }
            }
        }
        if let summary = problems.summary { throw CheckFailure("saving the catalog versions: \(summary)") }
        let wanted = Set(expected)
        var walks: [String] = []
        for pageSize in [1, 7, 100, 1000, 5000] {
            var seen = Set<String>()
            var token = ""
            var tokens = Set<String>()
            var pages = 0, total = 0
            repeat {
                let page = try storage.catalog(token: token, pageSize: UInt32(pageSize))
                pages += 1
                total += page.entries.count
                guard page.entries.count <= pageSize else { throw CheckFailure("page size \(pageSize): a page of \(page.entries.count) entries") }
                for entry in page.entries where entry.module.hasPrefix(base + "/") {
                    let key = entry.module + "@" + entry.version
                    guard wanted.contains(key) else { throw CheckFailure("page size \(pageSize): lists \(key), which was never saved") }
                    guard seen.insert(key).inserted else { throw CheckFailure("page size \(pageSize): \(key) listed twice") }
                }
                if !page.next.isEmpty && !tokens.insert(page.next).inserted {
                    throw CheckFailure("page size \(pageSize): token \"\(page.next.prefix(60))\" came back twice: the walk would never end")
                }
                guard total <= 20_000_000 else { throw CheckFailure("page size \(pageSize): more than 20 million entries without an end") }
                token = page.next
            } while !token.isEmpty
            guard seen.count == wanted.count else {
                let missing = wanted.subtracting(seen).sorted().prefix(3)
                throw CheckFailure("page size \(pageSize): \(seen.count) of \(wanted.count) saved versions listed; missing e.g. \(missing.joined(separator: ", "))")
            }
            walks.append("\(pageSize):\(pages)")
        }
        do {
            _ = try storage.catalog(token: "not a token this storage issued \u{1}", pageSize: 10)
            throw CheckFailure("a token the storage never issued was accepted; expected ATH_INVALID")
        } catch let error as PluginCallError {
            guard error.status == ATH_INVALID else { throw CheckFailure("a foreign token: expected ATH_INVALID: \(error)") }
        }
        if let summary = storage.catalogProblems.summary { throw CheckFailure(summary) }
        // The catalog versions are many; removing them now keeps the later checks' storage small.
        for key in expected {
            let at = key.firstIndex(of: "@")!
            let module = String(key[..<at]), version = String(key[key.index(after: at)...])
            try storage.remove(module, version)
            saved.remove(module, version)
        }
        return "\(expected.count) versions, each listed once; pages (size:count) " + walks.joined(separator: " ") + "; foreign token ATH_INVALID"
    }

    private func largeZip() throws -> String {
        let module = prefix + "/large", version = "v1.0.0"
        let pattern = PatternBytes(seed: 64)
        let size = largeZipBytes
        let source = ZipSource(size: size) { offset, buffer in pattern.fill(offset: offset, buffer) }
        let started = DispatchTime.now()
        try save(module, version, info: info(version), mod: mod(module), source: source)
        let saveSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let blob = try storage.open(module, version, .zip)
        guard blob.size == size else { throw CheckFailure("blob size \(blob.size), saved \(size) bytes") }
        let readStarted = DispatchTime.now()
        // Compared chunk by chunk against the regenerated pattern: the checker never holds a copy.
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate(); scratch.deallocate() }
        var offset: UInt64 = 0
        switch blob.shape {
        case let .bytes(bytes):
            while offset < size {
                let n = Int(min(UInt64(chunk), size - offset))
                let slice = UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<(Int(offset) + n)])
                guard pattern.matches(offset: offset, slice, scratch: scratch) else { throw CheckFailure("bytes differ in the MiB at offset \(offset)") }
                offset += UInt64(n)
            }
        case let .file(fd, start):
            while offset < size {
                let want = Int(min(UInt64(chunk), size - offset))
                let n = pread(fd, buffer.baseAddress!, want, off_t(start + offset))
                guard n > 0 else { throw CheckFailure("pread of the fd blob at \(offset) returned \(n)") }
                guard pattern.matches(offset: offset, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), scratch: scratch) else {
                    throw CheckFailure("bytes differ near offset \(offset)")
                }
                offset += UInt64(n)
            }
        case .stream:
            while true {
                guard let n = blob.readStream(into: buffer) else { throw CheckFailure("the read callback failed at offset \(offset)") }
                if n == 0 { break }
                guard offset + UInt64(n) <= size else { throw CheckFailure("the stream gave more than its \(size) bytes") }
                guard pattern.matches(offset: offset, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), scratch: scratch) else {
                    throw CheckFailure("bytes differ near offset \(offset)")
                }
                offset += UInt64(n)
            }
            guard offset == size else { throw CheckFailure("the stream ended after \(offset) of \(size) bytes") }
        }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - readStarted.uptimeNanoseconds) / 1e9
        try storage.remove(module, version)
        saved.remove(module, version)
        return "\(size >> 20) MiB streamed in (\(String(format: "%.1f", saveSeconds)) s) and compared from a "
            + "\(Self.shapeName(blob)) blob (\(String(format: "%.1f", readSeconds)) s)"
    }

    private func cleanup() throws -> String {
        let all = saved.all
        var failures: [String] = []
        for (module, version) in all {
            do {
                try storage.remove(module, version)
            } catch {
                failures.append("\(error)")
            }
        }
        guard failures.isEmpty else { throw CheckFailure(failures.prefix(3).joined(separator: "; ")) }
        return "\(all.count) versions removed"
    }

    private func blobAudit() throws -> String {
        let ledger = storage.blobs
        if let problems = ledger.problems.summary { throw CheckFailure(problems) }
        let opened = ledger.opened, released = ledger.released, twice = ledger.releasedTwice
        guard twice == 0 else { throw CheckFailure("\(twice) blobs released more than once") }
        guard released == opened else { throw CheckFailure("\(opened) blobs handed out, \(released) released") }
        return "\(opened) blobs, each released once, on \(ledger.releasingThreadCount) threads"
    }
}

/// module@version pairs the checks saved and have not removed, for the clean-up.
private final class SavedVersions: @unchecked Sendable {
    private let lock = NSLock()
    private var versions = Set<[String]>()

    func insert(_ module: String, _ version: String) { _ = lock.withLock { versions.insert([module, version]) } }
    func remove(_ module: String, _ version: String) { _ = lock.withLock { versions.remove([module, version]) } }
    var all: [(String, String)] { lock.withLock { versions.map { ($0[0], $0[1]) } } }
}

/// Counts named outcomes across threads.
private final class OutcomeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    func add(_ key: String) { lock.withLock { counts[key, default: 0] += 1 } }
    func count(_ key: String) -> Int { lock.withLock { counts[key, default: 0] } }
}

/// Blobs kept alive by one thread and released by another.
private final class BlobBag: @unchecked Sendable {
    private let lock = NSLock()
    private var blobs: [Blob] = []

    func add(_ blob: Blob) { lock.withLock { blobs.append(blob) } }
    var count: Int { lock.withLock { blobs.count } }
    func removeAll() {
        let taken = lock.withLock { () -> [Blob] in
            let all = blobs
            blobs = []
            return all
        }
        _ = taken
    }
}
