import HostSupport
import Glibc

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

    /// A stash still running.
    package init() {
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
        var deadline = timespec()
        if let timeout {
            let at = MonotonicClock.now() + max(0, timeout)
            deadline.tv_sec = Int(at)
            deadline.tv_nsec = min(999_999_999, Int((at - Double(deadline.tv_sec)) * 1e9))
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while outcome == nil {
            if timeout == nil {
                pthread_cond_wait(condition, mutex)
            } else if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT {
                break
            }
        }
        return outcome
    }

    /// Whether the stash has ended (for tests and gauges).
    package var hasEnded: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return outcome != nil
    }
}
