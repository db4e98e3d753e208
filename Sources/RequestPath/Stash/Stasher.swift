/// Puts a module version into storage, blocking until it is there, failed, or the caller's deadline passed.
/// This is what the download protocol calls (on a download or background pool thread); behind it,
/// `StashChain` composes the manifest's wrappers as `StashStage`s.
package protocol Stasher: Sendable {
    /// Makes module@version (canonical) complete in storage, or throws; never leaves part of it there.
    func stash(module: String, version: String) throws(DownloadError)
    /// `stash`, saying whether the result is wanted when every caller waiting for it has given up: `keep` (the
    /// async modes, which stash for later requests) lets the fetch run to its end; otherwise it may be cancelled.
    func stash(module: String, version: String, keep: Bool) throws(DownloadError)
}

extension Stasher {
    package func stash(module: String, version: String, keep: Bool) throws(DownloadError) {
        try stash(module: module, version: version)
    }
}
