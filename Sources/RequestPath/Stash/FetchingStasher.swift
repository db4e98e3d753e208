import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import GoModule
import SumDB

/// Fetches a version, spools the zip to an unlinked temporary file, validates all three files with
/// the go command's rules, then saves them. Nothing a fetcher produces reaches storage unchecked.
/// The module's route names the fetchers, tried in order; the next is asked only after a not-found.
/// A private module's route holds only its own fetcher, so private code never reaches an upstream.
///
/// Blocking. As the chain's innermost `StashStage` it runs inline on a stash pool worker.
package final class FetchingStasher: Stasher, StashStage {
    package let policy: DownloadPolicy
    package let storage: any Storage
    /// Where zips are spooled while they are checked (unlinked at once, so nothing is left on a crash).
    package var spoolDirectory: String { spools.directory }
    /// The spool files, reused from one fetch to the next.
    private let spools: SpoolPool
    /// Compares a fetched version's hashes with the checksum database before it is stored; nil: not compared.
    package let ingest: IngestVerifier?

    package init(policy: DownloadPolicy, storage: any Storage, spoolDirectory: String, ingest: IngestVerifier? = nil) {
        self.policy = policy
        self.storage = storage
        spools = SpoolPool(directory: spoolDirectory)
        self.ingest = ingest
    }

    /// Runs the stash on this thread and returns it ended.
    package func start(module: String, version: String, context: CallContext) -> PendingStash {
        do throws(DownloadError) {
            try stash(module: module, version: version, context: context)
            return PendingStash(ended: .success(()))
        } catch {
            return PendingStash(ended: .failure(error))
        }
    }

    package func stash(module: String, version: String) throws(DownloadError) {
        try stash(module: module, version: version, context: CallContext())
    }

    /// The stash with `context` for every plugin call (its deadline, its cancellation, its request id).
    package func stash(module: String, version: String, context: CallContext) throws(DownloadError) {
        var lastError = DownloadError(status: 404, message: "not found: \(module)@\(version): no fetcher for this module")
        let route = policy.route(module)
        guard !route.excluded else { throw DownloadError(status: 404, message: "not found: \(module) is excluded by this proxy's policy") }
        // A caller that queued behind a finished flight finds the version stored: fetch nothing.
        if (try? storage.exists(module: module, version: version, call: context)) == true { return }
        for fetcher in route.fetchers {
            let start = MonotonicClock.now()
            do {
                try stash(module: module, version: version, from: fetcher, context: context)
                Metrics.shared.fetch(fetcher: fetcher.name, result: "ok", seconds: MonotonicClock.now() - start)
                return
            } catch where error.status == 404 {
                Metrics.shared.fetch(fetcher: fetcher.name, result: "not_found", seconds: MonotonicClock.now() - start)
                lastError = error
            } catch {
                Metrics.shared.fetch(fetcher: fetcher.name, result: error.status == 504 ? "timeout" : "error", seconds: MonotonicClock.now() - start)
                throw error
            }
        }
        throw lastError
    }

    private func stash(module: String, version: String, from fetcher: any Fetcher, context: CallContext) throws(DownloadError) {
        let spool: Spool
        do {
            spool = try spools.take()
        } catch {
            throw DownloadError(status: 503, message: error.message)
        }
        var info: [UInt8] = [], mod: [UInt8] = []
        var zipBytes: UInt64 = 0
        var refused: String?
        do throws(PluginError) {
            try fetcher.fetch(module: module, version: version, info: { bytes in
                guard info.count + bytes.count <= ArtifactValidator.maxInfo else { refused = ".info larger than \(ArtifactValidator.maxInfo) bytes"; return false }
                info += bytes
                return true
            }, mod: { bytes in
                guard UInt64(mod.count + bytes.count) <= ModuleZip.maxGoMod else { refused = ".mod larger than \(ModuleZip.maxGoMod) bytes"; return false }
                mod += bytes
                return true
            }, zip: { bytes in
                guard zipBytes + UInt64(bytes.count) <= ModuleZip.maxZipFile else { refused = ".zip larger than \(ModuleZip.maxZipFile) bytes"; return false }
                guard spool.appendBuffered(bytes) else { refused = "spooling the zip failed: \(String(cString: strerror(errno)))"; return false }
                zipBytes += UInt64(bytes.count)
                return true
            }, call: context)
        } catch {
            // A fetch stopped by its context says so, whatever status the plugin chose on the way out.
            if context.isCancelled { throw Self.stopped(context, "\(module)@\(version)") }
            if let refused { throw DownloadError(status: 502, message: "\(module)@\(version): \(refused)") }
            throw DownloadError(error, module: module, version: version)
        }
        if refused == nil, !spool.flush() { refused = "spooling the zip failed: \(String(cString: strerror(errno)))" }
        // A fetcher that ignores a refused write and reports success still fails here.
        if let refused { throw DownloadError(status: 502, message: "\(module)@\(version): \(refused)") }
        let what = "\(module)@\(version)"
        let record: IngestRecord
        do {
            try ArtifactValidator.checkInfo(info, version: version)
            try ArtifactValidator.checkMod(mod, module: module)
            // The zip's h1 hash is computed in the pass that checks it; recorded in the .info that commits the version.
            let zipHash = try DirHash.checkAndHashZip(fd: spool.fd, size: zipBytes, module: module, version: version).hash
            record = IngestRecord(zip: zipHash, mod: DirHash.hashGoMod(mod))
            info = try record.stamped(info, version: version)
        } catch let error as ZipError {
            throw DownloadError(status: 502, message: "\(what): fetcher \(fetcher.name) produced an invalid zip: \(error.message)")
        } catch let error as ValidationError {
            throw DownloadError(status: 502, message: "\(what): fetcher \(fetcher.name) produced \(error.message)")
        } catch {
            throw DownloadError(status: 502, message: "\(what): \(error)")
        }
        try ingest?.check(module: module, version: version, record: record, policy: policy)
        do {
            try storage.save(module: module, version: version, info: info, mod: mod, zipFD: spool.fd, zipSize: zipBytes, call: context)
        } catch let saveError {
            // A save that failed half-way may have left files behind; served later they would be a truncated
            // 200. Ask the storage to drop the version before answering. (Should another process have stored it
            // meanwhile, the cost is one more fetch later, never a bad file.)
            do throws(PluginError) {
                // Not cancellable: what a failed save left behind must go.
                try storage.remove(module: module, version: version, call: CallContext(requestID: context.requestID))
            } catch where error.code == .notFound {
                // Nothing was left behind.
            } catch {
                Log.error("after a failed save, removing the version failed too: \(error) [\(module)@\(version)]")
            }
            throw DownloadError(saveError, module: module, version: version)
        }
    }

    /// The error of a stash its context stopped: 503 when cancelled (nobody wants it, or shutdown), 504 past the
    /// fetch deadline.
    static func stopped(_ context: CallContext, _ what: String) -> DownloadError {
        if context.wasCancelled || context.deadline.map({ MonotonicClock.nanoseconds() < $0 }) ?? true {
            return DownloadError(status: 503, message: "\(what): the fetch was cancelled (nobody waited for it, or the server is stopping)")
        }
        return DownloadError(status: 504, message: "\(what): the fetch ran past its deadline")
    }
}
