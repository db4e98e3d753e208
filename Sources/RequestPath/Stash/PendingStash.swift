import Basics
import Dispatch
import HostSupport
import Glibc
import PluginHost

/// The outcome of one stash once it ends: ended exactly once, by whoever runs the stash; waited on by any number
/// of callers, each with its own deadline (a caller that gives up leaves the stash running); observed by the stage
/// above (a flight drops its key there, then ends its own pending stash, so its callers wake after the key is gone).
///
/// Waits are on the host's one clock (CLOCK_MONOTONIC), so a wall-clock change neither cuts nor stretches them.
package final class PendingStash: @unchecked Sendable {
    package typealias Outcome = Result<Void, DownloadError>

    private let condition = PosixCondition()
    private var outcome: Outcome?
    private var observers: [@Sendable (Outcome) -> Void] = []
    /// Callers waiting on this stash now (`attach` … `detach`), and whether one of them wants it kept regardless.
    private var waiters = 0
    private var kept = false
    /// Bumped at every attach, so a cancellation scheduled at a detach knows whether anyone came meanwhile.
    private var attachments = 0

    /// What the stash's plugin calls are made with; cancelled when its last waiter has gone and nobody keeps it.
    package let context: CallContext

    /// A stash still running, whose plugin calls use `context`.
    package init(context: CallContext = CallContext(requestID: "")) {
        self.context = context
    }

    /// A stash that has already ended (it ran inline, or was refused).
    package convenience init(ended outcome: Outcome) {
        self.init()
        self.outcome = outcome
    }

    /// Records the outcome, wakes the waiters, then runs the observers on this thread.
    package func end(_ outcome: Outcome) {
        condition.lock()
        precondition(self.outcome == nil, "a stash ended twice")
        self.outcome = outcome
        let observers = self.observers
        self.observers = []
        condition.broadcast()
        condition.unlock()
        for observer in observers { observer(outcome) }
    }

    /// Calls `observer` with the outcome when the stash ends (at once when it has).
    package func whenEnded(_ observer: @escaping @Sendable (Outcome) -> Void) {
        condition.lock()
        guard let outcome else {
            observers.append(observer)
            condition.unlock()
            return
        }
        condition.unlock()
        observer(outcome)
    }

    /// The outcome, waiting at most `timeout` seconds for it (nil: forever); nil when the time ran out first.
    package func wait(timeout: Double? = nil) -> Outcome? {
        if case let .ended(outcome) = wait(timeout: timeout, client: nil) { return outcome }
        return nil
    }

    /// How a caller's wait ended.
    package enum WaitEnd {
        case ended(Outcome)
        case timedOut
        /// The client the caller waits for hung up (`ClientHangUp`).
        case clientLeft
    }

    /// The outcome, waiting at most `timeout` seconds (nil: forever), or until `client` hangs up.
    package func wait(timeout: Double?, client: ClientHangUp?) -> WaitEnd {
        var deadline = timespec()
        if let timeout {
            let at = MonotonicClock.now() + max(0, timeout)
            deadline.tv_sec = Int(at)
            deadline.tv_nsec = min(999_999_999, Int((at - Double(deadline.tv_sec)) * 1e9))
        }
        // The hang-up wakes this wait: under the mutex, so it cannot fall between the check below and the sleep.
        let token = client?.observe { [self] in
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        defer { if let token { client?.stopObserving(token) } }
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil {
            if let client, token == nil || client.hasHungUp { return .clientLeft }
            if timeout == nil {
                condition.wait()
            } else if !condition.wait(untilMonotonic: deadline) {
                break
            }
        }
        return outcome.map { .ended($0) } ?? .timedOut
    }

    /// A caller starts waiting for the outcome; `keep`: it wants the stash to complete even if it stops waiting
    /// (the async modes), so it is never cancelled for want of waiters.
    package func attach(keep: Bool) {
        condition.lock()
        waiters += 1
        attachments += 1
        kept = kept || keep
        condition.unlock()
    }

    /// A caller stopped waiting (its deadline passed, or its client hung up). When it was the last and nobody keeps the stash, the stash is
    /// cancelled after `grace` seconds unless a caller attached meanwhile (a retry that joins the flight) or it ended.
    package func detach(grace: Double) {
        condition.lock()
        waiters -= 1
        let abandoned = waiters == 0 && !kept && outcome == nil
        let generation = attachments
        condition.unlock()
        guard abandoned else { return }
        let cancelIfStillAbandoned: @Sendable () -> Void = { [self] in
            condition.lock()
            let still = waiters == 0 && attachments == generation && outcome == nil
            condition.unlock()
            if still { context.cancel() }
        }
        if grace <= 0 {
            cancelIfStillAbandoned()
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + grace, execute: cancelIfStillAbandoned)
        }
    }

    /// Callers waiting on this stash now (for tests).
    package var waiterCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiters
    }

    /// Whether the stash has ended (for tests and gauges).
    package var hasEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return outcome != nil
    }
}
