import HostSupport
import PluginHost
import GoModule

/// What a miss gets in the download modes that do not wait for a fetch (DownloadPolicy.swift's `DownloadMode`):
/// `async` and `none` answer 404, the redirect modes 302 to `downloadURL`; the async ones stash in the background.
extension DownloadProtocol {
    /// The answer of the modes that do not wait for a fetch: async, redirect, async_redirect, none.
    func missWithoutFetch(module: String, version: String, artifact: Artifact, route: Route) -> Response {
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

    /// Stashes on the background pool; a full pool skips it (a later request asks again).
    private func stashInBackground(module: String, version: String) {
        let stasher = self.stasher
        let request = CrashReporter.currentRequest()
        background.submit {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            do {
                // Kept: nobody waits for a background stash, yet later requests want it stored.
                try stasher.stash(module: module, version: version, keep: true)
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
}
