// An access store in memory (the seam AccessJournal implements): counts appends, can be made to fail.
import Foundation
@testable import RequestPath

final class FakeAccessStore: AccessStore, @unchecked Sendable {
    private let lock = NSLock()
    private var newest: [VersionID: Int64] = [:]
    private var appendCount = 0
    private var appended: [[VersionID]] = []
    private var failing = false
    /// Every `append` passes this gate first (close it to hold a flush in its write).
    let appendGate = Gate()

    /// Sets a version's last download (as another instance's journal would).
    func set(_ module: String, _ version: String, _ time: Int64) { lock.withLock { newest[VersionID(module, version)] = time } }
    /// The recorded last download of module@version.
    func time(_ module: String, _ version: String) -> Int64? { lock.withLock { newest[VersionID(module, version)] } }
    /// Calls of `append` so far (what a journal would write).
    var appends: Int { lock.withLock { appendCount } }
    /// The versions of each append, in order.
    var batches: [[VersionID]] { lock.withLock { appended } }
    func fail(_ on: Bool) { lock.withLock { failing = on } }

    func append(_ versions: [VersionID], at time: Int64) throws(AccessStoreError) {
        appendGate.pass()
        lock.lock()
        defer { lock.unlock() }
        if failing { throw AccessStoreError(description: "scripted failure") }
        guard !versions.isEmpty else { return }
        appendCount += 1
        appended.append(versions)
        for id in versions { newest[id] = max(newest[id] ?? .min, time) }
    }

    func lastAccesses() throws(AccessStoreError) -> [VersionID: Int64] {
        lock.lock()
        defer { lock.unlock() }
        if failing { throw AccessStoreError(description: "scripted failure") }
        return newest
    }

    func compact(keeping stored: Set<VersionID>) throws(AccessStoreError) {
        lock.withLock { newest = newest.filter { stored.contains($0.key) } }
    }
}
