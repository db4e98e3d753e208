import JSON
import SumDB

/// The checksum database this proxy trusts: `verify` compares stored versions with it and, unless `verifyIngest`
/// is false, every fetched public version is checked against it before it is stored (IngestVerifier).
package struct ChecksumDBUse: Equatable, Sendable {
    /// Base URL (`<url>/latest`, `/lookup/…`, `/tile/…`), e.g. "https://sum.golang.org".
    package var url: String
    /// The verifier key "name+hash+key" (as GOSUMDB takes it).
    package var key: String
    /// Check fetched versions before storing them (default true).
    package var verifyIngest = true
}

extension Manifest {
    /// Reads top-level `checksumDB` or its older spelling `admin.checksumDB` (same keys); `previous` is what the
    /// other spelling gave: only one may be set.
    static func checksumDB(_ db: JSONFields<ManifestError>, previous: ChecksumDBUse?) throws(ManifestError) -> ChecksumDBUse {
        guard previous == nil else { throw ManifestError("\(db.path): give checksumDB once, at the top level (admin.checksumDB is its older spelling)") }
        guard let url = try db.string("url"), url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ManifestError("\(db.path).url: required, http:// or https://")
        }
        guard let key = try db.string("key"), (try? VerifierKey(key)) != nil else {
            throw ManifestError("\(db.path).key: required, a verifier key (name+hash+key)")
        }
        var use = ChecksumDBUse(url: url, key: key)
        if let v = try db.bool("verifyIngest") { use.verifyIngest = v }
        try db.finish()
        return use
    }
}
