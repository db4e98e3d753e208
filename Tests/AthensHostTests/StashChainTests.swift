// The stash chain with in-memory fakes (no .so): the caller's deadline is a wait on the flight, so a 504 lets go of
// nothing; fetches run only on the stash pool's workers, bounded in any manifest order; failures end the flight.
// Synchronised on conditions (fake gates, flight and pool counts); the short stash deadlines are what the tests are
// about (a caller that gives up), never a bound on speed.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("stash chain: deadline above the flight, fetches on the bounded pool (fakes)", .blockingBodies)
struct StashChainTests {
    /// A chain over a fake fetcher and storage, as Assembly builds it.
    final class Rig: @unchecked Sendable {
        let storage = FakeStorage()
        let fetcher = FakeFetcher()
        let chain: StashChain

        init(_ wrappers: [Manifest.StashWrapper], timeout: Double, callers: Int = 8, queue: Int = 64, modules: [String] = ["example.com/a"]) {
            for module in modules { fetcher.add(module, "v1.0.0") }
            let fetching = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage,
                                           spoolDirectory: NSTemporaryDirectory())
            chain = StashChain(wrappers: wrappers, timeout: timeout, fetching: fetching, callers: callers, queue: queue)
        }

        deinit { chain.retire() }

        func stash(_ module: String = "example.com/a") -> PendingStash.Outcome {
            do throws(DownloadError) {
                try chain.stasher.stash(module: module, version: "v1.0.0")
                return .success(())
            } catch {
                return .failure(error)
            }
        }
    }

    /// `count` calls started at once, each on a thread of its own.
    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var outcomes: [PendingStash.Outcome] = []
        private let group = DispatchGroup()

        init(_ count: Int, _ call: @escaping @Sendable (Int) -> PendingStash.Outcome) {
            for index in 0..<count {
                group.enter()
                Thread {
                    let outcome = call(index)
                    self.lock.withLock { self.outcomes.append(outcome) }
                    self.group.leave()
                }.start()
            }
        }

        /// Every call's outcome, in the order they ended (nil: one did not end within a minute).
        func wait() -> [PendingStash.Outcome]? {
            guard group.wait(timeout: .now() + 60) == .success else { return nil }
            return lock.withLock { outcomes }
        }
    }

    static func status(_ outcome: PendingStash.Outcome) -> Int {
        switch outcome {
        case .success: 200
        case let .failure(error): error.status
        }
    }

    @Test("a fetch slower than the deadline: the call and three retries get 504, one upstream fetch; then stored, served without a fetch")
    func retriesJoinTheRunningFetch() throws {
        let rig = Rig([.singleflight, .pool(workers: 2)], timeout: 1)
        rig.fetcher.fetchGate.close()
        for attempt in 0..<4 {
            let outcome = rig.stash()
            guard case let .failure(error) = outcome else { Issue.record("attempt \(attempt) succeeded with the upstream held"); return }
            #expect(error == DownloadError(status: 504, message: "example.com/a@v1.0.0: fetching took longer than 1 s; it goes on in the background, retry later"))
            #expect(waitUntil { rig.fetcher.fetchGate.held == 1 })
        }
        #expect(rig.fetcher.calls("fetch") == 1, "a retry after a 504 started another fetch")
        #expect(rig.chain.joins == 3)
        #expect(rig.chain.flights[0].running == 1, "the flight stays registered while its fetch runs")
        #expect(rig.storage.keys.isEmpty)

        rig.fetcher.fetchGate.openGate()
        #expect(waitUntil { rig.storage.stored("example.com/a", "v1.0.0") != nil && rig.chain.flights[0].running == 0 })
        #expect(waitUntil { rig.chain.pools[0].load == (0, 0) }, "the fetch's pool slot is free once it ended")
        // Held again: a call that fetched would wait at the gate past its deadline; this one finds the version stored.
        rig.fetcher.fetchGate.close()
        #expect(Self.status(rig.stash()) == 200)
        #expect(rig.fetcher.calls("fetch") == 1)
        #expect(rig.storage.stored("example.com/a", "v1.0.0") == FakeVersion.honest(module: "example.com/a", version: "v1.0.0").ingested)
    }

    /// Manifest orders whose fetches must stay within 2 at once, on at most 2 threads.
    enum Order: String, CaseIterable, Sendable {
        case singleflightThenPool, poolThenSingleflight, poolAlone, noPool, singleflightNoPool

        var wrappers: [Manifest.StashWrapper] {
            switch self {
            case .singleflightThenPool: [.singleflight, .pool(workers: 2)]
            case .poolThenSingleflight: [.pool(workers: 2), .singleflight]
            case .poolAlone: [.pool(workers: 2)]
            // The implicit pool: one worker per caller thread (2 here).
            case .noPool: []
            case .singleflightNoPool: [.singleflight]
            }
        }
    }

    @Test("10 modules at once, callers giving up after 504: at most `workers` fetches run, on at most `workers` threads",
          arguments: Order.allCases)
    func poolBoundsFetchesInAnyOrder(order: Order) throws {
        let modules = (0..<10).map { "example.com/m\($0)" }
        let rig = Rig(order.wrappers, timeout: 0.2, callers: 2, modules: modules)
        rig.fetcher.fetchGate.close()
        let outcomes = try #require(Calls(10) { rig.stash(modules[$0]) }.wait())
        #expect(outcomes.map(Self.status) == Array(repeating: 504, count: 10))
        // Every caller has gone; the pool still holds its 2 fetches and queues the other 8 (the gauges say so).
        #expect(waitUntil { rig.fetcher.fetchGate.held == 2 && rig.chain.pools[0].load == (8, 2) })
        let gauges = rig.chain.gauges()
        #expect(gauges.contains { $0 == ("athens_pool_queue_depth", "pool=\"stash\"", 8) })
        #expect(gauges.contains { $0 == ("athens_pool_running", "pool=\"stash\"", 2) })
        #expect(rig.fetcher.peakConcurrentFetches == 2)

        rig.fetcher.fetchGate.openGate()
        #expect(waitUntil { rig.storage.keys.count == 10 })
        #expect(rig.fetcher.peakConcurrentFetches == 2, "more than `workers` fetches ran at once")
        #expect(rig.fetcher.fetchThreadCount <= 2, "\(rig.fetcher.fetchThreadCount) threads ran fetches")
        #expect(rig.fetcher.calls("fetch") == 10)
        #expect(waitUntil { rig.chain.pools[0].load == (0, 0) })
    }

    @Test("several pools: each bounds what passes through it (a worker stays with its stash) and has its own gauges")
    func severalPools() throws {
        let modules = (0..<4).map { "example.com/m\($0)" }
        let rig = Rig([.pool(workers: 3), .singleflight, .pool(workers: 1)], timeout: 0.2, modules: modules)
        rig.fetcher.fetchGate.close()
        let outcomes = try #require(Calls(4) { rig.stash(modules[$0]) }.wait())
        #expect(outcomes.map(Self.status) == Array(repeating: 504, count: 4))
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 && rig.chain.pools[0].load == (1, 3) && rig.chain.pools[1].load == (2, 1) })
        let gauges = rig.chain.gauges()
        for (name, labels, value) in [("athens_pool_queue_depth", "pool=\"stash-1\"", 1.0), ("athens_pool_running", "pool=\"stash-1\"", 3),
                                      ("athens_pool_queue_depth", "pool=\"stash-2\"", 2), ("athens_pool_running", "pool=\"stash-2\"", 1)] {
            #expect(gauges.contains { $0 == (name, labels, value) }, "\(name){\(labels)} \(value) in \(gauges)")
        }
        rig.fetcher.fetchGate.openGate()
        #expect(waitUntil { rig.storage.keys.count == 4 })
        #expect(rig.fetcher.peakConcurrentFetches == 1)
        #expect(rig.fetcher.fetchThreadCount == 1)
    }

    @Test("a failing fetch ends its flight at once: the next call fetches again")
    func failureReleasesTheFlight() throws {
        let rig = Rig([.singleflight, .pool(workers: 2)], timeout: 30)
        rig.fetcher.fail("fetch", with: .unavailable)
        let failed = rig.stash()
        #expect(Self.status(failed) == 502)
        #expect(rig.chain.flights[0].running == 0)
        #expect(rig.storage.keys.isEmpty)
        rig.fetcher.fail("fetch", with: nil)
        #expect(Self.status(rig.stash()) == 200)
        #expect(rig.fetcher.calls("fetch") == 2)
        #expect(rig.chain.joins == 0)
    }

    @Test("callers that joined a flight whose save fails all get its error; nothing stored; the next call retries")
    func joinersShareAFailure() throws {
        let rig = Rig([.singleflight, .pool(workers: 2)], timeout: 30)
        rig.storage.fail("save", with: .unavailable)
        rig.storage.saveGate.close()
        let flights = rig.chain.flights[0]
        let calls = Calls(20) { _ in rig.stash() }
        #expect(waitUntil { rig.storage.saveGate.held == 1 && rig.chain.joins == 19 })
        rig.storage.saveGate.openGate()
        let all = try #require(calls.wait())
        #expect(all.count == 20)
        let errors = all.compactMap { if case let .failure(error) = $0 { error } else { nil } }
        #expect(errors.count == 20 && errors.allSatisfy { $0 == errors[0] && $0.status == 502 }, "\(errors.prefix(3))")
        #expect(rig.fetcher.calls("fetch") == 1)
        #expect(flights.running == 0)
        #expect(rig.storage.keys.isEmpty)
        rig.storage.fail("save", with: nil)
        #expect(Self.status(rig.stash()) == 200)
        #expect(rig.fetcher.calls("fetch") == 2)
    }

    @Test("many concurrent callers of one version: one fetch, every caller gets the stored version")
    func concurrentCallersShareOneFetch() throws {
        let rig = Rig([.singleflight, .pool(workers: 2)], timeout: 30)
        rig.fetcher.fetchGate.close()
        let calls = Calls(50) { _ in rig.stash() }
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 && rig.chain.joins == 49 })
        rig.fetcher.fetchGate.openGate()
        let all = try #require(calls.wait())
        #expect(all.map(Self.status) == Array(repeating: 200, count: 50))
        #expect(rig.fetcher.calls("fetch") == 1)
        #expect(rig.storage.stored("example.com/a", "v1.0.0") == FakeVersion.honest(module: "example.com/a", version: "v1.0.0").ingested)
    }

    @Test("a full stash queue refuses at once with 503 and stores nothing; queued stashes still complete")
    func fullQueueRefuses() throws {
        let rig = Rig([.singleflight, .pool(workers: 1)], timeout: 0.2, queue: 1, modules: ["example.com/a", "example.com/b", "example.com/c"])
        rig.fetcher.fetchGate.close()
        #expect(Self.status(rig.stash("example.com/a")) == 504)
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 })
        #expect(Self.status(rig.stash("example.com/b")) == 504)
        guard case let .failure(refused) = rig.stash("example.com/c") else { Issue.record("a third stash was accepted"); return }
        #expect(refused.status == 503 && refused.message.contains("too many fetches waiting"), "\(refused)")
        #expect(rig.chain.flights[0].running == 2, "the refused stash left no flight behind")
        rig.fetcher.fetchGate.openGate()
        #expect(waitUntil { rig.storage.keys == ["example.com/a@v1.0.0", "example.com/b@v1.0.0"] })
        #expect(Self.status(rig.stash("example.com/c")) == 200)
        #expect(rig.fetcher.calls("fetch") == 3)
    }
}
