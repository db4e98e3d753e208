import Glibc

/// The host's one clock for durations and deadlines: CLOCK_MONOTONIC, which wall-clock changes do not move.
package enum MonotonicClock {
    /// Seconds since an arbitrary start (boot).
    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension MonotonicClock {
    /// Nanoseconds of the same clock, as the plugin ABI's deadlines count them (`ath_call.deadline_ns`).
    package static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
