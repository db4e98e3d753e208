// Cross-process single-flight over fakes: two chains sharing one FakeLock and one FakeStorage play two athens
// processes on one storage. Synchronised on conditions (gates, fetch and waiter counts); short leases and waits are
// what a test is about (a dead holder, a wait that runs out), never a bound on speed.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("stash: singleflight with a lock coordinates processes (fakes)", .blockingBodies)
struct LockedStashTests {
    /// One "process": its own chain (singleflight over a pool) on the shared storage, fetcher and lock.
    final class Process: @unchecked Sendable {
        let chain: StashChain
        var locking: LockingStasher { chain.locking! }

        init(storage: FakeStorage, fetcher: FakeFetcher, lock: FakeLock, lease: Double = 30, wait: Double = 30, timeout: Double = 60) {
            let fetching = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: NSTemporaryDirectory())
            let settings = LockingStasher.Settings(lock: lock, namespace: LockingStasher.namespace(storage: "FakeStorage", configJSON: "{}"),
                                                   leaseSeconds: lease, waitSeconds: wait)
            chain = StashChain(wrappers: [.singleflight, .pool(workers: 4)], timeout: timeout, fetching: fetching, callers: 8, queue: 256,
                               lock: (settings, storage))
        }

        deinit { chain.retire() }

