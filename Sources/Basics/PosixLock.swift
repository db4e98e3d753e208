// PosixLock: a pthread mutex as a class, for state guarded by lock()/unlock() pairs that cannot be one closure
// (a wait on a `PosixCondition`, a lock held across a `defer`). New state guarded by a closure: use
// Synchronization's `Mutex`. This exists because NSLock lives in libFoundation.so, which the athens process
// must not load (it pulls ICU in; issue 15 item 5).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A non-recursive mutual-exclusion lock; thread-safe, shareable.
package final class PosixLock: @unchecked Sendable {
    // @unchecked: the mutex is only touched through pthread calls. Heap-allocated so its address never moves.
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }

    package func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` holding the lock.
    @inline(__always)
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
