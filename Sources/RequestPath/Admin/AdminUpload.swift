import Foundation
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
    package let spoolDirectory: String

    package func run(_ upload: UploadRequest) throws(AdminError) -> (response: Response, result: String) {
        let (module, version) = (upload.module, upload.version)
        let mod = Array(upload.mod)
        var info = Array(JSONValue.object(JSONObject([("Version", .string(version)),
                                                     ("Time", .string(upload.time ?? Self.now()))])).text().utf8)
        let spool: Spool
        do {
            spool = try Spool(directory: spoolDirectory)
        } catch {
            throw .failed("spool: \(error.message)")
        }
        guard upload.zip.withUnsafeBytes({ spool.append($0) }) else { throw .failed("spool: cannot write the zip") }
        let zipSize = UInt64(upload.zip.count)
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
                guard try same(module, version, .mod, mod), try same(module, version, .zip, Array(upload.zip)) else {
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

    private static func answer(_ module: String, _ version: String, stored: Bool) -> Response {
        .json(Array(JSONValue.object(JSONObject([("module", .string(module)), ("version", .string(version)),
                                                 ("stored", .bool(stored))])).text().utf8))
    }

    /// Now, as RFC 3339 in UTC (the .info time of an upload that names none).
    private static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}
