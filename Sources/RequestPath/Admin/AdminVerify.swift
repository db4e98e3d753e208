import GoModule
import HTTPClient
import JSON
import PluginHost
import SumDB

/// `POST /admin/verify {"module": "m", "version": "v1.2.3"}`: recomputes the h1: hashes of the stored .zip and .mod
/// (DirHash) and compares them with the checksum database's verified go.sum lines (SumDBVerifier: signed tree head,
/// tile and record proofs). Answers both hashes and whether they match; changes nothing. Runs on the download pool.
package struct AdminVerify {
    package let storage: any Storage
    /// The checksum database; nil: `501` (the manifest's `admin.checksumDB` is not set).
    package let verifier: SumDBVerifier?

    package func run(_ body: [UInt8]) throws(AdminError) -> (response: Response, result: String) {
        let fields = try AdminBody.fields(body)
        guard let module = try fields.string("module"), let version = try fields.string("version") else {
            throw .badRequest("request: module and version are required")
        }
        try fields.finish()
        try AdminBody.check(module: module, version: version)
        guard let verifier else { throw .notSupported("no checksum database to verify against: set admin.checksumDB") }
        let zipHash: String, modHash: String
        do {
            guard try storage.exists(module: module, version: version) else { throw AdminError.notFound("\(module)@\(version) is not stored") }
            let zip = try storage.open(module: module, version: version, artifact: .zip)
            guard let zipBytes = zip.readAll(limit: ModuleZip.maxZipFile) else { throw AdminError.failed("storage: the zip could not be read whole") }
            let mod = try storage.open(module: module, version: version, artifact: .mod)
            guard let modBytes = mod.readAll(limit: ModuleZip.maxGoMod) else { throw AdminError.failed("storage: the go.mod could not be read whole") }
            // A stored zip that is no longer a valid zip is a mismatch too: it cannot hash to what was recorded.
            zipHash = (try? DirHash.hashZip(bytes: zipBytes)) ?? "invalid zip"
            modHash = DirHash.hashGoMod(modBytes)
        } catch let error as AdminError {
            throw error
        } catch {
            throw .failed("storage: \(error)")
        }
        let sums: VerifiedSums
        do {
            sums = try verifier.lookup(path: module, version: version)
        } catch {
            throw AdminError(status: 502, result: "error", message: "checksum database: \(error)")
        }
        func entry(_ stored: String, _ recorded: String?) -> JSONValue {
            .object(JSONObject([("stored", .string(stored)), ("checksumDB", recorded.map(JSONValue.string) ?? .null),
                                ("match", .bool(stored == recorded))]))
        }
        let match = zipHash == sums.zipHash && modHash == sums.goModHash
        let answer = JSONObject([("module", .string(module)), ("version", .string(version)), ("match", .bool(match)),
                                 ("zip", entry(zipHash, sums.zipHash)), ("mod", entry(modHash, sums.goModHash))])
        return (.json(Array(JSONValue.object(answer).text().utf8)), match ? "ok" : "mismatch")
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
            guard response.status == 200 else { throw SumDBError.fetchFailed(path: path, reason: "HTTP \(response.status)") }
            return response.body
        }
    }
}
