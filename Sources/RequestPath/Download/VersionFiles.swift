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
    func hit(module: String, version: String, artifact: Artifact, onLoop: Bool = false) -> Result<Response, DownloadError> {
        let key = DownloadRequest.cacheKey(module: module, version: version, artifact: artifact)
        if let bytes = cache.get(key) {
            return .success(Response(status: 200, headers: Self.headers(for: artifact), body: .bytes(bytes)))
        }
        do {
            let blob = try storage.open(module: module, version: version, artifact: artifact)
            if blob.size <= UInt64(cache.maxFileBytes) {
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
