import Foundation
import GoModule

/// The GOPROXY protocol over one storage and an ordered list of fetchers.
///
/// A request's path: storage first (on the event loop: a hit is an open() and a sendfile, and never
/// queues behind misses); on a miss, a job on the download pool runs the stasher (fetch → validate →
/// save) and serves what storage then holds. A full pool answers 503 with Retry-After at once.
final class DownloadProtocol: @unchecked Sendable {
    let storage: StoragePlugin
    /// Tried in order; the next one is asked only when one answers not-found (like `GOPROXY=a,b`).
    let fetchers: [FetcherPlugin]
    let stasher: Stasher
    let pool: WorkerPool

    init(storage: StoragePlugin, fetchers: [FetcherPlugin], stasher: Stasher, pool: WorkerPool) {
        self.storage = storage
        self.fetchers = fetchers
        self.stasher = stasher
        self.pool = pool
    }

    /// Answers one decoded request.
    func serve(_ request: DownloadRequest, responder: Responder) {
        let module = request.module
        do {
            try ModulePath.check(module)
        } catch {
            return responder.respond(.text(404, "not found: \(error.message)"))
        }
        switch request.kind {
        case .list:
            offload(responder) { () throws(DownloadError) in try self.list(module: module) }
        case .latest:
            offload(responder) { () throws(DownloadError) in try self.latest(module: module) }
        case let .file(artifact, version):
            if ModulePath.canonicalVersion(version) == version {
                serveCanonical(module: module, version: version, artifact: artifact, responder: responder)
            } else if artifact == .info {
                // A query (branch, tag, commit): resolve it, store the canonical version, serve its .info.
                guard version != "latest", version != "upgrade", version != "patch" else {
                    return responder.respond(.text(404, "not found: \(module)@\(version): use @latest"))
                }
                offload(responder) { () throws(DownloadError) in try self.resolveQuery(module: module, query: version) }
            } else {
                responder.respond(.text(404, "not found: \(module)@\(version)\(artifact): version is not canonical"))
            }
        }
    }

    private func serveCanonical(module: String, version: String, artifact: Artifact, responder: Responder) {
        do {
            try ModulePath.check(path: module, version: version)
        } catch {
            return responder.respond(.text(404, "not found: \(error.message)"))
        }
        switch hit(module: module, version: version, artifact: artifact) {
        case let .success(response):
            responder.respond(response)
        case let .failure(error) where error.status != 404:
            responder.respond(error.response)
        case .failure:
            offload(responder) { () throws(DownloadError) in
                try self.stasher.stash(module: module, version: version)
                return try self.hit(module: module, version: version, artifact: artifact).get()
            }
        }
    }

    /// The stored file as a response, or the failure (404 when not stored).
    private func hit(module: String, version: String, artifact: Artifact) -> Result<Response, DownloadError> {
        do {
            let blob = try storage.open(module: module, version: version, artifact: artifact)
            return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .blob(blob)))
        } catch {
            return .failure(DownloadError(error, module: module, version: version))
        }
    }

    static func headers(for artifact: Artifact) -> [(name: String, value: String)] {
        switch artifact {
        case .info: [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=604800")]
        case .mod: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "public, max-age=604800, immutable")]
        case .zip: [("Content-Type", "application/zip"), ("Cache-Control", "public, max-age=604800, immutable")]
        }
    }

    /// Runs `work` on the download pool and answers with its result; 503 when the pool is full.
    private func offload(_ responder: Responder, _ work: @escaping @Sendable () throws(DownloadError) -> Response) {
        let accepted = pool.submit {
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

    /// Stored ∪ fetched canonical versions, semver-sorted, no pseudo-versions. When every fetcher fails
    /// but storage has versions, storage's answer is served (the module is still usable).
    func list(module: String) throws(DownloadError) -> Response {
        var versions = Set<String>()
        var fetchError: DownloadError?
        var known = false
        do {
            versions.formUnion(try storage.list(module: module))
            known = !versions.isEmpty
        } catch {
            throw DownloadError(error, module: module, version: nil)
        }
        for fetcher in fetchers {
            do {
                versions.formUnion(try fetcher.list(module: module))
                known = true
                fetchError = nil
                break
            } catch where error.code == .notFound {
                if fetchError == nil { fetchError = DownloadError(error, module: module, version: nil) }
            } catch {
                fetchError = DownloadError(error, module: module, version: nil)
                break
            }
        }
        let listed = SemVer.sorted(versions.filter { ModulePath.canonicalVersion($0) == $0 && !SemVer.isPseudoVersion($0) })
        if !known, let fetchError { throw fetchError }
        if !known { throw DownloadError(status: 404, message: "not found: \(module): no fetcher configured") }
        let body = listed.map { $0 + "\n" }.joined()
        return Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-cache")],
                        body: .bytes(Array(body.utf8)))
    }

    /// The fetchers' `latest`; when they fail (not when they say not-found), the highest stored version.
    func latest(module: String) throws(DownloadError) -> Response {
        var lastError = DownloadError(status: 404, message: "not found: \(module)@latest")
        for fetcher in fetchers {
            do {
                let info = try fetcher.resolve(module: module, query: "latest")
                let version = try ArtifactValidator.checkInfo(info, version: nil)
                try ModulePath.check(path: module, version: version)
                return Response(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-cache")], body: .bytes(info))
            } catch let error as PluginError {
                lastError = DownloadError(error, module: module, version: "latest")
                if error.code != .notFound { break }
            } catch let error as ValidationError {
                lastError = DownloadError(status: 502, message: "\(fetcher.name) answered latest with \(error.message)")
                break
            } catch let error as ModuleError {
                lastError = DownloadError(status: 502, message: "\(fetcher.name) answered latest with \(error.message)")
                break
            } catch {
                lastError = DownloadError(status: 502, message: "\(error)")
                break
            }
        }
        if lastError.status != 404, let stored = try? storage.list(module: module),
           let best = Self.highest(stored.filter { ModulePath.canonicalVersion($0) == $0 && !SemVer.isPseudoVersion($0) }),
           case let .success(response) = hit(module: module, version: best, artifact: .info) {
            return response
        }
        throw lastError
    }

    /// Highest release, else highest pre-release (the go command's preference).
    static func highest(_ versions: [String]) -> String? {
        let sorted = SemVer.sorted(versions)
        return sorted.last { SemVer.prerelease($0).isEmpty } ?? sorted.last
    }

    /// Resolves a non-canonical .info query through the fetchers and stores the version it names.
    func resolveQuery(module: String, query: String) throws(DownloadError) -> Response {
        var lastError = DownloadError(status: 404, message: "not found: \(module)@\(query)")
        for fetcher in fetchers {
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
            if case let .success(response) = hit(module: module, version: version, artifact: .info) { return response }
            try stasher.stash(module: module, version: version)
            return try hit(module: module, version: version, artifact: .info).get()
        }
        throw lastError
    }
}
