import PluginHost

/// The caller's side of the stash chain: starts (or joins) the stash at the outermost stage and waits for it at most
/// `timeout` seconds. On timeout the caller gets 504 and the stash goes on (and is stored if it completes): a retry
/// finds the flight still registered and waits on it again. A caller whose client hangs up leaves as at a timeout.
/// A stash nobody waits for any more is cancelled
/// (`CallContext.cancel`, which a 1.1 plugin polls and a 1.0 fetcher meets at its next sink write) once
/// `abandonGrace` seconds pass with no caller joining, unless a caller keeps it (the async modes).
package final class DeadlineStasher: Stasher {
    package let stage: any StashStage
    package let timeout: Double
    /// Seconds a stash whose every waiter timed out goes on for a retry to join before it is cancelled.
    package let abandonGrace: Double
    /// Seconds a fetch (and its save) may run in all, whoever waits: the `deadline_ns` plugins see.
    package let fetchTimeout: Double

    package init(waitingFor stage: any StashStage, timeout: Double, abandonGrace: Double, fetchTimeout: Double) {
        self.stage = stage
        self.timeout = timeout
        self.abandonGrace = abandonGrace
        self.fetchTimeout = fetchTimeout
    }

    package func stash(module: String, version: String) throws(DownloadError) {
        try stash(module: module, version: version, keep: false)
    }

    package func stash(module: String, version: String, keep: Bool) throws(DownloadError) {
        // The thread's request id goes with the fetch (plugins' log lines name it), and the fetch's deadline.
        let pending = stage.start(module: module, version: version, context: CallContext(timeout: fetchTimeout))
        pending.attach(keep: keep)
        // A client that hangs up stops its wait at once, as a timeout would (ClientHangUp.swift).
        let end = pending.wait(timeout: timeout, client: ClientHangUp.current)
        pending.detach(grace: abandonGrace)
        let outcome: PendingStash.Outcome
        switch end {
        case let .ended(ended):
            outcome = ended
        case .timedOut:
            throw DownloadError(status: 504, message: "\(module)@\(version): fetching took longer than \(Int(timeout)) s; it goes on in the background, retry later")
        case .clientLeft:
            // Nobody reads this answer (the connection is gone); the access log records the request as not completed.
            throw DownloadError(status: 499, message: "\(module)@\(version): the client closed the connection while waiting")
        }
        try outcome.get()
    }
}
