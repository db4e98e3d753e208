import HostSupport
import PluginHost
import GoModule

/// `/@v/{query}.info` for a query: a branch, a commit, a tag not in canonical form, or a canonical tag whose
/// major the module path lacks. The route's fetchers resolve it; the version they name is stored, then served.
extension DownloadProtocol {
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
        let call = requestContext()
        for fetcher in route.fetchers {
            let version: String
            do {
                let info = try fetcher.resolve(module: module, query: query, call: call)
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
}
