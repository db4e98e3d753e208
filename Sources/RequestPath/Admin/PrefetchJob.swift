import Basics
import FoundationEssentials
import Glibc
import HostSupport
import JSON

/// One prefetch in progress or finished: its items and what became of each. Shared by the lanes that work on it
/// (pool threads) and `GET /admin/jobs/<id>` (the event loop), hence the lock.
package final class PrefetchJob: @unchecked Sendable {
    /// What became of one item.
    package enum State: String, Sendable { case pending, running, done, skipped, failed }

    package struct Result: Sendable {
        package var state = State.pending
        /// The version a query resolved to (or the item's own version).
        package var version: String?
        package var error: String?
    }

    package let id: String
    package let request: PrefetchRequest
    /// Who asked (the client address), for the log line of the finished job.
    package let who: String
    private let lock = PosixLock()
    private var results: [Result]
    private var nextIndex = 0
    private var counts: [State: Int] = [:]
    private let started = MonotonicClock.now()
    private var finishedAt: Double?
    private var onFinish: (@Sendable (PrefetchJob) -> Void)?

    package init(id: String, request: PrefetchRequest, who: String, onFinish: (@Sendable (PrefetchJob) -> Void)? = nil) {
        self.id = id
        self.request = request
        self.who = who
        self.onFinish = onFinish
        results = Array(repeating: Result(), count: request.items.count)
        counts[.pending] = request.items.count
    }

    /// The next pending item, now running; nil when none is left.
    func take() -> Int? {
        lock.withLock {
            guard nextIndex < results.count else { return nil }
            let index = nextIndex
            nextIndex += 1
            move(index, to: .running)
            return index
        }
    }

    /// Records an item's outcome; the last one finishes the job.
    func finish(_ index: Int, _ state: State, version: String?, error: String? = nil) {
        let callback: (@Sendable (PrefetchJob) -> Void)? = lock.withLock {
            move(index, to: state)
            results[index].version = version
            results[index].error = error
            guard counts[.pending, default: 0] == 0, counts[.running, default: 0] == 0, finishedAt == nil else { return nil }
            finishedAt = MonotonicClock.now()
            defer { onFinish = nil }
            return onFinish
        }
        callback?(self)
    }

    private func move(_ index: Int, to state: State) {
        counts[results[index].state, default: 0] -= 1
        results[index].state = state
        counts[state, default: 0] += 1
    }

    /// Whether every item has its outcome.
    package var isFinished: Bool { lock.withLock { finishedAt != nil } }

    /// Items per state.
    package func count(_ state: State) -> Int { lock.withLock { counts[state, default: 0] } }

    /// The job as `GET /admin/jobs/<id>` answers it.
    package func json() -> JSONValue {
        lock.withLock {
            let items: [JSONValue] = zip(request.items, results).map { item, result in
                var fields: [(String, JSONValue)] = [("module", .string(item.module))]
                if item.isQuery { fields.append(("query", .string(item.version))) }
                if let version = result.version ?? (item.isQuery ? nil : item.version) { fields.append(("version", .string(version))) }
                if item.goModOnly { fields.append(("goModOnly", .bool(true))) }
                fields.append(("state", .string(result.state.rawValue)))
                if let error = result.error { fields.append(("error", .string(error))) }
                return .object(JSONObject(fields))
            }
            let seconds = (finishedAt ?? MonotonicClock.now()) - started
            return .object(JSONObject([
                ("id", .string(id)), ("state", .string(finishedAt == nil ? "running" : "done")),
                ("format", .string(request.format.rawValue)), ("total", .number(JSONNumber(results.count))),
                ("done", .number(JSONNumber(counts[.done, default: 0]))), ("skipped", .number(JSONNumber(counts[.skipped, default: 0]))),
                ("failed", .number(JSONNumber(counts[.failed, default: 0]))), ("running", .number(JSONNumber(counts[.running, default: 0]))),
                ("seconds", .number(JSONNumber(literal: seconds.fixed(3)))),
                ("notes", .array(request.notes.map(JSONValue.string))), ("items", .array(items)),
            ]))
        }
    }
}
