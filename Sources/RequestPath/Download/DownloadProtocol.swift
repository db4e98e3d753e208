import HostSupport
import PluginHost
import GoModule

/// The GOPROXY protocol over one storage, the fetchers, and the routing policy.
///
/// A request's path: the route of its module (first matching rule: private → one fetcher only, exclude →
/// 404, else the default fetchers). Then the in-memory cache and storage, on the event loop: a hit is
/// served at once and never queues behind misses. On a miss, the download mode decides (DownloadModes.swift):
/// `sync` runs the stasher on the download pool (full → 503 + Retry-After) and serves what storage then holds;
/// `async` answers 404 and stashes in the background; `redirect` sends the client to `downloadURL`; `none` 404s.
///
/// The endpoints live beside this file: VersionFiles.swift (.info/.mod/.zip from storage), VersionList.swift
/// (list and @latest), QueryResolution.swift (.info of a branch, tag or commit), Catalog.swift.
package final class DownloadProtocol: @unchecked Sendable {
    package let storage: any Storage
    package let policy: DownloadPolicy
    package let stasher: Stasher
    /// Bounded pool for requests that must wait (misses, list, latest).
    package let pool: WorkerPool
    /// Bounded pool for background stashes of the async modes (full: the stash is skipped).
    package let background: WorkerPool
    package let lists: ListCache
    package let cache: ArtifactCache
    /// Sends storage opens to the pool for a while after one was slow.
    package let breaker: SlowStorageBreaker
    /// Versions that answer 410 (marks kept in storage, re-read every list-cache TTL on the background pool).
    package let quarantine: Quarantine
    /// Deletions made by any instance on this storage, read every list-cache TTL: the memory caches forget them.
    package let deletions: Deletions
    /// Marks served versions for retention; nil when the manifest has no `retention`.
    package let accesses: AccessRecorder?
    /// Seconds a request waits for its plugins (`stash.timeoutSeconds`): the deadline of list, @latest, query
    /// and catalog calls (`requestContext`); a stash has its own (`DeadlineStasher`).
    package let requestTimeout: Double

    package init(storage: any Storage, policy: DownloadPolicy, stasher: Stasher, pool: WorkerPool,
                 background: WorkerPool, lists: ListCache, cache: ArtifactCache, breaker: SlowStorageBreaker = SlowStorageBreaker(),
                 accesses: AccessRecorder? = nil, requestTimeout: Double = 600) {
        self.requestTimeout = requestTimeout
        self.storage = storage
        self.policy = policy
        self.stasher = stasher
        self.pool = pool
        self.background = background
        self.lists = lists
        self.cache = cache
        self.breaker = breaker
        quarantine = Quarantine(storage: storage, refreshSeconds: max(lists.ttl, 1), pool: background)
        deletions = Deletions(storage: storage, refreshSeconds: max(lists.ttl, 1), pool: background, cache: cache, lists: lists)
        self.accesses = accesses
    }

    /// Answers one decoded request. Called on the event loop: what may block goes to the pool.
    package func serve(_ request: DownloadRequest, responder: Responder) {
        let module = request.module
        let route = policy.route(module)
        if route.excluded || ReservedModule.contains(module) {
            return responder.respond(.text(404, "not found: \(module) is excluded by this proxy's policy"))
        }
        switch request.kind {
        case .list:
            offload(responder) { () throws(DownloadError) in try self.list(module: module, route: route) }
        case .latest:
            offload(responder) { () throws(DownloadError) in try self.latest(module: module, route: route) }
        case let .file(artifact, version):
            if let mark = quarantine.mark(module: module, version: version) { return responder.respond(Quarantine.gone(mark)) }
            deletions.poke()
            // The hot path: a file served before was validated before; memory answers without a storage call.
            if !policy.storageRedirects.contains(artifact), let entry = cache.get(request.cacheKey) {
                var response = Response(status: 200, headers: Self.headers(for: artifact), body: entry.body)
                response.cacheResult = "hit"
                accesses?.note(module: module, version: version)
                return responder.respond(response)
            }
            if ModulePath.canonicalVersion(version) == version, artifact != .info || ModulePath.isCanonical(path: module, version: version) {
                // A .mod or .zip of a version that does not fit the path gets serveCanonical's 404.
                serveCanonical(module: module, version: version, artifact: artifact, route: route, responder: responder)
            } else if artifact == .info {
                // A query (branch, tag, commit, or a tag whose major the path lacks, such as v3.2.0 of a path
                // without /v3): resolve it, store the canonical version, serve its .info.
                guard version != "latest", version != "upgrade", version != "patch" else {
                    return responder.respond(.text(404, "not found: \(module)@\(version): use @latest"))
                }
                offload(responder) { () throws(DownloadError) in try self.resolveQuery(module: module, query: version, route: route) }
            } else {
                responder.respond(.text(404, "not found: \(module)@\(version)\(artifact): version is not canonical"))
            }
        }
    }

    private func serveCanonical(module: String, version: String, artifact: Artifact, route: Route, responder: Responder) {
        do {
            try ModulePath.check(path: module, version: version)
        } catch {
            return responder.respond(.text(404, "not found: \(error.message)"))
        }
        // A storage that has just stalled is called from the pool, not the event loop, for a while:
        // one slow open must not hold up every connection of a loop twice.
        if breaker.isTripped {
            return runOnPool(answering: responder) {
                self.serveFile(module: module, version: version, artifact: artifact, route: route, responder: responder, onLoop: false)
            }
        }
        serveFile(module: module, version: version, artifact: artifact, route: route, responder: responder, onLoop: true)
    }

    /// The one hit/miss decision for a file of a canonical version. A stored file (or a storage failure) is
    /// answered at once; a miss as the route's mode says. `onLoop`: on the event loop a sync miss is handed to
    /// the pool, which looks in storage again first (stored while the request queued?); on a pool thread (the
    /// breaker sent the request there) it is fetched in place.
    private func serveFile(module: String, version: String, artifact: Artifact, route: Route, responder: Responder, onLoop: Bool) {
        let found = breaker.timed(storage: storage.name) { hit(module: module, version: version, artifact: artifact, onLoop: onLoop) }
        switch found {
        case var .success(response):
            response.cacheResult = "hit"
            return responder.respond(response)
        case let .failure(error) where error == Self.readOffTheLoop:
            return runOnPool(answering: responder) {
                self.serveFile(module: module, version: version, artifact: artifact, route: route, responder: responder, onLoop: false)
            }
        case let .failure(error) where error.status != 404:
            return responder.respond(error.response)
        case .failure:
            break
        }
        guard route.mode == .sync else {
            return responder.respond(missWithoutFetch(module: module, version: version, artifact: artifact, route: route))
        }
        if onLoop {
            offload(responder) { () throws(DownloadError) in
                if case let .success(response) = self.hit(module: module, version: version, artifact: artifact) { return response }
                return try self.fetchAndServe(module: module, version: version, artifact: artifact)
            }
        } else {
            Self.answer(responder) { () throws(DownloadError) in try self.fetchAndServe(module: module, version: version, artifact: artifact) }
        }
    }

    /// The context of one request's plugin calls outside a stash: its deadline is `requestTimeout` from now, so
    /// every call of the request shares one budget, and it is cancelled when the client hangs up (nobody else
    /// waits for these calls). On the pool thread that answers the request.
    func requestContext() -> CallContext {
        let context = CallContext(timeout: requestTimeout)
        // The observer goes with the request's signal, which lives no longer than the request.
        _ = ClientHangUp.current?.observe { context.cancel() }
        return context
    }

    /// Runs `work` on the download pool and answers with its result; 503 when the pool is full.
    func offload(_ responder: Responder, _ work: @escaping @Sendable () throws(DownloadError) -> Response) {
        runOnPool(answering: responder) { Self.answer(responder, work) }
    }

    /// Runs `job`, which answers through `responder`, on the download pool; when the pool is full, answers
    /// 503 + Retry-After at once instead.
    private func runOnPool(answering responder: Responder, _ job: @escaping @Sendable () -> Void) {
        // The crash line names the request a pool thread works for, as it does on the event loop.
        let request = CrashReporter.currentRequest()
        // Made on the loop: its connection signals it when the client hangs up, and a stash wait then ends.
        let client = responder.clientHangUp()
        let accepted = pool.submit {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            ClientHangUp.with(client) { job() }
        }
        if !accepted {
            var response = Response.text(503, "service unavailable: too many downloads in progress, retry shortly")
            response.headers.append(("Retry-After", "1"))
            responder.respond(response)
        }
    }

    /// Answers with what `work` returns, or with its error's response.
    private static func answer(_ responder: Responder, _ work: () throws(DownloadError) -> Response) {
        do throws(DownloadError) {
            responder.respond(try work())
        } catch {
            responder.respond(error.response)
        }
    }
}
