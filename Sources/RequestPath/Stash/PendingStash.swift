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

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
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
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// A stash that has already ended (it ran inline, or was refused).
    package convenience init(ended outcome: Outcome) {
        self.init()
        self.outcome = outcome
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Records the outcome, wakes the waiters, then runs the observers on this thread.
    package func end(_ outcome: Outcome) {
        pthread_mutex_lock(mutex)
        precondition(self.outcome == nil, "a stash ended twice")
        self.outcome = outcome
        let observers = self.observers
        self.observers = []
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        for observer in observers { observer(outcome) }
    }

    /// Calls `observer` with the outcome when the stash ends (at once when it has).
    package func whenEnded(_ observer: @escaping @Sendable (Outcome) -> Void) {
        pthread_mutex_lock(mutex)
        guard let outcome else {
            observers.append(observer)
            pthread_mutex_unlock(mutex)
            return
        }
        pthread_mutex_unlock(mutex)
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
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        defer { if let token { client?.stopObserving(token) } }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while outcome == nil {
            if let client, token == nil || client.hasHungUp { return .clientLeft }
            if timeout == nil {
                pthread_cond_wait(condition, mutex)
            } else if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT {
                break
            }
        }
        return outcome.map { .ended($0) } ?? .timedOut
    }

    /// A caller starts waiting for the outcome; `keep`: it wants the stash to complete even if it stops waiting
    /// (the async modes), so it is never cancelled for want of waiters.
    package func attach(keep: Bool) {
        pthread_mutex_lock(mutex)
        waiters += 1
        attachments += 1
        kept = kept || keep
        pthread_mutex_unlock(mutex)
    }

    /// A caller stopped waiting (its deadline passed, or its client hung up). When it was the last and nobody keeps the stash, the stash is
    /// cancelled after `grace` seconds unless a caller attached meanwhile (a retry that joins the flight) or it ended.
    package func detach(grace: Double) {
        pthread_mutex_lock(mutex)
        waiters -= 1
        let abandoned = waiters == 0 && !kept && outcome == nil
        let generation = attachments
        pthread_mutex_unlock(mutex)
        guard abandoned else { return }
        let cancelIfStillAbandoned: @Sendable () -> Void = { [self] in
            pthread_mutex_lock(mutex)
            let still = waiters == 0 && attachments == generation && outcome == nil
            pthread_mutex_unlock(mutex)
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
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return waiters
    }

    /// Whether the stash has ended (for tests and gauges).
    package var hasEnded: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return outcome != nil
    }
}
