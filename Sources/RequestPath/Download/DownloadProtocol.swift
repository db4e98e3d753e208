import HostSupport
import PluginHost
import Foundation
import GoModule

/// The GOPROXY protocol over one storage, the fetchers, and the routing policy.
///
/// A request's path: the route of its module (first matching rule: private → one fetcher only, exclude →
/// 404, else the default fetchers). Then the in-memory cache and storage, on the event loop: a hit is
/// served at once and never queues behind misses. On a miss, the download mode decides: `sync` runs the
/// stasher on the download pool (full → 503 + Retry-After) and serves what storage then holds; `async`
/// answers 404 and stashes in the background; `redirect` sends the client to `downloadURL`; `none` 404s.
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

    package init(storage: any Storage, policy: DownloadPolicy, stasher: Stasher, pool: WorkerPool,
         background: WorkerPool, lists: ListCache, cache: ArtifactCache) {
        self.storage = storage
        self.policy = policy
        self.stasher = stasher
        self.pool = pool
        self.background = background
        self.lists = lists
        self.cache = cache
    }

    /// Answers one decoded request.
    package func serve(_ request: DownloadRequest, responder: Responder) {
        let module = request.module
        let route = policy.route(module)
        if route.excluded {
            return responder.respond(.text(404, "not found: \(module) is excluded by this proxy's policy"))
        }
        switch request.kind {
        case .list:
            offload(responder) { () throws(DownloadError) in try self.list(module: module, route: route) }
        case .latest:
            offload(responder) { () throws(DownloadError) in try self.latest(module: module, route: route) }
        case let .file(artifact, version):
            // The hot path: a file served before was validated before; memory answers without a storage call.
            if let bytes = cache.get(request.cacheKey) {
                var response = Response(status: 200, headers: Self.headers(for: artifact), body: .bytes(bytes))
                response.cacheResult = "hit"
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
        if storageIsSlow() {
            return offload(responder) { () throws(DownloadError) in
                self.serveMiss(module: module, version: version, artifact: artifact, route: route, found: self.timedHit(module: module, version: version, artifact: artifact))
            }
        }
        if let response = serveMiss(module: module, version: version, artifact: artifact, route: route,
                                    found: timedHit(module: module, version: version, artifact: artifact), responder: responder) {
            responder.respond(response)
        }
    }

    private let slowLock = NSLock()
    private var slowUntil = 0.0
    /// An open slower than this marks the storage slow for `slowPenalty` seconds.
    package static let slowOpen = 0.05
    package static let slowPenalty = 30.0

    private func storageIsSlow() -> Bool {
        slowLock.withLock { slowUntil > MonotonicClock.now() }
    }

    /// `hit`, timed: a slow storage call trips the breaker above.
    private func timedHit(module: String, version: String, artifact: Artifact) -> Result<Response, DownloadError> {
        let start = MonotonicClock.now()
        let result = hit(module: module, version: version, artifact: artifact)
        let elapsed = MonotonicClock.now() - start
        if elapsed > Self.slowOpen {
            slowLock.withLock { slowUntil = MonotonicClock.now() + Self.slowPenalty }
            Log.info("storage is slow; opening files off the event loop for a while", [("seconds", String(elapsed)), ("storage", storage.name)])
        }
        return result
    }

    /// The answer when storage had the file or failed; nil when it is simply not stored (a miss).
    private static func answer(_ found: Result<Response, DownloadError>) -> Response? {
        switch found {
        case var .success(response):
            response.cacheResult = "hit"
            return response
        case let .failure(error) where error.status != 404:
            return error.response
        case .failure:
            return nil
        }
    }

    /// Fetches and stores the version, then serves the file from storage (blocking: on the pool).
    private func fetchAndServe(module: String, version: String, artifact: Artifact) throws(DownloadError) -> Response {
        try stasher.stash(module: module, version: version)
        var response = try hit(module: module, version: version, artifact: artifact).get()
        response.cacheResult = "miss"
        return response
    }

    /// Off the loop: the same decisions as the on-loop variant below, but a sync fetch runs inline.
    private func serveMiss(module: String, version: String, artifact: Artifact, route: Route, found: Result<Response, DownloadError>) -> Response {
        if let response = Self.answer(found) { return response }
        guard route.mode == .sync else { return missWithoutFetch(module: module, version: version, artifact: artifact, route: route) }
        do throws(DownloadError) {
            return try fetchAndServe(module: module, version: version, artifact: artifact)
        } catch {
            return error.response
        }
    }

    /// On the loop: a hit or an error is returned; a sync miss is offloaded and answered later (nil).
    private func serveMiss(module: String, version: String, artifact: Artifact, route: Route, found: Result<Response, DownloadError>,
                           responder: Responder) -> Response? {
        if let response = Self.answer(found) { return response }
        guard route.mode == .sync else { return missWithoutFetch(module: module, version: version, artifact: artifact, route: route) }
        offload(responder) { () throws(DownloadError) in
            // Stored while this request waited in the queue? Then no fetch at all.
            if case let .success(response) = self.hit(module: module, version: version, artifact: artifact) { return response }
            return try self.fetchAndServe(module: module, version: version, artifact: artifact)
        }
        return nil
    }

    /// The answer of the modes that do not wait for a fetch: async, redirect, async_redirect, none.
    private func missWithoutFetch(module: String, version: String, artifact: Artifact, route: Route) -> Response {
        let what = "\(module)@\(version)\(artifact)"
        switch route.mode {
        case .sync, .none:
            return .text(404, "not found: \(what): not cached, and this proxy does not fetch it")
        case .async:
            stashInBackground(module: module, version: version)
            return .text(404, "not found: \(what): not cached yet; fetching it in the background, retry shortly")
        case .redirect, .asyncRedirect:
            if route.mode == .asyncRedirect { stashInBackground(module: module, version: version) }
            return redirect(module: module, version: version, artifact: artifact)
        }
    }

    private func stashInBackground(module: String, version: String) {
        let stasher = self.stasher
        let request = CrashReporter.currentRequest()
        background.submit {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            do {
                try stasher.stash(module: module, version: version)
            } catch {
                Log.debug("background fetch of \(module)@\(version) failed: \(error)")
            }
        }
    }

    /// 302 to the same file under `downloadURL`.
    private func redirect(module: String, version: String, artifact: Artifact) -> Response {
        guard let base = policy.downloadURL,
              let path = try? ModulePath.escapePath(module), let escapedVersion = try? ModulePath.escapeVersion(version) else {
            return .text(404, "not found: \(module)@\(version)\(artifact)")
        }
        let location = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/" + path + "/@v/" + escapedVersion + artifact.description
        return Response(status: 302, headers: [("Location", location)])
    }

    /// The stored file as a response, or the failure (404 when not stored). Small files are served from
    /// memory after their first read.
    private func hit(module: String, version: String, artifact: Artifact) -> Result<Response, DownloadError> {
        let key = module + "@" + version + artifact.description
        if let bytes = cache.get(key) {
            return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .bytes(bytes)))
        }
        do {
            let blob = try storage.open(module: module, version: version, artifact: artifact)
            if blob.size <= UInt64(cache.maxFileBytes) {
                // A small file that cannot be read whole is broken: serving the blob would send a 200 cut short.
                guard let bytes = blob.readAll(limit: UInt64(cache.maxFileBytes)) else {
                    return .failure(DownloadError(PluginError(code: .contractViolation, plugin: storage.name, operation: "storage.open",
                                                              message: "its \(artifact) blob of \(blob.size) bytes could not be read whole",
                                                              library: storage.origin), module: module, version: version))
                }
                cache.put(key, bytes)
                return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .bytes(bytes)))
            }
            return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .blob(blob)))
        } catch {
            return .failure(DownloadError(error, module: module, version: version))
        }
    }

    package static func headers(for artifact: Artifact) -> [(name: String, value: String)] {
        switch artifact {
        case .info: infoHeaders
        case .mod: modHeaders
        case .zip: zipHeaders
        }
    }

    private static let infoHeaders = [(name: "Content-Type", value: "application/json"), (name: "Cache-Control", value: "public, max-age=604800")]
    private static let modHeaders = [(name: "Content-Type", value: "text/plain; charset=utf-8"), (name: "Cache-Control", value: "public, max-age=604800, immutable")]
    private static let zipHeaders = [(name: "Content-Type", value: "application/zip"), (name: "Cache-Control", value: "public, max-age=604800, immutable")]

    /// Runs `work` on the download pool and answers with its result; 503 when the pool is full.
    private func offload(_ responder: Responder, _ work: @escaping @Sendable () throws(DownloadError) -> Response) {
        // The crash line names the request a pool thread works for, as it does on the event loop.
        let request = CrashReporter.currentRequest()
        let accepted = pool.submit {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            do throws(DownloadError) {
                responder.respond(try work())
            } catch {
                responder.respond(error.response)
            }
        }
        if !accepted {
            var response = Response.text(503, "service unavailable: too many downloads in progress, retry shortly")
            response.headers.append(("Retry-After", "1"))
            responder.respond(response)
        }
    }

    /// Canonical release and pre-release versions, no pseudo-versions.
    private static func listable(_ versions: some Sequence<String>) -> [String] {
        versions.filter { ModulePath.canonicalVersion($0) == $0 && !SemVer.isPseudoVersion($0) }
    }

    /// What the route's fetchers list (cached for the TTL; stale when they fail, unless strict), or the error.
    private func fetchedVersions(module: String, route: Route) -> Result<[String], DownloadError>? {
        guard policy.networkMode != .offline, !route.fetchers.isEmpty else { return nil }
        var lastError: DownloadError?
        for fetcher in route.fetchers {
            let key = "list\u{0}" + fetcher.name + "\u{0}" + module
            if let cached = lists.fresh(key) { return .success(Self.decodeLines(cached)) }
            do {
                let versions = Self.listable(try fetcher.list(module: module))
                lists.store(key, Array(versions.joined(separator: "\n").utf8))
                return .success(versions)
            } catch {
                let mapped = DownloadError(error, module: module, version: nil)
                if error.code == .notFound {
                    lastError = lastError ?? mapped
                    continue
                }
                if policy.networkMode == .fallback, let stale = lists.stale(key) {
                    Log.info("\(fetcher.name) failed listing \(module), serving the cached list: \(error)")
                    return .success(Self.decodeLines(stale))
                }
                return .failure(mapped)
            }
        }
        return lastError.map { .failure($0) }
    }

    private static func decodeLines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Stored ∪ fetched versions, semver-sorted. Fetcher failures fall back to storage in `fallback` mode
    /// when storage knows the module; in `strict` mode they fail the request.
    package func list(module: String, route: Route) throws(DownloadError) -> Response {
        // Storage knows the module if it holds any version, a pseudo-version included (then the list is
        // empty but 200, so the go command goes on to @latest).
        let storedAll: [String]
        do {
            storedAll = try storage.list(module: module)
        } catch {
            throw DownloadError(error, module: module, version: nil)
        }
        var versions = Set(Self.listable(storedAll))
        switch fetchedVersions(module: module, route: route) {
        case let .success(fetched)?:
            versions.formUnion(fetched)
        case let .failure(error)?:
            if error.status == 404 {
                if storedAll.isEmpty { throw error }
            } else if policy.networkMode == .strict || storedAll.isEmpty {
                throw error
            }
        case nil:
            if storedAll.isEmpty && route.fetchers.isEmpty && policy.networkMode != .offline {
                throw DownloadError(status: 404, message: "not found: \(module): no fetcher for this module")
            }
        }
        if storedAll.isEmpty && versions.isEmpty && policy.networkMode == .offline {
            throw DownloadError(status: 404, message: "not found: \(module): not cached (offline mode)")
        }
        let body = SemVer.sorted(Array(versions)).map { $0 + "\n" }.joined()
        return Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-cache")],
                        body: .bytes(Array(body.utf8)))
    }

    /// The fetchers' `latest` (cached for the TTL), as the go command would pick it. When no fetcher has the
    /// module, or there is none, or — unless strict — they fail, or in offline mode: the same choice made
    /// from the versions in storage, pseudo-versions included (`LatestVersion`).
    package func latest(module: String, route: Route) throws(DownloadError) -> Response {
        var failure: DownloadError?, notFound: DownloadError?
        if policy.networkMode != .offline {
            for fetcher in route.fetchers {
                let key = "latest\u{0}" + fetcher.name + "\u{0}" + module
                if let cached = lists.fresh(key) { return Self.latestResponse(cached) }
                do {
                    let info = try latestInfo(module: module, fetcher: fetcher)
                    let version = try ArtifactValidator.checkInfo(info, version: nil)
                    try ModulePath.check(path: module, version: version)
                    lists.store(key, info)
                    return Self.latestResponse(info)
                } catch let error as PluginError {
                    if error.code == .notFound {
                        notFound = notFound ?? DownloadError(error, module: module, version: "latest")
                        continue
                    }
                    failure = DownloadError(error, module: module, version: "latest")
                } catch let error as ValidationError {
                    failure = DownloadError(status: 502, message: "\(fetcher.name) answered latest with \(error.message)")
                } catch let error as ModuleError {
                    failure = DownloadError(status: 502, message: "\(fetcher.name) answered latest with \(error.message)")
                } catch {
                    failure = DownloadError(status: 502, message: "\(error)")
                }
                if policy.networkMode == .fallback, let stale = lists.stale(key) { return Self.latestResponse(stale) }
                break
            }
            if let failure, policy.networkMode == .strict { throw failure }
        }
        if let response = storedLatest(module: module) { return response }
        if let failure = failure ?? notFound { throw failure }
        if policy.networkMode == .offline {
            throw DownloadError(status: 404, message: "not found: \(module)@latest: nothing cached (offline mode)")
        }
        throw DownloadError(status: 404, message: route.fetchers.isEmpty ? "not found: \(module)@latest: no fetcher for this module and nothing cached"
                                                                         : "not found: \(module)@latest")
    }

    /// The stored .info of the version `LatestVersion` picks from storage's versions; nil if none is stored.
    private func storedLatest(module: String) -> Response? {
        guard let stored = try? storage.list(module: module), let best = LatestVersion.pick(stored),
              case var .success(response) = hit(module: module, version: best, artifact: .info) else { return nil }
        response.headers = [("Content-Type", "application/json"), ("Cache-Control", "no-cache")]
        return response
    }

    /// The fetcher's @latest; when it has none (ATH_NOT_FOUND), the .info of the version `LatestVersion`
    /// picks from what it lists — what the go command itself would pick.
    private func latestInfo(module: String, fetcher: any Fetcher) throws(PluginError) -> [UInt8] {
        do {
            return try fetcher.resolve(module: module, query: "latest")
        } catch where error.code == .notFound {
            guard let best = LatestVersion.pick(Self.listable(try fetcher.list(module: module))) else { throw error }
            return try fetcher.resolve(module: module, query: best)
        }
    }

    private static func latestResponse(_ info: [UInt8]) -> Response {
        Response(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-cache")], body: .bytes(info))
    }

    /// Resolves a .info query (a version not canonical for the module) through the route's fetchers and
    /// stores the version it names. A canonical version that does not fit the path (`v3.2.0` of a path
    /// without `/v3`) can only name its `+incompatible` twin: that is served from storage when stored, and
    /// anything else a fetcher answers for it is refused.
    package func resolveQuery(module: String, query: String, route: Route) throws(DownloadError) -> Response {
        let twin: String? = ModulePath.canonicalVersion(query) == query && SemVer.build(query).isEmpty ? query + "+incompatible" : nil
        if let twin, ModulePath.isCanonical(path: module, version: twin),
           case let .success(response) = hit(module: module, version: twin, artifact: .info) {
            return response
        }
        var lastError = DownloadError(status: 404, message: "not found: \(module)@\(query)")
        if policy.networkMode == .offline || route.mode == .none {
            throw DownloadError(status: 404, message: "not found: \(module)@\(query): queries need a fetcher")
        }
        for fetcher in route.fetchers {
            let version: String
            do {
                let info = try fetcher.resolve(module: module, query: query)
                version = try ArtifactValidator.checkInfo(info, version: nil)
                try ModulePath.check(path: module, version: version)
            } catch let error as PluginError {
                lastError = DownloadError(error, module: module, version: query)
                if error.code == .notFound { continue }
                throw lastError
            } catch let error as ValidationError {
                throw DownloadError(status: 502, message: "\(fetcher.name) resolved \(module)@\(query) to \(error.message)")
            } catch let error as ModuleError {
                throw DownloadError(status: 502, message: "\(fetcher.name) resolved \(module)@\(query) to an invalid version: \(error.message)")
            } catch {
                throw DownloadError(status: 502, message: "\(error)")
            }
            if ModulePath.canonicalVersion(query) == query, version != twin {
                throw DownloadError(status: 502, message: "\(fetcher.name) resolved \(module)@\(query) to \(version), not \(twin ?? "a version of that tag")")
            }
            if case let .success(response) = hit(module: module, version: version, artifact: .info) { return response }
            try stasher.stash(module: module, version: version)
            return try hit(module: module, version: version, artifact: .info).get()
        }
        throw lastError
    }

    /// `/catalog?token=…&pagesize=…`: one page of stored module versions as JSON.
    package func catalog(query: Substring, responder: Responder) {
        var token = "", pageSize = 1000
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0], value = parts.count > 1 ? DownloadRequest.percentDecode(parts[1]) : ""
            guard let value else { return responder.respond(.text(400, "bad request: malformed \(name)")) }
            switch name {
            case "token":
                guard value.utf8.count < Int(ATH_CATALOG_TOKEN_CAPACITY) else { return responder.respond(.text(400, "bad request: token too long")) }
                token = value
            case "pagesize":
                guard let n = Int(value), n >= 1, n <= 10_000 else { return responder.respond(.text(400, "bad request: pagesize must be 1…10000")) }
                pageSize = n
            default:
                return responder.respond(.text(400, "bad request: unknown parameter \(name)"))
            }
        }
        guard storage.hasCatalog else { return responder.respond(.text(501, "not implemented: storage \(storage.name) has no catalog")) }
        let (pageToken, size) = (token, pageSize)
        offload(responder) { () throws(DownloadError) in
            let page: (entries: [(module: String, version: String)], next: String)
            do throws(PluginError) {
                page = try self.storage.catalog(token: pageToken, pageSize: size)
            } catch where error.code == .invalid {
                throw DownloadError(status: 400, message: "bad request: \(error.message)")
            } catch {
                throw DownloadError(error, module: "catalog", version: nil)
            }
            var object: [String: Any] = ["modules": page.entries.map { ["module": $0.module, "version": $0.version] }]
            if !page.next.isEmpty { object["next"] = page.next }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return .json(Array(data))
        }
    }
}

import PluginABI
