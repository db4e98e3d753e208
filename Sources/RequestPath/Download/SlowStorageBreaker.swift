import Basics
import HostSupport
import FoundationEssentials
import Glibc

/// Remembers that storage was slow: after one open slower than `threshold`, the download protocol opens files
/// from the pool instead of the event loop for `penalty` seconds, so one stalled storage does not hold up every
/// connection of a loop again and again. Thread-safe.
package final class SlowStorageBreaker: @unchecked Sendable {
    /// An open slower than this (seconds) trips the breaker.
    package let threshold: Double
    /// How long (seconds) a trip sends opens off the loop.
    package let penalty: Double
    private let lock = PosixLock()
    private var trippedUntil = 0.0

    package init(threshold: Double = 0.05, penalty: Double = 30) {
        self.threshold = threshold
        self.penalty = penalty
    }

    /// Whether opens should run off the event loop now.
    package var isTripped: Bool { lock.withLock { trippedUntil > MonotonicClock.now() } }

    /// Runs `open` (a storage call) and times it; a slow one trips the breaker.
    package func timed<T>(storage: String, _ open: () -> T) -> T {
        let start = MonotonicClock.now()
        let result = open()
        let elapsed = MonotonicClock.now() - start
        if elapsed > threshold {
            lock.withLock { trippedUntil = MonotonicClock.now() + penalty }
            Log.info("storage is slow; opening files off the event loop for a while", [("seconds", String(elapsed)), ("storage", storage)])
        }
        return result
    }
}
