// Small Glibc helpers: a monotonic clock, deadline waits on a condition, random bytes.
import Basics
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

extension PosixCondition {
    /// Waits (the lock held) until signalled or `deadline`; false when the deadline passed.
    func wait(until deadline: Deadline) -> Bool {
        wait(untilMonotonic: timespec(tv_sec: Int(deadline.milliseconds / 1000), tv_nsec: Int(deadline.milliseconds % 1000) * 1_000_000))
    }
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
