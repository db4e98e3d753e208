import HostSupport
import PluginABI
import Synchronization
import SystemShims

/// What one plugin call may know about the request it serves (ABI 1.1's `ath_call`): its deadline, whether the host
/// still wants the result, and the request id. Plugins with the `*_ctx` twins get it as an `ath_call`; 1.0 plugins
/// get the 1.0 entry, and their sinks refuse more bytes once the context is cancelled.
///
/// One context may serve several calls in turn (a stash's fetch, then its save). `cancel()` may be called from any
/// thread; once cancelled it stays cancelled. Past its deadline, or once the host is shutting down past its
/// timeout (`cancelAll()`), it reads as cancelled too.
package final class CallContext: Sendable {
    /// Absolute CLOCK_MONOTONIC nanoseconds (`MonotonicClock.nanoseconds()`) at which the host gives up; nil = none.
    package let deadline: UInt64?
    /// The request the call serves, as the access log names it; "" when none.
    package let requestID: String
    private let flag = Atomic<Bool>(false)
    /// Set once, at shutdown past the timeout: every context, running or new, reads as cancelled.
    private static let shuttingDown = Atomic<Bool>(false)

    /// A context for `requestID` (default: the request this thread works for) with an absolute `deadline`.
    package init(requestID: String = CrashReporter.currentRequest(), deadline: UInt64? = nil) {
        self.requestID = requestID
        self.deadline = deadline
    }

    /// A context whose deadline is `timeout` seconds from now (nil: none).
    package convenience init(requestID: String = CrashReporter.currentRequest(), timeout: Double?) {
        self.init(requestID: requestID, deadline: timeout.map { MonotonicClock.nanoseconds() + UInt64(max(0, $0) * 1e9) })
    }

    /// The host no longer wants the result (its waiters left, or shutdown): the plugin sees it at its next poll.
    package func cancel() { flag.store(true, ordering: .releasing) }

    /// Whether the call should stop: cancelled, shutting down, or past the deadline.
    package var isCancelled: Bool {
        if flag.load(ordering: .acquiring) || Self.shuttingDown.load(ordering: .acquiring) { return true }
        guard let deadline else { return false }
        return MonotonicClock.nanoseconds() >= deadline
    }

    /// Whether `cancel()` was called (not the deadline or shutdown), for the stash's accounting and tests.
    package var wasCancelled: Bool { flag.load(ordering: .acquiring) }

    /// Shutdown past its timeout: every context reads as cancelled from now on, so running plugin calls that
    /// poll stop and new ones stop at once.
    package static func cancelAll() { shuttingDown.store(true, ordering: .releasing) }

    /// Calls `body` with this context as an `ath_call`, valid during `body` only.
    package func withCCall<R>(_ body: (UnsafePointer<ath_call>) -> R) -> R {
        withExtendedLifetime(self) {
            requestID.withCString { id in
                var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: deadline ?? 0,
                                    request_id: id, cancelled: CallContext.cancelledEntry,
                                    host_data: Unmanaged.passUnretained(self).toOpaque())
                return withUnsafePointer(to: &call) { body($0) }
            }
        }
    }

    /// `ath_call.cancelled`: an atomic load (and a clock read when there is a deadline); any thread.
    private static let cancelledEntry: @convention(c) (UnsafePointer<ath_call>) -> Int32 = { call in
        guard let data = call.pointee.host_data else { return 0 }
        return Unmanaged<CallContext>.fromOpaque(data).takeUnretainedValue().isCancelled ? 1 : 0
    }

    /// An `ath_call` for a call that has no context of its own (storage `open`, on the event loop): the thread's
    /// request id, no deadline, never cancelled. Allocates nothing, since `open` is on the hot path.
    package static func withAmbientCCall<R>(_ body: (UnsafePointer<ath_call>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 161) { buffer in
            let length = athens_crash_request(buffer.baseAddress!, 160)
            buffer[min(length, 160)] = 0
            var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: 0,
                                request_id: UnsafePointer(buffer.baseAddress!), cancelled: nil, host_data: nil)
            return withUnsafePointer(to: &call) { body($0) }
        }
    }
}
