import HostSupport
import PluginHost
import GoModule

/// `/@v/list` and `/@latest`: the versions storage holds merged with what the route's fetchers list, and the
/// version the go command would pick. Fetchers' answers are cached for the TTL (`lists`) and kept, stale, for
/// when they fail; the network mode decides what a failure does.
extension DownloadProtocol {
    /// Canonical release and pre-release versions, no pseudo-versions.
    static func listable(_ versions: some Sequence<String>) -> [String] {
        versions.filter { ModulePath.canonicalVersion($0) == $0 && !SemVer.isPseudoVersion($0) }
    }

    /// What the route's fetchers list (cached for the TTL; stale when they fail, unless strict), or the error;
    /// nil when no fetcher is asked (offline, or none routed).
    private func fetchedVersions(module: String, route: Route, call: CallContext) -> Result<[String], DownloadError>? {
        guard policy.networkMode != .offline, !route.fetchers.isEmpty else { return nil }
        var lastError: DownloadError?
        for fetcher in route.fetchers {
            let key = "list\u{0}" + fetcher.name + "\u{0}" + module
            if let cached = lists.fresh(key) { return .success(Self.decodeLines(cached)) }
            do {
                let versions = Self.listable(try fetcher.list(module: module, call: call))
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
        let call = requestContext()
        // Storage knows the module if it holds any version, a pseudo-version included (then the list is
        // empty but 200, so the go command goes on to @latest).
        let storedAll: [String]
        do {
            storedAll = try storage.list(module: module, call: call)
        } catch {
            throw DownloadError(error, module: module, version: nil)
        }
        var versions = Set(Self.listable(storedAll))
        switch fetchedVersions(module: module, route: route, call: call) {
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
        let call = requestContext()
        var failure: DownloadError?, notFound: DownloadError?
        if policy.networkMode != .offline {
            for fetcher in route.fetchers {
                let key = "latest\u{0}" + fetcher.name + "\u{0}" + module
                if let cached = lists.fresh(key) { return Self.latestResponse(cached) }
                do {
                    let info = try latestInfo(module: module, fetcher: fetcher, call: call)
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
        if let response = storedLatest(module: module, call: call) { return response }
        if let failure = failure ?? notFound { throw failure }
        if policy.networkMode == .offline {
            throw DownloadError(status: 404, message: "not found: \(module)@latest: nothing cached (offline mode)")
        }
        throw DownloadError(status: 404, message: route.fetchers.isEmpty ? "not found: \(module)@latest: no fetcher for this module and nothing cached"
                                                                         : "not found: \(module)@latest")
    }

    /// The stored .info of the version `LatestVersion` picks from storage's versions; nil if none is stored.
    private func storedLatest(module: String, call: CallContext) -> Response? {
        guard let stored = try? storage.list(module: module, call: call), let best = LatestVersion.pick(stored),
              case var .success(response) = hit(module: module, version: best, artifact: .info) else { return nil }
        response.headers = Self.latestHeaders
        return response
    }

    /// The fetcher's @latest; when it has none (ATH_NOT_FOUND), the .info of the version `LatestVersion`
    /// picks from what it lists — what the go command itself would pick.
    private func latestInfo(module: String, fetcher: any Fetcher, call: CallContext) throws(PluginError) -> [UInt8] {
        do {
            return try fetcher.resolve(module: module, query: "latest", call: call)
        } catch where error.code == .notFound {
            guard let best = LatestVersion.pick(Self.listable(try fetcher.list(module: module, call: call))) else { throw error }
            return try fetcher.resolve(module: module, query: best, call: call)
        }
    }

    private static func latestResponse(_ info: [UInt8]) -> Response {
        Response(status: 200, headers: latestHeaders, body: .bytes(info))
    }

    /// @latest changes as versions are published: never cached by clients.
    private static let latestHeaders = [(name: "Content-Type", value: "application/json"), (name: "Cache-Control", value: "no-cache")]
}
