import HostSupport
import PluginHost
import Foundation

/// Runs at most one stash per module@version at a time; callers arriving meanwhile wait for it and get
/// its result or its error. Errors are not remembered: the next caller after a failure tries again.
/// Waiters are threads, so a client that goes away cancels nothing.
///
/// Invariant: a key is in `flights` exactly while its stash runs.
package final class SingleFlightStasher: Stasher, @unchecked Sendable {
    private final class Flight {
        var result: Result<Void, DownloadError>?
        var waiters = 0
    }

    private let inner: Stasher
    private let condition = NSCondition()
    private var flights: [String: Flight] = [:]
    /// Callers that joined a flight instead of starting one (for tests and metrics).
    package private(set) var joins = 0

    package init(wrapping inner: Stasher) { self.inner = inner }

    package func stash(module: String, version: String) throws(DownloadError) {
        let key = module + "@" + version
        condition.lock()
        if let flight = flights[key] {
            joins += 1
            flight.waiters += 1
            while flight.result == nil { condition.wait() }
            let result = flight.result!
            condition.unlock()
            return try result.get()
        }
        let flight = Flight()
        flights[key] = flight
        condition.unlock()

        let result: Result<Void, DownloadError>
        do {
            try inner.stash(module: module, version: version)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        condition.lock()
        flight.result = result
        flights[key] = nil
        condition.broadcast()
        condition.unlock()
        try result.get()
    }
}

/// Lets at most `workers` stashes run at once; others wait for a slot (they already hold a download
/// worker, so the download pool's bound also bounds this queue).
///
/// Invariant: `running <= workers`.
package final class PooledStasher: Stasher, @unchecked Sendable {
    private let inner: Stasher
    package let workers: Int
    private let condition = NSCondition()
    private var running = 0

    package init(wrapping inner: Stasher, workers: Int) {
        self.inner = inner
        self.workers = max(1, workers)
    }

    package func stash(module: String, version: String) throws(DownloadError) {
        condition.lock()
        while running >= workers { condition.wait() }
        running += 1
        assert(running <= workers)
        condition.unlock()
        defer {
            condition.lock()
            running -= 1
            condition.signal()
            condition.unlock()
        }
        try inner.stash(module: module, version: version)
    }
}

/// Bounds how long a request waits for a stash. Plugin calls cannot be interrupted, so on timeout the
/// stash goes on in the background (and is stored if it completes) while the caller gets 504.
package final class DeadlineStasher: Stasher, @unchecked Sendable {
    private let inner: Stasher
    package let timeout: Double

    package init(wrapping inner: Stasher, timeout: Double) {
        self.inner = inner
        self.timeout = timeout
    }

    package func stash(module: String, version: String) throws(DownloadError) {
        final class Box: @unchecked Sendable {
            package let done = DispatchSemaphore(value: 0)
            package var result: Result<Void, DownloadError> = .failure(DownloadError(status: 500, message: "internal error"))
        }
        let box = Box()
        let inner = self.inner
        let thread = Thread {
            do throws(DownloadError) {
                try inner.stash(module: module, version: version)
                box.result = .success(())
            } catch {
                box.result = .failure(error)
            }
            box.done.signal()
        }
        thread.name = "stash"
        thread.start()
        guard box.done.wait(timeout: .now() + timeout) == .success else {
            throw DownloadError(status: 504, message: "\(module)@\(version): fetching took longer than \(Int(timeout)) s; it goes on in the background, retry later")
        }
        try box.result.get()
    }
}
