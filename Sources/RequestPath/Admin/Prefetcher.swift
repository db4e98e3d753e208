import Dispatch
import GoModule
import HostSupport
import PluginHost

/// Works through a prefetch job: each item goes the way a client's download of it goes (the route: exclude,
/// private, its fetchers and download mode; then storage; then the stasher chain: single-flight, stash pool,
/// deadline), on the download pool, by `concurrency` lanes at most. A lane holds no thread between items: it submits
/// one pool job per item, so client requests queue fairly beside it, and a full pool only delays a lane.
package struct Prefetcher: Sendable {
    package let download: DownloadProtocol
    /// Items in progress at once; at most half the download pool's threads (and half the smallest stash pool's), so
    /// clients always find workers.
    package let concurrency: Int

    /// `stashWorkers`: the smallest stash pool's threads, when the chain has a pool.
    package init(download: DownloadProtocol, concurrency: Int?, stashWorkers: Int? = nil) {
        self.download = download
        let half = max(1, min(download.pool.threadCount, stashWorkers ?? Int.max) / 2)
        self.concurrency = min(half, max(1, concurrency ?? half))
    }

    /// Starts the job's lanes; returns at once.
    package func start(_ job: PrefetchJob) {
        for _ in 0..<min(concurrency, job.request.items.count) { next(job) }
    }

    private func next(_ job: PrefetchJob) {
        guard let index = job.take() else { return }
        submit(job, index, delay: 0.05)
    }

    private func submit(_ job: PrefetchJob, _ index: Int, delay: Double) {
        let accepted = download.pool.submit {
            let (state, version, error) = self.prefetch(job.request.items[index])
            job.finish(index, state, version: version, error: error)
            self.next(job)
        }
        if !accepted {
            // The pool is full of client work: try again shortly, backing off up to a second.
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { self.submit(job, index, delay: min(1, delay * 2)) }
        }
    }

    /// One item, blocking (on a pool thread): skipped when stored, else stashed as a sync miss would be.
    func prefetch(_ item: PrefetchRequest.Item) -> (PrefetchJob.State, String?, String?) {
        let module = item.module
        let route = download.policy.route(module)
        if route.excluded { return (.failed, nil, "\(module) is excluded by this proxy's policy") }
        switch route.mode {
        case .none: return (.failed, nil, "\(module): this proxy does not fetch it (download mode none)")
        case .redirect: return (.failed, nil, "\(module): download mode redirect stores nothing here (clients go to downloadURL)")
        case .sync, .async, .asyncRedirect: break
        }
        var version = item.version
        do throws(DownloadError) {
            if item.isQuery {
                // As the go command asks: @latest through the list/latest logic, other queries resolved and stored.
                let response = item.version == "latest"
                    ? try download.latest(module: module, route: route)
                    : try download.resolveQuery(module: module, query: item.version, route: route)
                guard response.status == 200, let resolved = try? ArtifactValidator.checkInfo(Self.bytes(response), version: nil) else {
                    throw DownloadError(status: 502, message: "\(module)@\(item.version): no version in the answer")
                }
                version = resolved
                if item.version != "latest" { return (.done, version, nil) }
            }
            do {
                if try download.storage.exists(module: module, version: version) { return (.skipped, version, nil) }
            } catch {
                throw DownloadError(error, module: module, version: version)
            }
            // Kept: the job waits, but a deadline that cuts the wait short should still leave the version stored.
            try download.stasher.stash(module: module, version: version, keep: true)
            return (.done, version, nil)
        } catch {
            return (.failed, item.isQuery && version == item.version ? nil : version, error.message)
        }
    }

    /// A 200's body (an .info: small).
    private static func bytes(_ response: Response) -> [UInt8] {
        switch response.body {
        case .empty: []
        case let .bytes(bytes): bytes
        case let .blob(blob): blob.readAll(limit: UInt64(ModuleZip.maxGoMod)) ?? []
        }
    }
}
