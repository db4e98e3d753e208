import FoundationEssentials
import Glibc
import GoModule
import HostSupport
import JSON
import PluginHost
import SumDB

/// Stores an uploaded module version after the checks a fetched one passes (ArtifactValidator: .info, go.mod
/// module line, CheckZip rules and every entry's CRC), plus: the go.mod is the zip's own (or, for a zip without
/// one, the synthesized `module <path>`). A stored version is never replaced: `force` only turns an upload of
/// the same bytes into a no-op. Blocks on storage: runs on the download pool.
package struct AdminUpload {
    package let storage: any Storage
    package let cache: ArtifactCache
    package let lists: ListCache

    /// Checks and stores the upload whose body `body` holds (the go.mod in memory, the zip spooled).
    package func run(_ upload: UploadRequest, _ body: UploadSpool) throws(AdminError) -> (response: Response, result: String) {
        let (module, version) = (upload.module, upload.version)
        let mod = body.mod
        let spool = body.spool, zipSize = body.zipSize
        var info = Array(JSONValue.object(JSONObject([("Version", .string(version)),
                                                     ("Time", .string(upload.time ?? Self.now()))])).text().utf8)
        do {
            try ArtifactValidator.checkInfo(info, version: version)
            try ArtifactValidator.checkMod(mod, module: module)
            let (entries, zipHash) = try DirHash.checkAndHashZip(fd: spool.fd, size: zipSize, module: module, version: version)
            // Recorded like a fetched version's, so verify can tell later what was uploaded.
            info = try IngestRecord(zip: zipHash, mod: DirHash.hashGoMod(mod)).stamped(info, version: version)
            if let goMod = ModuleZip.goModEntry(module: module, version: version, entries: entries) {
                guard ModuleZip.entry(goMod, holds: mod) else { throw ValidationError(message: "a go.mod that differs from the zip's go.mod") }
            } else if mod != Array("module \(module)\n".utf8) {
                throw ValidationError(message: "a go.mod other than \"module \(module)\\n\" for a zip without go.mod")
            }
        } catch let error as ZipError {
            throw .badRequest("\(module)@\(version): invalid zip: \(error.message)")
        } catch let error as ValidationError {
            throw .badRequest("\(module)@\(version): \(error.message)")
        } catch {
            throw .badRequest("\(module)@\(version): \(error)")
        }
        do {
            if try storage.exists(module: module, version: version) {
                guard upload.force else {
                    throw AdminError(status: 409, result: "conflict", message: "\(module)@\(version) is stored already (stored versions are immutable)")
                }
                guard try same(module, version, .mod, mod), try sameZip(module, version, spool.fd, zipSize) else {
                    throw AdminError(status: 409, result: "conflict", message: "\(module)@\(version) is stored with other bytes; force replaces nothing")
                }
                return (Self.answer(module, version, stored: false), "identical")
            }
            try storage.save(module: module, version: version, info: info, mod: mod, zipFD: spool.fd, zipSize: zipSize)
        } catch let error as AdminError {
            throw error
        } catch {
            throw .failed("storage: \(error)")
        }
        // A version served as missing before stays missing in no cache.
        cache.forget(module: module, version: version)
        lists.forget(module: module)
        return (Self.answer(module, version, stored: true), "ok")
    }

    /// Whether the stored `artifact` is exactly `bytes`.
    private func same(_ module: String, _ version: String, _ artifact: Artifact, _ bytes: [UInt8]) throws(PluginError) -> Bool {
        let blob = try storage.open(module: module, version: version, artifact: artifact)
        return blob.size == UInt64(bytes.count) && blob.readAll(limit: UInt64(bytes.count)) == bytes
    }

    /// Whether the stored zip is exactly the spooled one, compared a chunk at a time (a zip may be 500 MiB).
    private func sameZip(_ module: String, _ version: String, _ fd: Int32, _ size: UInt64) throws(PluginError) -> Bool {
        let blob = try storage.open(module: module, version: version, artifact: .zip)
        guard blob.size == size else { return false }
        var mine = [UInt8](repeating: 0, count: 1 << 16), theirs = [UInt8](repeating: 0, count: 1 << 16)
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(UInt64(mine.count), size - offset))
            guard Self.read(fd, &mine, count, offset) else { return false }
            switch blob.shape {
            case let .bytes(bytes):
                guard mine[..<count].elementsEqual(bytes[Int(offset)..<(Int(offset) + count)]) else { return false }
            case let .file(blobFD, blobOffset):
                guard Self.read(blobFD, &theirs, count, blobOffset + offset), mine[..<count] == theirs[..<count] else { return false }
            case .stream:
                var got = 0
                while got < count {
                    guard let n = theirs.withUnsafeMutableBytes({ blob.readStream(into: UnsafeMutableRawBufferPointer(rebasing: $0[got..<count])) }), n > 0 else { return false }
                    got += n
                }
                guard mine[..<count] == theirs[..<count] else { return false }
            }
            offset += UInt64(count)
        }
        return true
    }

    /// Reads exactly `count` bytes at `offset` of `fd` into `buffer`.
    private static func read(_ fd: Int32, _ buffer: inout [UInt8], _ count: Int, _ offset: UInt64) -> Bool {
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    private static func answer(_ module: String, _ version: String, stored: Bool) -> Response {
        .json(Array(JSONValue.object(JSONObject([("module", .string(module)), ("version", .string(version)),
                                                 ("stored", .bool(stored))])).text().utf8))
    }

    /// Now, as RFC 3339 in UTC (the .info time of an upload that names none).
    private static func now() -> String {
        PseudoVersion.rfc3339(unixSeconds: Int64(time(nil)))
    }
}
