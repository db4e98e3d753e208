// Small Glibc helpers: a monotonic clock, a mutex with a condition variable, random bytes.
#if canImport(Glibc)
import Glibc
#endif

/// Milliseconds on the monotonic clock (unaffected by wall-clock changes).
func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// A point on the monotonic clock by which a call must finish.
public struct Deadline: Sendable, Comparable {
    public let milliseconds: Int64
    public init(afterMilliseconds delay: Int) { milliseconds = monotonicMilliseconds() + Int64(max(0, delay)) }
    /// Milliseconds left, 0 once passed.
    public var remaining: Int { Int(max(0, milliseconds - monotonicMilliseconds())) }
    public var hasPassed: Bool { monotonicMilliseconds() >= milliseconds }
    public static func < (a: Deadline, b: Deadline) -> Bool { a.milliseconds < b.milliseconds }
}

/// A pthread mutex and condition variable (monotonic clock for timed waits). Glibc only, so the plugin links no
/// Foundation.
final class Monitor: @unchecked Sendable {
    // Heap-allocated: pthread objects must not move, and a Swift stored property's address is not stable.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (the lock held) until signalled or `deadline`; false when the deadline passed.
    func wait(until deadline: Deadline) -> Bool {
        var time = timespec(tv_sec: Int(deadline.milliseconds / 1000), tv_nsec: Int(deadline.milliseconds % 1000) * 1_000_000)
        return pthread_cond_timedwait(condition, mutex, &time) != ETIMEDOUT
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// `count` bytes from the kernel's CSPRNG (/dev/urandom: never blocks once the system has booted; Glibc's
/// Swift module does not export getrandom).
func randomBytes(_ count: Int) throws(RedisError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .unavailable("cannot open /dev/urandom: \(errorText(errno))") }
    defer { close(fd) }
    var filled = 0
    while filled < count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, count - filled) }
        if n > 0 { filled += n } else if n < 0 && errno == EINTR { continue } else { throw .unavailable("reading /dev/urandom failed") }
    }
    return bytes
}
