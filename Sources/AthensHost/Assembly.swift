import Basics
import HostSupport
import PluginCheck
import PluginHost
import RequestPath
import FoundationEssentials
import Glibc

/// Everything a manifest assembles behind the HTTP server: plugins, routing policy, stasher chain,
/// pools, the download protocol and the router. Built at start-up and again on every SIGHUP reload.
final class Assembly: @unchecked Sendable {
    let manifest: Manifest
    let storage: StoragePlugin
    let fetchers: [FetcherPlugin]
    /// The lock a `singleflight` wrapper names (stash.wrappers[].lock), if any.
    let lock: LockPlugin?
    let pool: WorkerPool
    let background: WorkerPool
    let router: Router
    private let stash: StashChain
    /// Marks downloads for retention (manifest `retention`); nil without it.
    let accesses: AccessRecorder?
    private let retentionSchedule: RetentionSchedule?

    /// Why an assembly failed: one line naming the manifest key.
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Loads and creates every plugin the manifest names and wires the request path.
    init(_ manifest: Manifest, version: String) throws(Failure) {
        self.manifest = manifest
        func load(_ use: Manifest.PluginUse, key: String) throws(Failure) -> PluginLibrary {
            do {
                // Through private copies: a plugin file replaced since the last load is loaded anew.
                return try PluginStore.shared.library(at: manifest.libraryPath(for: use.plugin))
            } catch {
                throw Failure(description: "\(key): \(error.description)")
            }
        }
        let storageLibrary = try load(manifest.storage, key: "storage.plugin")
        guard storageLibrary.kind == .storage else { throw Failure(description: "storage.plugin: \(storageLibrary.path) is a \(storageLibrary.kind) plugin") }
        do {
            storage = try StoragePlugin(library: storageLibrary, configJSON: manifest.storage.configJSON, name: manifest.storage.plugin)
        } catch {
            throw Failure(description: "storage.config: \(error.message)")
        }
        var fetchers: [FetcherPlugin] = []
        for (index, fetcher) in manifest.fetchers.enumerated() {
            let library = try load(fetcher.use, key: "fetchers[\(index)].plugin")
            guard library.kind == .fetcher else { throw Failure(description: "fetchers[\(index)].plugin: \(library.path) is a \(library.kind) plugin") }
            do {
                fetchers.append(try FetcherPlugin(library: library, configJSON: fetcher.use.configJSON, name: fetcher.name))
            } catch {
                throw Failure(description: "fetchers[\(index)].config: \(error.message)")
            }
        }
        self.fetchers = fetchers
        if let use = manifest.stashLock {
            let library = try load(use.use, key: "stash.wrappers.lock.plugin")
            guard library.kind == .lock else { throw Failure(description: "stash.wrappers.lock.plugin: \(library.path) is a \(library.kind) plugin") }
            do {
                lock = try LockPlugin(library: library, configJSON: use.use.configJSON, name: use.use.plugin)
            } catch {
                throw Failure(description: "stash.wrappers.lock.config: \(error.message)")
            }
        } else {
            lock = nil
        }

        // Routing: rules name fetchers by their manifest names (checked when the manifest was read).
        var policy = DownloadPolicy(rules: manifest.rules, mode: manifest.downloadMode, downloadURL: manifest.downloadURL,
                                    networkMode: manifest.networkMode, noSumPatterns: manifest.noSumPatterns)
        policy.storageRedirects = manifest.storageRedirects
        for fetcher in fetchers { policy.fetchersByName[fetcher.name] = fetcher }
        policy.defaultFetchers = manifest.defaultFetcher.flatMap { policy.fetchersByName[$0] }.map { [$0] } ?? fetchers

        // The stasher chain: the manifest's wrappers in order (the first is the outermost) over fetch → validate →
        // save; the deadline is how a request waits at the top, so a timed-out fetch keeps its flight and pool slot.
        let backgroundThreads = max(2, manifest.downloadWorkers / 4)
        var locking: (settings: LockingStasher.Settings, storage: any Storage)?
        if let lock, let use = manifest.stashLock {
            // Keys name the storage, so deployments that share a lock backend but not a storage never block each other.
            let namespace = LockingStasher.namespace(storage: manifest.storage.plugin, configJSON: manifest.storage.configJSON)
            locking = (LockingStasher.Settings(lock: lock, namespace: namespace, leaseSeconds: use.leaseSeconds,
                                               waitSeconds: use.waitSeconds ?? manifest.stashTimeout), storage)
        }
        // One verifier for verify and ingest: one newest tree head, one tile cache.
        let verifier = manifest.checksumDB.flatMap { AdminVerify.verifier(url: $0.url, key: $0.key) }
        let ingest = manifest.checksumDB.flatMap { use in use.verifyIngest ? verifier.map { IngestVerifier(verifier: $0, url: use.url) } : nil }
        stash = StashChain(wrappers: manifest.stashWrappers, timeout: manifest.stashTimeout,
                           fetching: FetchingStasher(policy: policy, storage: storage, spoolDirectory: manifest.spoolDirectory, ingest: ingest),
                           callers: manifest.downloadWorkers + backgroundThreads, queue: manifest.downloadQueue,
                           abandonGrace: manifest.stashAbandonGrace, fetchTimeout: manifest.stashFetchTimeout, lock: locking)

        pool = WorkerPool(name: "download", threads: manifest.downloadWorkers, capacity: manifest.downloadQueue)
        background = WorkerPool(name: "background", threads: backgroundThreads, capacity: manifest.downloadQueue)
        var journal: AccessJournal?
        if let settings = manifest.retention {
            do {
                journal = try AccessJournal.journal(directory: settings.stateDirectory, instance: settings.instance)
            } catch {
                throw Failure(description: "retention.stateDirectory: \(error.description)")
            }
        }
        accesses = journal.map { AccessRecorder(store: $0) }
        let download = DownloadProtocol(storage: storage, policy: policy, stasher: stash.stasher, pool: pool, background: background,
                                        lists: ListCache(ttl: manifest.listCacheSeconds),
                                        cache: ArtifactCache(maxBytes: manifest.cacheMaxBytes, maxFileBytes: manifest.cacheMaxFileBytes),
                                        accesses: accesses, requestTimeout: manifest.stashTimeout)
        var retention: Retention?
        if let settings = manifest.retention, let journal {
            retention = Retention(settings: settings, download: download, store: journal, recorder: accesses)
        }
        retentionSchedule = retention.flatMap { retention in
            retention.settings.intervalHours.map { RetentionSchedule(retention: retention, intervalSeconds: $0 * 3600) }
        }
        let sumdb = manifest.sumDBs.isEmpty ? nil : SumDBProxy(databases: manifest.sumDBs, policy: policy)
        let stashWorkers = stash.pools.map(\.workers).min()
        router = Router(download: download, sumdb: sumdb, version: version,
                        auth: manifest.basicAuth.map { BasicAuth(user: $0.user, password: $0.password) },
                        readinessLock: locking.map { Readiness.LockProbe(lock: $0.settings.lock, key: $0.settings.namespace + "readyz",
                                                                         required: manifest.stashLock?.requiredForReadiness ?? false) },
                        admin: manifest.adminToken.map { AdminAPI(token: AdminToken($0), download: download, spoolDirectory: manifest.spoolDirectory,
                                                               verifier: verifier, retention: retention, settings: manifest.adminSettings,
                                                               jobs: PrefetchJobs.shared, stashWorkers: stashWorkers) })
        // Quarantine marks are known before the first request (later ones are re-read as requests arrive).
        do throws(PluginError) { try download.quarantine.refresh() } catch { Log.error("reading quarantine marks: \(error)") }
        accesses?.start(every: manifest.retention?.flushSeconds ?? 60)
        retentionSchedule?.start()
    }

