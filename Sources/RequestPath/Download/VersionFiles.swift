import HostSupport
import PluginHost
import GoModule

/// A version's three files (.info, .mod, .zip) as storage holds them: read, cached in memory when small,
/// fetched and stored on a sync miss. DownloadProtocol.swift decides between these.
extension DownloadProtocol {
    /// The stored file as a response, or the failure (404 when not stored). Small files are served from
    /// memory after their first read. `onLoop`: called on the event loop, where a stream blob's `read` must not
    /// run (it may block for long): a small stream, which must be read whole before its status is known, then
    /// fails with `readOffTheLoop` and the caller asks again from the pool.
    /// A stored file served counts as a download of its version for retention (`accesses`).
    func hit(module: String, version: String, artifact: Artifact, onLoop: Bool = false) -> Result<Response, DownloadError> {
        let found = stored(module: module, version: version, artifact: artifact, onLoop: onLoop)
        if case .success = found { accesses?.note(module: module, version: version) }
        return found
    }

    private func stored(module: String, version: String, artifact: Artifact, onLoop: Bool) -> Result<Response, DownloadError> {
        let redirects = policy.storageRedirects.contains(artifact)
        if redirects, let target = storage.url(module: module, version: version, artifact: artifact) {
            return .success(Self.storageRedirect(target))
        }
        let key = DownloadRequest.cacheKey(module: module, version: version, artifact: artifact)
        if !redirects, let entry = cache.get(key) {
            return .success(Response(status: 200, headers: Self.headers(for: artifact), body: entry.body))
        }
        do {
            let blob = try storage.open(module: module, version: version, artifact: artifact)
            // A file meant to be redirected is not cached: a cached copy would answer the next request before
            // `url` is asked again (a storage that failed once would never redirect it).
            if !redirects, blob.size <= UInt64(cache.maxFileBytes), case .file = blob.shape, blob.size >= UInt64(ArtifactCache.fileEntryMinBytes) {
                // Kept open instead of read into memory: later hits sendfile it, and the bytes stay in the page cache.
                cache.put(key, file: blob)
                return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .blob(blob)))
            }
            if !redirects, blob.size <= UInt64(cache.maxFileBytes) {
                if onLoop, case .stream = blob.shape { return .failure(Self.readOffTheLoop) }
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

    /// `hit`'s answer on the event loop for a small stream blob: not an HTTP answer, a request to ask again off the loop.
    static let readOffTheLoop = DownloadError(status: 0, message: "a small stream blob is read whole off the event loop")

    /// Fetches and stores the version, then serves the file from storage (blocking: on the pool).
    func fetchAndServe(module: String, version: String, artifact: Artifact) throws(DownloadError) -> Response {
        try stasher.stash(module: module, version: version)
        var response = try hit(module: module, version: version, artifact: artifact).get()
        response.cacheResult = "miss"
        return response
    }

    /// `302` to a storage URL. Shared caches must not keep it (the URL is a credential for the object); the
    /// client may reuse it for half its validity, so a reused redirect still leaves time to start the GET.
    static func storageRedirect(_ target: (url: String, validSeconds: Int)) -> Response {
        Response(status: 302, headers: [("Location", target.url), ("Cache-Control", "private, max-age=\(target.validSeconds / 2)")])
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
}
