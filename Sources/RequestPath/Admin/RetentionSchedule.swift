import Basics
import Dispatch
import FoundationEssentials
import Glibc
import HostSupport
import Synchronization

/// Runs retention every `intervalHours` (first one interval after start), with the manifest's `dryRun`; each
/// run logs its plan (a line per version) and its result. Times are MonotonicClock seconds, passed in, so
/// tests drive `runIfDue` without a thread or a sleep; `start()` is the production driver.
package final class RetentionSchedule: Sendable {
    private let retention: Retention
    private let interval: Double
    private let next: Mutex<Double>
    private let stopped = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)

    package init(retention: Retention, intervalSeconds: Double, startedAt: Double = MonotonicClock.now()) {
        self.retention = retention
        interval = intervalSeconds
        next = Mutex(startedAt + intervalSeconds)
    }

    /// Runs retention when `now` has reached the next due time; returns the report of a run, nil otherwise
    /// (not due, or the run failed: that is logged and the next one is an interval later).
    @discardableResult
    package func runIfDue(now: Double) -> Retention.Report? {
        let due = next.withLock { next in
            guard now >= next else { return false }
            // From now, not from the missed time: a long pause does not make runs pile up.
            next = now + interval
            return true
        }
        guard due else { return nil }
        let dryRun = retention.settings.dryRun
        do throws(AdminError) {
            let report = try retention.run(dryRun: dryRun)
            for eviction in report.plan.evictions {
                Log.info("retention plan", [("module", eviction.id.module), ("version", eviction.id.version), ("reason", eviction.reason.rawValue),
                                            ("last_access", String(eviction.lastAccess)), ("bytes", eviction.bytes.map { String($0) } ?? "-")])
            }
            Log.info("retention", [("dry_run", String(dryRun)), ("stored", String(report.stored)), ("first_seen", String(report.firstSeen)),
                                   ("protected", String(report.plan.protectedCount)), ("evictions", String(report.plan.evictions.count)),
                                   ("bytes", String(report.evictedBytes)), ("deleted", String(report.deleted.count)),
                                   ("failed", String(report.failed.count)), ("over_budget", String(report.plan.overBudget))])
            return report
        } catch {
            Log.error("retention run failed", [("status", String(error.status)), ("cause", error.message)])
            return nil
        }
    }

    /// Checks once a minute (or each interval, when shorter) on a thread of its own until `stop()`.
    package func start() {
        let step = min(60, interval)
        PosixThread.start(name: "retention") { [self] in
            while !stopped.load(ordering: .acquiring) {
                _ = wake.wait(timeout: .now() + step)
                if stopped.load(ordering: .acquiring) { break }
                runIfDue(now: MonotonicClock.now())
            }
        }
    }

    package func stop() {
        stopped.store(true, ordering: .releasing)
        wake.signal()
    }
}
