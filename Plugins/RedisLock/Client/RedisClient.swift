/// A thread-safe Redis client: a bounded pool of connections, each call with a deadline.
///
/// A call takes an idle connection (or opens one while fewer than `poolSize` are open, or waits for one to come
/// back), sends, reads, and returns the connection. Callers get connections in the order they asked: a thread that
/// returns a connection and asks again at once queues behind those already waiting, so a lock's release or lease
/// refresh is never starved by waiters polling in a loop. A connection that saw an I/O, timeout or protocol error is
/// closed, never reused; idle connections the server has closed (a Redis restart) are noticed before reuse and
/// replaced, so after an outage the next call reconnects. Calls are not retried: a command whose reply was lost
/// may or may not have run, and only the caller knows whether running it twice is safe.
import Basics
public final class RedisClient: @unchecked Sendable {  // state guarded by `monitor`
    public let configuration: RedisConfiguration
    private let monitor = PosixCondition()
    private var idle: [RedisConnection] = []
    private var open = 0
    private var closed = false
    /// Tickets of the callers waiting for a connection, in arrival order; only the first may take one.
    private var queue: [UInt64] = []
    private var nextTicket: UInt64 = 0

    public init(_ configuration: RedisConfiguration) throws(RedisError) {
        guard configuration.poolSize > 0 else { throw .invalidArgument("poolSize must be at least 1") }
        self.configuration = configuration
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(RedisConfiguration(url: url))
    }

    deinit { close() }

    /// Connections open now (idle or in use) and idle now.
    public var connectionCounts: (open: Int, idle: Int) { monitor.withLock { (open, idle.count) } }

    /// Callers waiting for a connection now.
    public var waitingCount: Int { monitor.withLock { queue.count } }

    /// Closes the idle connections and makes further calls fail; connections in use close when they come back.
    public func close() {
        let toClose: [RedisConnection] = monitor.withLock {
            closed = true
            let list = idle
            open -= idle.count
            idle = []
            monitor.broadcast()  // every waiter must see `closed`
            return list
        }
        for connection in toClose { connection.close() }
    }

    /// Runs one command, e.g. `["SET", "k", "v", "NX"]`. An error reply throws `RedisError.server`.
    @discardableResult
    public func command(_ arguments: [String], timeoutMs: Int? = nil) throws(RedisError) -> RedisValue {
        try command(arguments.map { Array($0.utf8) }, timeoutMs: timeoutMs)
    }

    /// Runs one command given as raw bulk strings (binary-safe).
    @discardableResult
    public func command(_ arguments: [[UInt8]], timeoutMs: Int? = nil) throws(RedisError) -> RedisValue {
        let reply = try pipeline([arguments], timeoutMs: timeoutMs)[0]
        if case .error(let text) = reply { throw RedisError.server(text).redacting(configuration.password) }
        return reply
    }

    /// Sends several commands in one round trip on one connection; error replies come back as `.error` values.
    public func pipeline(_ commands: [[[UInt8]]], timeoutMs: Int? = nil) throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        guard commands.allSatisfy({ !$0.isEmpty }) else { throw .invalidArgument("empty command") }
        let deadline = Deadline(afterMilliseconds: timeoutMs ?? configuration.commandTimeoutMs)
        let connection = try checkOut(deadline: deadline)
        defer { checkIn(connection) }
        return try connection.pipeline(commands, deadline: deadline)
    }

    private func checkOut(deadline: Deadline) throws(RedisError) -> RedisConnection {
        let ticket = monitor.withLock { () -> UInt64 in
            defer { nextTicket += 1 }
            queue.append(nextTicket)
            return nextTicket
        }
        while true {
            enum Next { case reuse(RedisConnection), discard(RedisConnection), connect }
            let next: Next = try monitor.withLock { () throws(RedisError) -> Next in
                while true {
                    if closed { leaveQueue(ticket); throw RedisError.unavailable("client for \(configuration) is closed") }
                    if queue.first == ticket {
                        if let connection = idle.popLast() {
                            // A dead idle connection is closed outside the lock; the ticket stays first meanwhile.
                            guard connection.looksHealthy else { open -= 1; return .discard(connection) }
                            leaveQueue(ticket)
                            return .reuse(connection)
                        }
                        if open < configuration.poolSize {
                            open += 1
                            leaveQueue(ticket)
                            return .connect
                        }
                    }
                    if !monitor.wait(until: deadline) && deadline.hasPassed {
                        leaveQueue(ticket)
                        throw RedisError.timeout("all \(configuration.poolSize) connections to \(configuration) busy")
                    }
                }
            }
            switch next {
            case .reuse(let connection): return connection
            case .discard(let connection): connection.close()
            case .connect:
                do {
                    let connectDeadline = min(deadline, Deadline(afterMilliseconds: configuration.connectTimeoutMs))
                    return try RedisConnection(configuration, deadline: connectDeadline)
                } catch {
                    monitor.withLock { open -= 1; monitor.broadcast() }
                    throw error
                }
            }
        }
    }

    /// Removes `ticket` from the queue (under `monitor`) and wakes the waiters: the new first one may go.
    private func leaveQueue(_ ticket: UInt64) {
        if let index = queue.firstIndex(of: ticket) { queue.remove(at: index) }
        monitor.broadcast()
    }

    private func checkIn(_ connection: RedisConnection) {
        let keep = monitor.withLock { () -> Bool in
            defer { monitor.broadcast() }   // only the first in the queue may take it; a signal could wake another
            if connection.broken || closed {
                open -= 1
                return false
            }
            idle.append(connection)
            return true
        }
        if !keep { connection.close() }
    }
}
