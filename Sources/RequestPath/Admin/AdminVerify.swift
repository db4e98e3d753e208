import GoModule
import HTTPClient
import JSON
import PluginHost
import SumDB

/// `POST /admin/verify {"module": "m", "version": "v1.2.3", "quarantine": false}`: recomputes the h1: hashes of the
/// stored .zip and .mod (DirHash) and compares them with the checksum database's verified go.sum lines
/// (SumDBVerifier: signed tree head, tile and record proofs; not asked for modules the policy keeps private) and with
/// the hashes recorded at ingest in the stored .info (IngestRecord; a version stored before records existed has
/// none: "no ingest record"). Answers each hash and whether all agree. Changes nothing unless `quarantine` is true
/// and they disagree: then the version is quarantined (answers 410 until released). Runs on the download pool.
package struct AdminVerify {
    package let storage: any Storage
    /// The checksum database; nil: `501` (the manifest has no `checksumDB`).
    package let verifier: SumDBVerifier?
    /// Decides which modules are never looked up in a checksum database.
    package var policy = DownloadPolicy()
    /// Where a mismatching version is quarantined when asked.
    package var quarantine: Quarantine?
    /// Forgets a quarantined version's cached files.
    package var cache: ArtifactCache?

    package func run(_ body: [UInt8]) throws(AdminError) -> (response: Response, result: String) {
        let fields = try AdminBody.fields(body)
        guard let module = try fields.string("module"), let version = try fields.string("version") else {
            throw .badRequest("request: module and version are required")
        }
        let quarantining = try fields.bool("quarantine") ?? false
        try fields.finish()
        try AdminBody.check(module: module, version: version)
        guard let verifier else { throw .notSupported("no checksum database to verify against: set checksumDB") }
        let zipHash: String, modHash: String, record: IngestRecord?
        do {
            guard try storage.exists(module: module, version: version) else { throw AdminError.notFound("\(module)@\(version) is not stored") }
            let zip = try storage.open(module: module, version: version, artifact: .zip)
            guard let zipBytes = zip.readAll(limit: ModuleZip.maxZipFile) else { throw AdminError.failed("storage: the zip could not be read whole") }
            let mod = try storage.open(module: module, version: version, artifact: .mod)
            guard let modBytes = mod.readAll(limit: ModuleZip.maxGoMod) else { throw AdminError.failed("storage: the go.mod could not be read whole") }
            let info = try storage.open(module: module, version: version, artifact: .info)
            guard let infoBytes = info.readAll(limit: UInt64(ArtifactValidator.maxInfo)) else { throw AdminError.failed("storage: the .info could not be read whole") }
            // A stored zip that is no longer a valid zip is a mismatch too: it cannot hash to what was recorded.
            zipHash = (try? DirHash.hashZip(bytes: zipBytes)) ?? "invalid zip"
            modHash = DirHash.hashGoMod(modBytes)
            record = IngestRecord.read(infoBytes)
        } catch let error as AdminError {
            throw error
        } catch {
            throw .failed("storage: \(error)")
        }
        var sums: VerifiedSums?
        if !policy.refusesSumLookup(module) {
            do {
                sums = try verifier.lookup(path: module, version: version)
            } catch {
                throw AdminError(status: 502, result: "error", message: "checksum database: \(error)")
            }
        }
        var mismatches: [String] = []
        func entry(_ name: String, _ stored: String, _ recorded: String?, _ ingest: String?) -> JSONValue {
            if sums != nil, stored != recorded { mismatches.append("the stored \(name) hashes to \(stored), the checksum database records \(recorded ?? "none")") }
            if let ingest, stored != ingest { mismatches.append("the stored \(name) hashes to \(stored), it hashed to \(ingest) when stored") }
            let match = (sums == nil || stored == recorded) && (ingest == nil || stored == ingest)
            return .object(JSONObject([("stored", .string(stored)), ("checksumDB", recorded.map(JSONValue.string) ?? .null),
                                       ("ingest", ingest.map(JSONValue.string) ?? .null), ("match", .bool(match))]))
        }
        let zipEntry = entry("zip", zipHash, sums?.zipHash, record?.zip), modEntry = entry("go.mod", modHash, sums?.goModHash, record?.mod)
        // Nothing to compare with (a private module stored before records existed): neither a match nor a mismatch.
        let compared = sums != nil || record != nil
        let match = mismatches.isEmpty
        var answer = JSONObject([("module", .string(module)), ("version", .string(version)), ("match", compared ? .bool(match) : .null),
                                 ("zip", zipEntry), ("mod", modEntry), ("ingestRecord", .bool(record != nil))])
        if record == nil { answer["note"] = .string("no ingest record (stored before athens recorded hashes, or by another writer)") }
        if sums == nil { answer["note"] = .string((record == nil ? "no ingest record; " : "") + "a private module: the checksum database is not asked") }
        if quarantining, !match, let quarantine {
            do {
                let mark = try quarantine.add(module: module, version: version, reason: "verify: " + mismatches.joined(separator: "; "))
                cache?.forget(module: module, version: version)
                answer["quarantined"] = .string(mark.time)
            } catch {
                throw .failed("storage: saving the quarantine mark: \(error)")
            }
        }
        return (.json(Array(JSONValue.object(answer).text().utf8)), !compared ? "unverified" : match ? "ok" : "mismatch")
    }
}

extension AdminVerify {
    /// A verifier for the checksum database at `url` (`<url>/latest`, `/lookup/…`, `/tile/…`) signed with `key`
    /// ("name+hash+key"); nil when the key does not parse (the manifest checked it).
    package static func verifier(url: String, key text: String) -> SumDBVerifier? {
        guard let key = try? VerifierKey(text) else { return nil }
        let client = HTTPClient()
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        return SumDBVerifier(key: key) { path in
            let response = try client.fetch(HTTPRequest(.get, url: base + "/" + path),
                                            limits: HTTPLimits(maxBodyBytes: 1 << 20, timeout: .seconds(30), idleTimeout: .seconds(30)))
            if response.status == 404 || response.status == 410 { throw SumDBError.notFound(path: path) }
            guard response.status == 200 else { throw SumDBError.fetchFailed(path: path, reason: "HTTP \(response.status)") }
            return response.body
        }
    }
}
