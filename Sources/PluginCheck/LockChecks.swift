import Basics
import HostSupport
import PluginHost
import Dispatch
import FoundationEssentials
import Glibc
import PluginABI

/// The lock conformance checks (ABI 1.1's lock kind), run at run time against one instance on keys of this run only.
package struct LockChecks {
    package let lock: InstrumentedLock
    package let report: CheckReport
    /// Prefix of every key this run uses, so runs against one shared backend never meet.
    package let prefix: String
    /// Lease of the locks the checks take: long enough that none runs out during a check.
    private let lease: UInt32 = 60_000

    package init(lock: InstrumentedLock, report: CheckReport, runID: String) {
        self.lock = lock
        self.report = report
        prefix = "athens-plugin-check/r\(runID)/"
    }

    private func key(_ name: String) -> [UInt8] { Array((prefix + name).utf8) }

    /// Takes the lock on `name` at once or fails the check.
    private func hold(_ name: String) throws -> UInt64 {
        let result = lock.acquire(key(name), lease: lease, wait: 0)
        guard result.status == ATH_OK else { throw CheckFailure("acquire of a free key returned \(PluginCallError.name(of: result.status)): \(result.message)") }
        guard result.handle != 0 else { throw CheckFailure("acquire returned ATH_OK with handle 0") }
        return result.handle
    }

    private func expect(_ got: (status: ath_status, message: String), _ wanted: ath_status, _ what: String) throws {
        guard got.status == wanted else {
            throw CheckFailure("\(what) returned \(PluginCallError.name(of: got.status)), expected \(PluginCallError.name(of: wanted))\(got.message.isEmpty ? "" : ": " + got.message)")
        }
    }

    /// Runs every check, in order, recording one row each.
    package func run() {
        report.check("lock: acquire, refresh, release round trip") {
            let handle = try hold("round-trip")
            try expect(lock.refresh(handle, lease: lease), ATH_OK, "refresh of a held lock")
            try expect(lock.release(handle), ATH_OK, "release of a held lock")
            let again = try hold("round-trip")
            try expect(lock.release(again), ATH_OK, "release")
            return "handle \(handle) taken, refreshed, released; the key was free again"
        }
        report.check("lock: second acquire with wait 0 is BUSY") {
            let handle = try hold("busy")
            defer { _ = lock.release(handle) }
            let start = MonotonicClock.now()
            let second = lock.acquire(key("busy"), lease: lease, wait: 0)
            if second.status == ATH_OK { _ = lock.release(second.handle) }
            try expect((second.status, second.message), ATH_BUSY, "acquire of a held key with wait 0")
            let seconds = MonotonicClock.now() - start
            guard seconds < 5 else { throw CheckFailure("wait 0 took \(Int(seconds)) s: it must not wait") }
            return "ATH_BUSY after \(Int(seconds * 1000)) ms"
        }
        report.check("lock: a bounded wait succeeds after release") { try waitSucceedsAfterRelease() }
        report.check("lock: refresh of a released handle is NOT_FOUND") {
            let handle = try hold("released")
            try expect(lock.release(handle), ATH_OK, "release")
            try expect(lock.refresh(handle, lease: lease), ATH_NOT_FOUND, "refresh after release")
            return "ATH_NOT_FOUND"
        }
        report.check("lock: concurrent acquirers are mutually exclusive") { try mutualExclusion() }
        report.check("lock: hostile keys and leases are INVALID") { try hostileArguments() }
        // Last: it sums up every failing call the checks above made.
        report.check("lock: error messages are bounded and terminated") {
            if let problems = lock.errors.problems.summary { throw CheckFailure(problems) }
            return "\(lock.errors.auditedCalls) failing calls audited"
        }
    }

    private func waitSucceedsAfterRelease() throws -> String {
        let handle = try hold("wait")
        let waiting = PendingFlag(), done = PendingFlag()
        nonisolated(unsafe) var result: (status: ath_status, handle: UInt64, message: String) = (ATH_INTERNAL, 0, "")
        PosixThread.start(name: "check-waiter") {
            waiting.set()
            result = lock.acquire(key("wait"), lease: lease, wait: 30_000)
            done.set()
        }
        _ = waiting.wait(timeout: 30)
        // The waiter must still be waiting while we hold the lock.
        if done.wait(timeout: 0.3) {
            _ = lock.release(handle)
            if result.status == ATH_OK { _ = lock.release(result.handle) }
            throw CheckFailure("acquire with wait returned \(PluginCallError.name(of: result.status)) while another handle held the key")
        }
        let released = MonotonicClock.now()
        try expect(lock.release(handle), ATH_OK, "release")
        guard done.wait(timeout: 30) else { throw CheckFailure("the waiter did not get the lock within 30 s of its release") }
        try expect((result.status, result.message), ATH_OK, "acquire with wait 30000 after the holder released")
        let seconds = MonotonicClock.now() - released
        try expect(lock.release(result.handle), ATH_OK, "release")
        return "the waiter got the lock \(Int(seconds * 1000)) ms after the release"
    }

    private func mutualExclusion() throws -> String {
        let threads = 8, rounds = 10
        let state = PosixLock()
        nonisolated(unsafe) var inside = 0, overlaps = 0, held = 0
        nonisolated(unsafe) var failures: [String] = []
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            PosixThread.start(name: "check-exclusive") {
                defer { group.leave() }
                for _ in 0..<rounds {
                    let result = lock.acquire(key("exclusive"), lease: lease, wait: 60_000)
                    guard result.status == ATH_OK else {
                        state.withLock { failures.append("acquire returned \(PluginCallError.name(of: result.status)): \(result.message)") }
                        return
                    }
                    state.withLock {
                        inside += 1
                        held += 1
                        if inside > 1 { overlaps += 1 }
                    }
                    usleep(500)
                    state.withLock { inside -= 1 }
                    let release = lock.release(result.handle)
                    if release.status != ATH_OK { state.withLock { failures.append("release returned \(PluginCallError.name(of: release.status))") } }
                }
            }
        }
        guard group.wait(timeout: .now() + 120) == .success else { throw CheckFailure("\(threads) threads did not get through \(rounds) rounds each within 120 s") }
        let (overlapCount, heldCount, failed) = state.withLock { (overlaps, held, failures) }
        if let first = failed.first { throw CheckFailure("\(failed.count) calls failed; first: \(first)") }
        guard overlapCount == 0 else { throw CheckFailure("\(overlapCount) of \(heldCount) holds overlapped another holder of the same key") }
        return "\(threads) threads × \(rounds) holds of one key, 0 overlaps"
    }

    private func hostileArguments() throws -> String {
        var seen: [String] = []
        for (what, bytes) in [("empty key", [UInt8]()), ("key of 1025 bytes", [UInt8](repeating: UInt8(ascii: "k"), count: 1025))] {
            let result = lock.acquire(bytes, lease: lease, wait: 0)
            if result.status == ATH_OK { _ = lock.release(result.handle) }
            try expect((result.status, result.message), ATH_INVALID, "acquire of an \(what)")
            seen.append(what)
        }
        let zeroLease = lock.acquire(key("lease0"), lease: 0, wait: 0)
        if zeroLease.status == ATH_OK { _ = lock.release(zeroLease.handle) }
        try expect((zeroLease.status, zeroLease.message), ATH_INVALID, "acquire with lease 0")
        // The longest key allowed works, and bytes such as "../" and control bytes are just bytes.
        let longest = Array(key("")) + [UInt8](repeating: UInt8(ascii: "/"), count: 1024 - key("").count - 4) + Array("..\u{1}x".utf8)
        let handle = try { () throws -> UInt64 in
            let result = lock.acquire(longest, lease: lease, wait: 0)
            guard result.status == ATH_OK else { throw CheckFailure("acquire of a 1024-byte key with \"../\" and a control byte returned \(PluginCallError.name(of: result.status)): \(result.message)") }
            return result.handle
        }()
        try expect(lock.release(handle), ATH_OK, "release")
        return "ATH_INVALID for " + (seen + ["lease 0"]).joined(separator: ", ") + "; a 1024-byte key works"
    }
}

/// A one-way flag a thread sets and another waits for with a deadline (on the monotonic clock).
private final class PendingFlag: @unchecked Sendable {
    private let condition = PosixCondition()
    private var isSet = false
    func set() { condition.withLock { isSet = true; condition.broadcast() } }
    func wait(timeout: Double) -> Bool {
        let deadline = MonotonicClock.now() + timeout
        condition.lock()
        defer { condition.unlock() }
        while !isSet {
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return false }
            condition.wait(seconds: min(left, 0.05))
        }
        return true
    }
}
