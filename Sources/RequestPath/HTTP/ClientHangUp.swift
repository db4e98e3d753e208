import Glibc
import Synchronization

/// That the client of one request has gone while the request is answered off its event loop: the connection
/// signals it when its socket is reset or closed under the request (Connection.swift says when a half-close
/// counts), and whoever waits on the client's behalf (a stash waiter, `DeadlineStasher`) stops waiting at once.
///
/// A pool job that works for a request finds its signal in `current`, set by `DownloadProtocol` around the job,
/// as the crash reporter's request id is. Signalled at most once; observers run on the signalling thread.
package final class ClientHangUp: Sendable {
    private struct State {
        var hungUp = false
        var observers: [Int: @Sendable () -> Void] = [:]
        var nextToken = 0
    }
    private let state = Mutex(State())

    /// A signal not given yet.
    package init() {}

    /// Whether the client has gone.
    package var hasHungUp: Bool { state.withLock { $0.hungUp } }

    /// The client has gone: runs every observer once, on this thread. Later calls do nothing.
    package func signal() {
        let observers: [@Sendable () -> Void]? = state.withLock { state in
            guard !state.hungUp else { return nil }
            state.hungUp = true
            defer { state.observers = [:] }
            return Array(state.observers.values)
        }
        for observer in observers ?? [] { observer() }
    }

    /// Calls `observer` when the client goes; nil (and `observer` is not called) when it has gone already.
    /// Pass the token to `stopObserving` when the wait ends.
    package func observe(_ observer: @escaping @Sendable () -> Void) -> Int? {
        state.withLock { state in
            guard !state.hungUp else { return nil }
            state.nextToken += 1
            state.observers[state.nextToken] = observer
            return state.nextToken
        }
    }

    /// Forgets an observer (its wait ended first).
    package func stopObserving(_ token: Int) {
        _ = state.withLock { $0.observers.removeValue(forKey: token) }
    }

    /// The signal of the request this thread works for; nil when none (background work, tests without a server).
    package static var current: ClientHangUp? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<ClientHangUp>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Runs `body` with `signal` as this thread's `current`, then restores the previous one.
    package static func with<R>(_ signal: ClientHangUp?, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        // Unretained: `signal` is kept alive by this frame until `body` returns.
        pthread_setspecific(key, signal.map { Unmanaged.passUnretained($0).toOpaque() })
        defer { pthread_setspecific(key, previous) }
        return try withExtendedLifetime(signal) { try body() }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create")
        return key
    }()
}
