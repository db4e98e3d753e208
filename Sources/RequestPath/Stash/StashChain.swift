import PluginHost

/// The stash as a manifest composes it: its `stash.wrappers` in order (the first is the outermost) over the fetch,
/// and the caller's deadline at the top (`DeadlineStasher`), so no wrapper lets go of a stash before it ends.
///
/// Fetches run only on pool workers: a manifest that lists no `pool` gets one innermost, with a worker for each
/// thread that may call the stash (download and background workers), so it refuses or delays nothing that would
/// have run at once. Each `pool`'s bound holds in any order: its workers stay with a stash until it ends.
package final class StashChain: @unchecked Sendable {
    /// What the download protocol calls: a timed wait on the outermost stage.
    package let stasher: DeadlineStasher
    /// The outermost stage (a caller may wait on it with a deadline of its own).
    package var outermost: any StashStage { stasher.stage }
    package let flights: [SingleFlightStasher]
    /// Outermost first.
    package let pools: [PooledStasher]
    /// The cross-process stage over the fetch, when a `singleflight` names a lock.
    package let locking: LockingStasher?

    /// - Parameters:
    ///   - fetching: the innermost stage (fetch → validate → save), run inline on a pool worker.
    ///   - callers: threads that may call the stash at once (workers of the implicit pool).
    ///   - queue: stashes each pool lets wait for a worker before it refuses one (503).
    ///   - abandonGrace: seconds a stash whose every caller timed out goes on for a retry to join before it is
    ///     cancelled (sync waits only; the async modes keep theirs).
    ///   - fetchTimeout: the deadline plugins see for a fetch and its save; nil: `defaultFetchTimeout(timeout)`.
    ///   - lock: a `singleflight`'s lock and the storage its holders re-check: a `LockingStasher` goes directly over
    ///     `fetching`, so its lock waits, like fetches, run only on pool workers.
    package init(wrappers: [Manifest.StashWrapper], timeout: Double, fetching: any StashStage, callers: Int, queue: Int,
                 abandonGrace: Double = StashChain.defaultAbandonGrace, fetchTimeout: Double? = nil,
                 lock: (settings: LockingStasher.Settings, storage: any Storage)? = nil) {
        var wrappers = wrappers
        if !wrappers.contains(where: { if case .pool = $0 { true } else { false } }) {
            wrappers.append(.pool(workers: callers))
        }
        let poolCount = wrappers.filter { if case .pool = $0 { true } else { false } }.count
        var stage = fetching
        locking = lock.map { LockingStasher(wrapping: fetching, storage: $0.storage, settings: $0.settings) }
        if let locking { stage = locking }
        var flights: [SingleFlightStasher] = [], pools: [PooledStasher] = []
        for wrapper in wrappers.reversed() {
            switch wrapper {
            case .singleflight:
                let flight = SingleFlightStasher(wrapping: stage)
                flights.insert(flight, at: 0)
                stage = flight
            case let .pool(workers):
                let name = poolCount == 1 ? "stash" : "stash-\(poolCount - pools.count)"
                let pool = PooledStasher(wrapping: stage, workers: workers, queue: queue, name: name)
                pools.insert(pool, at: 0)
                stage = pool
            }
        }
        self.flights = flights
        self.pools = pools
        stasher = DeadlineStasher(waitingFor: stage, timeout: timeout, abandonGrace: abandonGrace,
                                  fetchTimeout: fetchTimeout ?? Self.defaultFetchTimeout(timeout))
    }

    /// Long enough for a client told "retry later" to come back and join the fetch it started.
    package static let defaultAbandonGrace = 10.0

    /// A fetch may run four times what a caller waits, and at least ten minutes (a large module over a slow VCS).
    package static func defaultFetchTimeout(_ timeout: Double) -> Double { max(600, 4 * timeout) }

    /// Callers that joined a running flight, over every `singleflight` wrapper.
    package var joins: Int { flights.reduce(0) { $0 + $1.joins } }

    /// Gauges read at scrape time: each stash pool's waiting and running stashes (pool="stash", or "stash-N" in
    /// manifest order when it lists several).
    package func gauges() -> [(name: String, labels: String, value: Double)] {
        pools.flatMap { pool -> [(name: String, labels: String, value: Double)] in
            let load = pool.load
            return [("athens_pool_queue_depth", "pool=\"\(pool.name)\"", Double(load.waiting)),
                    ("athens_pool_running", "pool=\"\(pool.name)\"", Double(load.running))]
        }
    }

    /// Lets every pool finish what is queued, then end its workers (the assembly was replaced).
    package func retire() {
        for pool in pools { pool.retire() }
    }
}
