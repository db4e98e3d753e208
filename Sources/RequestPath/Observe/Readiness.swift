import PluginHost

/// What /readyz answers: storage must answer; the cross-process lock, when one is configured, is probed too.
///
/// A lock that does not answer leaves the instance serving (its single-flight falls back to a local one), so by
/// default it only degrades the answer: 200 with a body naming the lock. Were it 503, a Redis outage would take every
/// instance out of an orchestrator's rotation at once although each still serves. `required` (the lock block's
/// `requiredForReadiness`) makes it 503, for deployments that would rather drain than fetch once per instance.
package struct Readiness: Sendable {
    /// The cross-process single-flight's lock, probed with `key`; nil when none is configured.
    package struct LockProbe: Sendable {
        package let lock: any Lock
        package let key: String
        /// A lock that does not answer makes the instance not ready (503) rather than degraded (200).
        package let required: Bool

        package init(lock: any Lock, key: String, required: Bool = false) {
            (self.lock, self.key, self.required) = (lock, key, required)
        }
    }

    let storage: any Storage
    let lock: LockProbe?

    package init(storage: any Storage, lock: LockProbe?) {
        (self.storage, self.lock) = (storage, lock)
    }

    /// The answer to /readyz. Blocking (a storage and a lock call): run it off the event loop.
    func probe() -> Response {
        do {
            _ = try storage.exists(module: "athens.invalid/readyz", version: "v0.0.0")
        } catch {
            return .text(503, "not ready: \(error)")
        }
        guard let lock else { return Self.ready }
        do {
            try Self.acquireAndRelease(lock.lock, key: lock.key)
        } catch {
            if lock.required { return .text(503, "not ready: lock \(lock.lock.name): \(error)") }
            // One line (Response.text): the lock's error text may hold anything.
            return .text(200, "ready (degraded): lock \(lock.lock.name): unavailable (local single-flight): \(error)")
        }
        return Self.ready
    }

    private static let ready = Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: .bytes(Array("ready\n".utf8)))

    /// The lock answers: one acquire with no wait, then release. BUSY (another /readyz holds the key) is an answer too.
    static func acquireAndRelease(_ lock: any Lock, key: String) throws(PluginError) {
        if case let .held(handle) = try lock.acquire(key: key, leaseMilliseconds: 5000, waitMilliseconds: 0) {
            try lock.release(handle)
        }
    }
}
