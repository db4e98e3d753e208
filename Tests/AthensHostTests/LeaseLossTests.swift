// A held lock lost while its fetch runs (LeaseKeeper, PLUGINS.md §13.5): the fetch finishes, its waiters are served,
// the loss is counted once in athens_lock_lease_lost_total{lock}. Over fakes; the 0.3 s lease is what makes the keeper
// refresh while the fetch is held at its gate, not a bound on speed.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// Serialized: in one CI run the last test's stash reached its lease keeper only 29 s after it started, just as a
/// sibling's lease had been lost (cause not found; see the seventh session's note). One at a time, they cannot meet.
@Suite("stash: a lock lost during its fetch", .blockingBodies, .serialized)
struct LeaseLossTests {
    static func lost(_ lock: String) -> Double? {
        metric(Metrics.shared.render(), "athens_lock_lease_lost_total", labels: "lock=\"\(lock)\"")
    }

    @Test("refresh answers NOT_FOUND, or fails for a whole lease: the fetch completes, all waiters get 200, counted once",
          arguments: [PluginError.Code.notFound, .unavailable])
    func fetchFinishes(code: PluginError.Code) throws {
        let name = "fake-lock-lost-\(code)"
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock(name: name))
        fetcher.add("example.com/a", "v1.0.0")
        let process = LockedStashTests.Process(storage: storage, fetcher: fetcher, lock: lock, lease: 0.3)
        lock.fail("refresh", with: code)
        fetcher.fetchGate.close()
        let statuses = LockedStashTests.concurrently(3, { _ in process.stash() }) {
            #expect(waitUntil { fetcher.fetchGate.held == 1 })
            #expect(waitUntil(timeout: 30) { Self.lost(name) == 1 }, "the loss was not counted")
            let refreshes = lock.calls("refresh")
            // Past another few refresh intervals: still counted once; a lock answered NOT_FOUND is refreshed no more.
            #expect(waitUntil(timeout: 1) { lock.calls("refresh") >= refreshes + 3 } == (code != .notFound))
            #expect(Self.lost(name) == 1)
            fetcher.fetchGate.openGate()
        }
        let all = try #require(statuses)
        #expect(all == [200, 200, 200])
        #expect(fetcher.calls("fetch") == 1)
        #expect(storage.stored("example.com/a", "v1.0.0") != nil)
        #expect(lock.calls("release") == 1)
        #expect(Self.lost(name) == 1)
    }

    @Test("refreshes that fail briefly and then succeed lose nothing")
    func briefFailureIsNotALoss() throws {
        let name = "fake-lock-flaky"
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock(name: name))
        fetcher.add("example.com/a", "v1.0.0")
        // A long lease: one failed refresh (at a third of it) leaves two thirds before it could run out.
        let process = LockedStashTests.Process(storage: storage, fetcher: fetcher, lock: lock, lease: 3)
        lock.fail("refresh", with: .unavailable)
        fetcher.fetchGate.close()
        let statuses = LockedStashTests.concurrently(1, { _ in process.stash() }) {
            #expect(waitUntil(timeout: 30) { lock.calls("refresh") >= 1 })
            lock.fail("refresh", with: nil)
            let failed = lock.calls("refresh")
            #expect(waitUntil(timeout: 30) { lock.calls("refresh") > failed })
            fetcher.fetchGate.openGate()
        }
        #expect(statuses == [200])
        #expect(Self.lost(name) == nil)
    }
}
