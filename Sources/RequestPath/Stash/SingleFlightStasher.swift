import Basics
import FoundationEssentials
import Glibc
import PluginHost

/// Runs at most one stash per module@version at a time; callers arriving meanwhile join it and get its result or
/// its error. Errors are not remembered: the next caller after a failure starts a new flight.
///
/// Invariant: a key is in `flights` from the flight's start until its stash has ended, however long that is and
/// whether or not anyone still waits (a caller's deadline is a wait on the flight, not part of it). So a retry after
/// a `504` joins the fetch still running, and a flight queued in a pool below counts as running.
package final class SingleFlightStasher: StashStage, @unchecked Sendable {
    private let inner: any StashStage
    private let lock = PosixLock()
    private var flights: [String: PendingStash] = [:]
    private var joinCount = 0

    package init(wrapping inner: any StashStage) { self.inner = inner }

    /// Callers that joined a flight instead of starting one (`athens_singleflight_joins_total`).
    package var joins: Int { lock.withLock { joinCount } }

    /// Flights registered now.
    package var running: Int { lock.withLock { flights.count } }

    package func start(module: String, version: String, context: CallContext) -> PendingStash {
        let key = module + "@" + version
        let (flight, isNew): (PendingStash, Bool) = lock.withLock {
            if let flight = flights[key] {
                joinCount += 1
                return (flight, false)
            }
            // The first caller's context is the flight's: its waiters, joiners included, decide when it is cancelled.
            let flight = PendingStash(context: context)
            flights[key] = flight
            return (flight, true)
        }
        guard isNew else { return flight }
        // Outside the lock: an inline inner stage runs the whole fetch here.
        inner.start(module: module, version: version, context: context).whenEnded { outcome in
            // The key goes first: a caller told of a failure that retries at once starts a new flight.
            self.lock.withLock { self.flights[key] = nil }
            flight.end(outcome)
        }
        return flight
    }
}
