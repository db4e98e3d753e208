// The storage checks of a whole store: catalog paging over a thousand versions, a large streamed zip, the
// clean-up of everything saved, and the blob audit (StorageChecks.swift has the list and the helpers).
import Basics
import Dispatch
import FoundationEssentials
import Glibc
import HostSupport
import PluginABI
import PluginHost

extension StorageChecks {
    func catalogPaging() throws -> String {
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

    func largeZip() throws -> String {
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
        return "\(size >> 20) MiB streamed in (\(saveSeconds.fixed(1)) s) and compared from a "
            + "\(Self.shapeName(blob)) blob (\(readSeconds.fixed(1)) s)"
    }

    func cleanup() throws -> String {
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

    func blobAudit() throws -> String {
        let ledger = storage.blobs
        if let problems = ledger.problems.summary { throw CheckFailure(problems) }
        let opened = ledger.opened, released = ledger.released, twice = ledger.releasedTwice
        guard twice == 0 else { throw CheckFailure("\(twice) blobs released more than once") }
        guard released == opened else { throw CheckFailure("\(opened) blobs handed out, \(released) released") }
        return "\(opened) blobs, each released once, on \(ledger.releasingThreadCount) threads"
    }
}