    /// Gauges read at scrape time.
    func gauges() -> [(name: String, labels: String, value: Double)] {
        let download = pool.load, background = background.load
        return [
            ("athens_pool_queue_depth", "pool=\"download\"", Double(download.waiting)),
            ("athens_pool_running", "pool=\"download\"", Double(download.running)),
            ("athens_pool_queue_depth", "pool=\"background\"", Double(background.waiting)),
            ("athens_pool_running", "pool=\"background\"", Double(background.running)),
            ("athens_singleflight_joins_total", "", Double(stash.joins)),
            // The in-memory file cache's own content bytes, apart from the process RSS they are part of.
            ("athens_cache_bytes", "", Double(router.download.cache.heldBytes)),
            // Cached files kept as the storage's open files (sendfile'd; descriptors, no memory).
            ("athens_cache_files", "", Double(router.download.cache.heldFiles)),
            ("athens_cache_max_bytes", "", Double(router.download.cache.maxBytes)),
            ("athens_access_marks_dropped_total", "", Double(accesses?.dropped ?? 0)),
        ] + stash.gauges()
    }

    /// Stops taking new work on this assembly's pools once a newer one has replaced it: their workers
    /// finish what is queued, then end. Nothing else holds the assembly, so when its last request in
    /// flight is answered it is freed with its plugin instances (destroyed), caches and pools. Every
    /// pool an assembly creates must be retired here, or its workers keep it alive for good.
    func retire() {
        pool.retire()
        background.retire()
        stash.retire()
        router.sumdb?.retire()
        retentionSchedule?.stop()
        accesses?.stop()
    }
}

/// The server's handler: forwards to the current assembly's router, which a reload swaps atomically.
/// Requests already routed keep the assembly they started with until they finish.
final class SwappableHandler: RequestHandler, @unchecked Sendable {
    private let lock = PosixLock()
    private var current: Assembly

    init(_ assembly: Assembly) { current = assembly }

    var assembly: Assembly { lock.withLock { current } }

    /// Installs `next`; returns the assembly it replaced.
    func swap(to next: Assembly) -> Assembly {
        lock.withLock {
            let previous = current
            current = next
            return previous
        }
    }

    func handle(_ request: Request, responder: Responder) {
        assembly.router.handle(request, responder: responder)
    }

    /// The router's say over a body, from the head (the admin token and upload limits).
    func plan(_ request: Request) -> BodyPlan {
        assembly.router.plan(request)
    }
}
