import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc

/// Keeps one held lock's lease alive while its fetch runs: a thread that refreshes it every third of the lease, so
/// two refreshes may fail (a slow backend) before the lease can run out. `stop()` ends it before the lock is released
/// (the ABI forbids a refresh concurrent with the release of the same handle).
///
/// A lock lost meanwhile (`refresh` answers NOT_FOUND, or fails until a whole lease has passed since the last
/// success) does not stop the fetch: storage saves atomically and a stored version is a success, so the cost is at
/// most one more upstream fetch elsewhere, while stopping would turn every lock-backend outage into failed
/// requests. The loss is logged and counted once (`athens_lock_lease_lost_total{lock}`); after NOT_FOUND the
/// keeper stops refreshing (there is nothing left to extend).
///
/// One thread per held lock: held locks are bounded by the stash pools' workers, and a slow refresh of one lock
/// cannot delay another's. Waits are on the host's monotonic clock (through `PendingStash`).
package final class LeaseKeeper: @unchecked Sendable {
    private let stopSignal = PendingStash()
    private let stopped = PendingStash()

    /// Starts refreshing `handle` of `lock` (named `key` in logs) every `leaseMilliseconds / 3`.
    package init(lock: any Lock, handle: UInt64, leaseMilliseconds: UInt32, key: String) {
        let interval = Double(max(leaseMilliseconds / 3, 1)) / 1000
        let lease = Double(leaseMilliseconds) / 1000
        let (stopSignal, stopped) = (self.stopSignal, self.stopped)
        PosixThread.start(name: "lease-keeper") {
            var lastRenewed = MonotonicClock.now(), failing = false, lost = false
            func lose(_ why: String) {
                guard !lost else { return }
                lost = true
                Metrics.shared.lockLeaseLost(lock: lock.name)
                Log.error("lock lost while fetching (\(why)): the fetch goes on; another process may fetch too [\(key)]")
            }
            while stopSignal.wait(timeout: interval) == nil {
                do throws(PluginError) {
                    try lock.refresh(handle, leaseMilliseconds: leaseMilliseconds)
                    lastRenewed = MonotonicClock.now()
                    failing = false
                } catch where error.code == .notFound {
                    lose("\(error)")
                    break
                } catch {
                    if !failing { Log.error("lock lease refresh failed: \(error) [\(key)]") }
                    failing = true
                    if MonotonicClock.now() - lastRenewed >= lease { lose("no refresh for the whole \(lease) s lease: \(error)") }
                }
            }
            _ = stopSignal.wait()
            stopped.end(.success(()))
        }
    }

    /// Stops refreshing; returns once no refresh is running.
    package func stop() {
        stopSignal.end(.success(()))
        _ = stopped.wait()
    }
}
