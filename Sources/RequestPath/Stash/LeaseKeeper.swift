import HostSupport
import PluginHost
import Foundation

/// Keeps one held lock's lease alive while its fetch runs: a thread that refreshes it every third of the lease, so
/// two refreshes may fail (a slow backend) before the lease can run out. `stop()` ends it before the lock is released
/// (the ABI forbids a refresh concurrent with the release of the same handle).
///
/// One thread per held lock: held locks are bounded by the stash pools' workers, and a slow refresh of one lock
/// cannot delay another's. Waits are on the host's monotonic clock (through `PendingStash`).
package final class LeaseKeeper: @unchecked Sendable {
    private let stopSignal = PendingStash()
    private let stopped = PendingStash()

    /// Starts refreshing `handle` of `lock` (named `key` in logs) every `leaseMilliseconds / 3`.
    package init(lock: any Lock, handle: UInt64, leaseMilliseconds: UInt32, key: String) {
        let interval = Double(max(leaseMilliseconds / 3, 1)) / 1000
        let (stopSignal, stopped) = (self.stopSignal, self.stopped)
        let thread = Thread {
            var lost = false
            while stopSignal.wait(timeout: interval) == nil {
                do throws(PluginError) {
                    try lock.refresh(handle, leaseMilliseconds: leaseMilliseconds)
                } catch where error.code == .notFound {
                    // The fetch goes on: a second fetcher elsewhere costs one more upstream request, never a bad
                    // file (storage saves atomically and a stored version is a success).
                    if !lost { Log.error("lock lost while fetching: another process may fetch too: \(error) [\(key)]") }
                    lost = true
                } catch {
                    Log.error("lock lease refresh failed: \(error) [\(key)]")
                }
            }
            stopped.end(.success(()))
        }
        thread.name = "lease-keeper"
        thread.start()
    }

    /// Stops refreshing; returns once no refresh is running.
    package func stop() {
        stopSignal.end(.success(()))
        _ = stopped.wait()
    }
}
