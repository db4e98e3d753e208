import HostSupport
import Synchronization
import SumDB

/// Ingest verification: before a fetched version is stored, its h1 hashes are compared with the checksum database's
/// verified record (SumDBVerifier: signed tree head, tile and record proofs). A disagreement, or no verified answer
/// at all, stores nothing and answers `502` naming module@version and the hash (fail closed, as the go command does
/// with GOSUMDB set: a module the database cannot vouch for is not accepted). Modules the policy keeps away from
/// checksum databases (private rules, `noSumPatterns`) are not looked up.
///
/// Counted in `athens_ingest_verify_total{result}`: ok, mismatch, skipped (private), not_found (the database does
/// not know the version), unavailable (it could not be reached), error (its answer failed verification).
package final class IngestVerifier: Sendable {
    package let verifier: SumDBVerifier
    /// Where the database is, for messages.
    package let url: String
    /// Verified records by "module@version": records are immutable, so a burst of ingests (or a retry after a
    /// refused one) asks the database once per version. Bounded; emptied when full.
    private let known = Mutex<[String: VerifiedSums]>([:])
    static let knownLimit = 4096

    package init(verifier: SumDBVerifier, url: String) {
        self.verifier = verifier
        self.url = url
    }

    /// Throws the `502` that refuses the version unless the database vouches for both hashes of `record`.
    package func check(module: String, version: String, record: IngestRecord, policy: DownloadPolicy) throws(DownloadError) {
        let what = "\(module)@\(version)"
        guard !policy.refusesSumLookup(module) else { return count("skipped") }
        let sums: VerifiedSums
        do {
            sums = try lookup(module, version)
        } catch {
            let result: String
            switch error {
            case .notFound: result = "not_found"
            case .fetchFailed: result = "unavailable"
            default: result = "error"
            }
            count(result)
            let hint = result == "not_found" ? " (a module the public database cannot know belongs under a private rule or noSumPatterns)" : ""
            throw DownloadError(status: 502, message: "\(what): not stored: the checksum database at \(url) did not verify it: \(error)\(hint)")
        }
        for (name, ours, theirs) in [("zip", record.zip, sums.zipHash), ("go.mod", record.mod, sums.goModHash)] where ours != theirs {
            count("mismatch")
            throw DownloadError(status: 502, message: "\(what): not stored: the upstream's \(name) hashes to \(ours) but the checksum database "
                                    + "at \(url) records \(theirs ?? "no \(name) hash") (SECURITY ERROR: the upstream's copy was altered, or its tag moved)")
        }
        count("ok")
    }

    private func lookup(_ module: String, _ version: String) throws(SumDBError) -> VerifiedSums {
        let key = module + "@" + version
        if let sums = known.withLock({ $0[key] }) { return sums }
        let sums = try verifier.lookup(path: module, version: version)
        known.withLock { known in
            if known.count >= Self.knownLimit { known.removeAll(keepingCapacity: true) }
            known[key] = sums
        }
        return sums
    }

    private func count(_ result: String) { Metrics.shared.ingestVerify(result: result) }
}
