import Basics
import Digests
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc

/// The cross-process half of a `singleflight` that names a lock: before the fetch, the flight takes a distributed
/// lock on module@version (namespaced by the storage's identity); whoever gets it re-checks storage and fetches
/// only when the version is still missing, refreshing the lease while the fetch runs, and releases after the save.
/// The local `SingleFlightStasher` above keeps one lock request per module@version per process.
///
/// Runs inline, directly over the fetch (`StashChain` puts it there), so the lock wait, like the fetch, occupies a
/// stash pool worker and nothing else.
///
/// Failures of the lock backend (unreachable, timed out, broken) never fail a request: the stash goes on with local
/// single-flight only, logged once per cause until the lock works again, counted in `athens_lock_fallback_total`.
/// A wait that runs out (ATH_BUSY: another process held the lock for all of `waitSeconds`, refreshing its lease, so
/// it is alive and still fetching) re-checks storage, then answers 503: fetching anyway would repeat the fetch the
/// lock exists to prevent, and by default the wait equals the stash timeout, so the caller has had its 504 already.
package final class LockingStasher: StashStage, @unchecked Sendable {
    /// What a `singleflight` wrapper's lock is, once loaded.
    package struct Settings: Sendable {
        package var lock: any Lock
        /// Prefix of every key: names the deployment (see `namespace(storage:configJSON:)`).
        package var namespace: String
        package var leaseSeconds: Double
        package var waitSeconds: Double

        package init(lock: any Lock, namespace: String, leaseSeconds: Double, waitSeconds: Double) {
            (self.lock, self.namespace, self.leaseSeconds, self.waitSeconds) = (lock, namespace, leaseSeconds, waitSeconds)
        }
    }

    private let inner: any StashStage
    private let storage: any Storage
    private let settings: Settings
    private let state = PosixLock()
    /// Causes of fallbacks logged since the lock last worked.
    private var loggedCauses = Set<String>()
    private var counts = (fallbacks: 0, servedByRecheck: 0, busy: 0)

    package init(wrapping inner: any StashStage, storage: any Storage, settings: Settings) {
        self.inner = inner
        self.storage = storage
        self.settings = settings
    }

    /// The key prefix for a storage: two deployments sharing a lock backend but not a storage never block each other,
    /// while every instance of one deployment (same storage plugin and config) shares its keys.
    package static func namespace(storage plugin: String, configJSON: String) -> String {
        let name = String(plugin.split(separator: "/").last ?? "storage").prefix(64)
        let identity = SHA256.hexHash(Array((plugin + "\n" + configJSON).utf8)).prefix(16)
        return "athens/\(name)/\(identity)/"
    }

    /// The lock key of module@version: the module's own text when it fits ATH_LOCK_KEY_MAX, else its digest.
    package func key(module: String, version: String) -> String {
        let plain = settings.namespace + module + "@" + version
        return plain.utf8.count <= 1024 ? plain : settings.namespace + "sha256:" + SHA256.hexHash(Array((module + "@" + version).utf8))
    }

    /// Stashes that went on without the lock because its backend failed.
    package var fallbacks: Int { state.withLock { counts.fallbacks } }
    /// Lock holders that found the version stored by another process, and fetched nothing.
    package var servedByRecheck: Int { state.withLock { counts.servedByRecheck } }
    /// Waits that ran out while another process held the lock.
    package var busy: Int { state.withLock { counts.busy } }

    package func start(module: String, version: String, context: CallContext) -> PendingStash {
        // Stored already (a flight that queued behind one that finished): no lock traffic.
        if (try? storage.exists(module: module, version: version, call: context)) == true { return PendingStash(ended: .success(())) }
        let key = key(module: module, version: version)
        let lock = settings.lock
        let lease = Self.milliseconds(settings.leaseSeconds, minimum: 1)
        let acquisition: LockAcquisition
        do throws(PluginError) {
            acquisition = try lock.acquire(key: key, leaseMilliseconds: lease, waitMilliseconds: Self.milliseconds(settings.waitSeconds, minimum: 0))
        } catch {
            fellBack(error, key: key)
            return inner.start(module: module, version: version, context: context)
        }
        lockWorks()
        guard case let .held(handle) = acquisition else {
            if (try? storage.exists(module: module, version: version, call: context)) == true {
                state.withLock { counts.servedByRecheck += 1 }
                return PendingStash(ended: .success(()))
            }
            state.withLock { counts.busy += 1 }
            Log.error("lock busy for all of \(settings.waitSeconds) s: another process is still fetching [\(module)@\(version)]")
            return PendingStash(ended: .failure(DownloadError(status: 503, message: "service unavailable: \(module)@\(version): another athens instance is still fetching it, retry later")))
        }
        defer {
            do throws(PluginError) {
                try lock.release(handle)
            } catch where error.code == .notFound {
                // Lost earlier (logged by the keeper); the handle is freed all the same.
            } catch {
                Log.error("lock release failed: \(error) [\(key)]")
            }
        }
        // Whoever held the lock before us may have stored the version meanwhile.
        if (try? storage.exists(module: module, version: version, call: context)) == true {
            state.withLock { counts.servedByRecheck += 1 }
            return PendingStash(ended: .success(()))
        }
        let keeper = LeaseKeeper(lock: lock, handle: handle, leaseMilliseconds: lease, key: key)
        defer { keeper.stop() }
        return PendingStash(ended: inner.start(module: module, version: version, context: context).wait()!)
    }

    /// Counts a fallback; logs its cause unless it was logged since the lock last worked.
    private func fellBack(_ error: PluginError, key: String) {
        let cause = error.code.description
        let first = state.withLock {
            counts.fallbacks += 1
            return loggedCauses.insert(cause).inserted
        }
        Metrics.shared.lockFallback(lock: settings.lock.name, cause: cause)
        if first { Log.error("lock backend failed, fetching with local single-flight only (logged once per cause): \(error) [\(key)]") }
    }

    /// Notes that the backend answered; logs the recovery after fallbacks.
    private func lockWorks() {
        let recovered = state.withLock {
            defer { loggedCauses.removeAll() }
            return !loggedCauses.isEmpty
        }
        if recovered { Log.info("lock backend \(settings.lock.name) works again: coordinating fetches across processes") }
    }

    private static func milliseconds(_ seconds: Double, minimum: UInt32) -> UInt32 {
        UInt32(max(Double(minimum), min(seconds * 1000, Double(UInt32.max))).rounded())
    }
}
