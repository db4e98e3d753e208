// PosixCondition: a pthread condition variable with its own mutex (what NSCondition was, without
// libFoundation.so). Waits with a timeout measure it on CLOCK_MONOTONIC, so a wall-clock step neither
// shortens nor stretches them.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A lock plus a condition: `lock()`, then `wait()` until the state changes, `signal()`/`broadcast()` after
/// changing it, `unlock()`. Thread-safe, shareable.
package final class PosixCondition: @unchecked Sendable {
    // @unchecked: the mutex and the condition are only touched through pthread calls.
    private let lockValue = PosixLock()
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    package func lock() { lockValue.lock() }

    package func unlock() { lockValue.unlock() }

    /// Runs `body` holding the lock.
    @inline(__always)
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lockValue.withLock(body)
    }

    /// Releases the lock until signalled (or woken spuriously: callers re-check their predicate), then retakes it.
    package func wait() { pthread_cond_wait(condition, lockValue.mutex) }

    /// As `wait()`, for at most `seconds`; false when the time ran out.
    @discardableResult
    package func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let span = max(0, seconds)
        let whole = Int(min(span, 1e9))
        return wait(untilMonotonic: timespec(tv_sec: now.tv_sec + whole, tv_nsec: now.tv_nsec + Int((span - Double(whole)) * 1e9)))
    }

    /// As `wait()`, until `deadline` on CLOCK_MONOTONIC (tv_nsec may exceed a second); false when it passed.
    package func wait(untilMonotonic deadline: timespec) -> Bool {
        var deadline = deadline
        deadline.tv_sec += deadline.tv_nsec / 1_000_000_000
        deadline.tv_nsec %= 1_000_000_000
        return pthread_cond_timedwait(condition, lockValue.mutex, &deadline) != ETIMEDOUT
    }

    /// Wakes one waiter.
    package func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter.
    package func broadcast() { pthread_cond_broadcast(condition) }
}