        func stash(_ module: String = "example.com/a") -> Int {
            do throws(DownloadError) {
                try chain.stasher.stash(module: module, version: "v1.0.0")
                return 200
            } catch {
                return error.status
            }
        }
    }

    /// Runs `count` calls at once, each on its own thread; their statuses (nil: not all ended within a minute).
    static func concurrently(_ count: Int, _ call: @escaping @Sendable (Int) -> Int, whileRunning: () -> Void = {}) -> [Int]? {
        let lock = NSLock(), group = DispatchGroup()
        nonisolated(unsafe) var statuses: [Int] = []
        for index in 0..<count {
            group.enter()
            Thread {
                let status = call(index)
                lock.withLock { statuses.append(status) }
                group.leave()
            }.start()
        }
        whileRunning()
        guard group.wait(timeout: .now() + 60) == .success else { return nil }
        return lock.withLock { statuses }
    }

    @Test("two processes, 100 concurrent callers split between them: exactly one upstream fetch, all succeed, the second holder re-checks")
    func twoProcessesOneFetch() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock())
        fetcher.add("example.com/a", "v1.0.0")
        let processes = [Process(storage: storage, fetcher: fetcher, lock: lock), Process(storage: storage, fetcher: fetcher, lock: lock)]
        fetcher.fetchGate.close()
        let statuses = Self.concurrently(100, { processes[$0 % 2].stash() }) {
            // One process fetches (held at the gate) while the other's flight waits for the lock.
            #expect(waitUntil { fetcher.fetchGate.held == 1 && lock.waiters == 1 })
            fetcher.fetchGate.openGate()
        }
        let all = try #require(statuses)
        #expect(all.count == 100 && all.allSatisfy { $0 == 200 })
        #expect(fetcher.calls("fetch") == 1)
        // One lock request per process: the local flight keeps the other 49 callers of each process off the lock.
        #expect(lock.calls("acquire") == 2)
        #expect(processes.map(\.locking.servedByRecheck).reduce(0, +) == 1)
        #expect(lock.calls("release") == 2 && lock.held == 0)
        #expect(storage.stored("example.com/a", "v1.0.0") != nil)
        #expect(lock.keys == [LockingStasher.namespace(storage: "FakeStorage", configJSON: "{}") + "example.com/a@v1.0.0"])
    }

    @Test("lock backend down: requests still succeed with local single-flight, the fallback is counted; back up: coordination resumes")
    func fallbackWhenTheLockIsDown() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock(name: "fake-lock-down"))
        for module in ["example.com/a", "example.com/b"] { fetcher.add(module, "v1.0.0") }
        let process = Process(storage: storage, fetcher: fetcher, lock: lock)
        lock.fail("acquire", with: .unavailable)
        let before = metric(Metrics.shared.render(), "athens_lock_fallback_total", labels: #"lock="fake-lock-down",cause="unavailable""#) ?? 0
        fetcher.fetchGate.close()
        let statuses = Self.concurrently(20, { _ in process.stash() }) {
            #expect(waitUntil { fetcher.fetchGate.held == 1 })
            fetcher.fetchGate.openGate()
        }
        #expect(try #require(statuses).allSatisfy { $0 == 200 })
        #expect(fetcher.calls("fetch") == 1)
        #expect(process.locking.fallbacks == 1)
        let after = metric(Metrics.shared.render(), "athens_lock_fallback_total", labels: #"lock="fake-lock-down",cause="unavailable""#)
        #expect(after == before + 1)
        lock.fail("acquire", with: nil)
        #expect(process.stash("example.com/b") == 200)
        #expect(lock.calls("acquire") == 2 && lock.calls("release") == 1)
        #expect(process.locking.fallbacks == 1)
    }

    @Test("another process holds the lock for the whole wait: 503 and no fetch; stored meanwhile: served from storage")
    func busyAfterTheWait() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock())
        fetcher.add("example.com/a", "v1.0.0")
        let process = Process(storage: storage, fetcher: fetcher, lock: lock, wait: 0.2)
        lock.holdAbandoned(process.locking.key(module: "example.com/a", version: "v1.0.0"), seconds: 600)
        #expect(process.stash() == 503)
        #expect(fetcher.calls("fetch") == 0 && process.locking.busy == 1)
        #expect(storage.stored("example.com/a", "v1.0.0") == nil)
        // The other process stores it while this one still waits: the re-check after the wait serves it.
        let waiting = Process(storage: storage, fetcher: fetcher, lock: lock, wait: 1)
        let statuses = Self.concurrently(1, { _ in waiting.stash() }) {
            #expect(waitUntil { lock.waiters == 1 })
            storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        }
        #expect(try #require(statuses) == [200])
        #expect(fetcher.calls("fetch") == 0 && waiting.locking.servedByRecheck == 1)
    }

    @Test("a holder that died: its lease runs out and the waiting process fetches")
    func deadHolderLeaseRunsOut() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock())
        fetcher.add("example.com/a", "v1.0.0")
        let process = Process(storage: storage, fetcher: fetcher, lock: lock, wait: 60)
        lock.holdAbandoned(process.locking.key(module: "example.com/a", version: "v1.0.0"), seconds: 1)
        let start = MonotonicClock.now()
        #expect(process.stash() == 200)
        #expect(MonotonicClock.now() - start >= 0.9)
        #expect(fetcher.calls("fetch") == 1 && lock.held == 0)
    }

    @Test("the holder refreshes its lease while the fetch runs, so a lease shorter than the fetch is not lost")
    func leaseIsRefreshedDuringTheFetch() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock())
        fetcher.add("example.com/a", "v1.0.0")
        let process = Process(storage: storage, fetcher: fetcher, lock: lock, lease: 0.3)
        let key = process.locking.key(module: "example.com/a", version: "v1.0.0")
        fetcher.fetchGate.close()
        let statuses = Self.concurrently(1, { _ in process.stash() }) {
            #expect(waitUntil { fetcher.fetchGate.held == 1 && lock.calls("refresh") >= 4 })
            // Four refreshes ≥ 0.4 s after the acquire, beyond the first lease: still held.
            #expect((try? lock.acquire(key: key, leaseMilliseconds: 1000, waitMilliseconds: 0)) == .busy)
            fetcher.fetchGate.openGate()
        }
        #expect(try #require(statuses) == [200])
        let refreshes = lock.calls("refresh")
        // Stopped with the release: no refresh after it.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(lock.calls("refresh") == refreshes && lock.held == 0)
    }

    @Test("a lock lost during the fetch (refresh NOT_FOUND): the fetch still completes and is stored, the handle is released")
    func lostLockStillCompletes() throws {
        let (storage, fetcher, lock) = (FakeStorage(), FakeFetcher(), FakeLock())
        fetcher.add("example.com/a", "v1.0.0")
        let process = Process(storage: storage, fetcher: fetcher, lock: lock, lease: 0.3)
        lock.fail("refresh", with: .notFound)
        fetcher.fetchGate.close()
        let statuses = Self.concurrently(1, { _ in process.stash() }) {
            // One NOT_FOUND is the loss: the keeper refreshes no more after it (LeaseLossTests).
            #expect(waitUntil { fetcher.fetchGate.held == 1 && lock.calls("refresh") >= 1 })
            fetcher.fetchGate.openGate()
        }
        #expect(try #require(statuses) == [200])
        #expect(storage.stored("example.com/a", "v1.0.0") != nil)
        #expect(fetcher.calls("fetch") == 1 && lock.calls("release") == 1 && lock.held == 0)
    }

    @Test("keys: namespaced by the storage's identity, bounded to 1024 bytes")
    func keysAreNamespacedAndBounded() throws {
        let a = LockingStasher.namespace(storage: "FileStorage", configJSON: #"{"root":"/srv/a"}"#)
        #expect(a == LockingStasher.namespace(storage: "FileStorage", configJSON: #"{"root":"/srv/a"}"#))
        #expect(a != LockingStasher.namespace(storage: "FileStorage", configJSON: #"{"root":"/srv/b"}"#))
        #expect(a != LockingStasher.namespace(storage: "S3Storage", configJSON: #"{"root":"/srv/a"}"#))
        let process = Process(storage: FakeStorage(), fetcher: FakeFetcher(), lock: FakeLock())
        let long = "example.com/" + String(repeating: "x", count: 1100)
        let key = process.locking.key(module: long, version: "v1.0.0")
        #expect(key.utf8.count <= 1024 && key != process.locking.key(module: long + "y", version: "v1.0.0"))
        #expect(process.locking.key(module: "example.com/a", version: "v1.0.0").hasSuffix("/example.com/a@v1.0.0"))
    }
}
