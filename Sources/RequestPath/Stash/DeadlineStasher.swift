/// The caller's side of the stash chain: starts (or joins) the stash at the outermost stage and waits for it at most
/// `timeout` seconds. Plugin calls cannot be interrupted, so on timeout the stash goes on (and is stored if it
/// completes) while the caller gets 504; a retry finds the flight still registered and waits on it again.
package final class DeadlineStasher: Stasher {
    package let stage: any StashStage
    package let timeout: Double

    package init(waitingFor stage: any StashStage, timeout: Double) {
        self.stage = stage
        self.timeout = timeout
    }

    package func stash(module: String, version: String) throws(DownloadError) {
        guard let outcome = stage.start(module: module, version: version).wait(timeout: timeout) else {
            throw DownloadError(status: 504, message: "\(module)@\(version): fetching took longer than \(Int(timeout)) s; it goes on in the background, retry later")
        }
        try outcome.get()
    }
}
