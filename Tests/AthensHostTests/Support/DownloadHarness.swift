// A Router and DownloadProtocol over the in-memory fakes (Fakes.swift), with real worker pools and the real fetch →
// validate → save stasher: the download protocol, routing and modes unit-tested without dlopen. The test's thread
// plays the event loop.
import Foundation
import Glibc
@testable import PluginHost
@testable import RequestPath

/// One request in flight: the responses it got (exactly one is expected), whether each came from the thread that
/// sent the request (the "event loop") or another one, and how many download-pool jobs were running as it was
/// given (at least one when a pool worker answered: the job counts as running until it returns).
final class PendingResponse: @unchecked Sendable {
    /// One response and where it was given.
    typealias Answer = (response: Response, onCaller: Bool, poolRunning: Int)
    private let condition = NSCondition()
    private var responses: [Answer] = []
    private let caller = pthread_self()
    private let pool: WorkerPool

    init(pool: WorkerPool) { self.pool = pool }

    /// The Responder the router answers through.
    var responder: Responder {
        Responder { response in
            let onCaller = pthread_equal(pthread_self(), self.caller) != 0
            let running = self.pool.load.running
            self.condition.lock()
            self.responses.append((response, onCaller, running))
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    /// Responses so far.
    var count: Int { condition.withLock { responses.count } }

    /// The first response, waiting up to `timeout` seconds for it.
    func wait(timeout: Double = 30) -> Answer? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while responses.isEmpty {
            if !condition.wait(until: deadline) { break }
        }
        return responses.first
    }
}

/// A download protocol wired as Assembly wires it, over a FakeStorage and two FakeFetchers: "public" (the default
/// route) and "private" (only through rules naming it). Two harnesses given one `storage` are two instances on it.
final class DownloadHarness: @unchecked Sendable {
    let storage: FakeStorage
    let upstream = FakeFetcher(name: "public")
    let inhouse = FakeFetcher(name: "private")
    let policy: DownloadPolicy
    let pool: WorkerPool
    let background: WorkerPool
    let download: DownloadProtocol
    let router: Router

    init(mode: DownloadMode = .sync, network: NetworkMode = .fallback, rules: [RoutingRule] = [], downloadURL: String? = nil,
         workers: Int = 2, queue: Int = 16, listTTL: Double = 60, cacheFileBytes: Int = 1 << 16, auth: BasicAuth? = nil,
         storageRedirects: Set<Artifact> = [], lock: (any Lock)? = nil, lockRequired: Bool = false, adminToken: String? = nil,
         accesses: AccessRecorder? = nil, retention: ((DownloadProtocol) -> Retention)? = nil,
         adminSettings: AdminSettings = AdminSettings(), storage: FakeStorage = FakeStorage()) {
        self.storage = storage
        var policy = DownloadPolicy(rules: rules, mode: mode, downloadURL: downloadURL, networkMode: network)
        policy.storageRedirects = storageRedirects
        policy.fetchersByName = ["public": upstream, "private": inhouse]
        policy.defaultFetchers = [upstream]
        self.policy = policy
        pool = WorkerPool(name: "download", threads: workers, capacity: queue)
        background = WorkerPool(name: "background", threads: 2, capacity: queue)
        // The stash wrappers (single-flight, pool, deadline) have their own tests; here the fetch runs on the caller's pool thread.
        let stasher = FetchingStasher(policy: policy, storage: storage, spoolDirectory: NSTemporaryDirectory())
        download = DownloadProtocol(storage: storage, policy: policy, stasher: stasher, pool: pool, background: background,
                                    lists: ListCache(ttl: listTTL), cache: ArtifactCache(maxBytes: 1 << 20, maxFileBytes: cacheFileBytes),
                                    accesses: accesses)
        let download = download
        let retention = retention?(download)
        router = Router(download: download, sumdb: nil, version: "test", auth: auth,
                        readinessLock: lock.map { Readiness.LockProbe(lock: $0, key: "test:readyz", required: lockRequired) },
                        admin: adminToken.map { AdminAPI(token: AdminToken($0), download: download, retention: retention, settings: adminSettings) })
    }

    deinit {
        pool.retire()
        background.retire()
    }

    /// Sends `target` (path and query, as on the request line) through the router; does not wait for the answer.
    func start(_ target: String, method: Request.Method = .get, headers: [(name: String, value: String)] = [],
               body: [UInt8] = []) -> PendingResponse {
        let pending = PendingResponse(pool: pool)
        router.handle(Request(method: method, target: target, minorVersion: 1, headers: headers, keepAlive: true,
                              contentLength: body.count, body: body, peer: "127.0.0.1"), responder: pending.responder)
        return pending
    }

    /// Sends `target` and waits for the answer.
    func get(_ target: String, headers: [(name: String, value: String)] = []) -> PendingResponse.Answer? {
        start(target, headers: headers).wait()
    }

    /// Waits until both pools have nothing queued or running (a background stash may still be storing after the answer).
    func settle(timeout: Double = 30) -> Bool {
        waitUntil(timeout: timeout) {
            let a = pool.load, b = background.load
            return a.waiting == 0 && a.running == 0 && b.waiting == 0 && b.running == 0
        }
    }
}

extension Response {
    /// The body's bytes (a blob read whole).
    var bodyBytes: [UInt8] {
        switch body {
        case .empty: []
        case let .bytes(bytes): bytes
        case let .blob(blob): blob.readAll(limit: 1 << 30) ?? []
        }
    }

    var bodyText: String { String(decoding: bodyBytes, as: UTF8.self) }

    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
}
