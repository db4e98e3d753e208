// S3Storage honours ABI 1.1's per-call context: the deadline bounds each request, the retries and their backoff;
// cancellation stops a call, and a multipart upload is aborted when it stops (no parts left).
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost

/// Per-call deadlines and cancellation of S3Storage, against RGW behind the fault proxy (a stall rule holds a request
/// and answers nothing, as a hung S3 server would).
@Suite("S3Storage per-call deadlines and cancellation", .blockingBodies, .serialized, .enabled(if: RGW.isAvailable, "needs the RGW of scripts/rgw.sh"))
final class S3DeadlineTests {
    let work = TestSupport.makeTemporaryDirectory("s3-deadline")
    var processes: [ChildProcess] = []

    deinit {
        for process in processes { process.stop() }
        TestSupport.removeDirectory(work)
    }

    /// S3Storage on a new bucket behind a fault proxy with `rules`; `timeoutSeconds` 30, far above the deadlines used.
    func storage(_ rules: String, _ extra: [String: Any] = [:]) throws -> (storage: StoragePlugin, bucket: String, log: String) {
        let bucket = try RGW.makeBucket("deadline")
        let proxy = try RGW.faultProxy(rules, work: work)
        processes.append(proxy.process)
        let config = RGW.config(bucket: bucket, endpoint: proxy.endpoint, ["timeoutSeconds": 30].merging(extra) { $1 })
        let storage = try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin("S3Storage")), configJSON: RGW.json(config))
        return (storage, bucket, proxy.log)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    @Test("a server that never answers: a call with a 1 s deadline is TIMEOUT after about 1 s, although timeoutSeconds is 30")
    func deadlineBoundsARequest() throws {
        let (storage, _, log) = try storage(#"[{"method": "HEAD", "contains": "v1.0.0.info", "stall": 60, "times": 10}]"#)
        let start = ContinuousClock.now
        let error = #expect(throws: PluginError.self) {
            _ = try storage.exists(module: "example.com/slow", version: "v1.0.0", call: CallContext(timeout: 1))
        }
        let elapsed = Self.seconds(since: start)
        #expect(error?.code == .timeout, "\(String(describing: error))")
        #expect(error?.message.contains("HEAD example.com/slow/@v/v1.0.0.info") == true, "\(String(describing: error))")
        // Well below the 30 s of the config (and the 60 s stall); not before the deadline.
        #expect(elapsed >= 0.9 && elapsed < 5, "took \(elapsed) s")
        // One request: a timed-out call is not retried past its deadline.
        #expect(S3StorageTests.logLines(log).filter { $0.contains("v1.0.0.info stall") }.count == 1)
        // Without a deadline of its own the same storage answers as usual.
        #expect(try storage.exists(module: "example.com/other", version: "v2.0.0", call: CallContext()) == false)
    }

    @Test("retries and their backoff stop at the deadline: 503 SlowDown on every try ends after about 3 s, not 10 retries later")
    func deadlineBoundsRetries() throws {
        let (storage, _, log) = try storage(#"[{"method": "GET", "contains": "list-type", "status": 503, "code": "SlowDown", "times": 1000}]"#,
                                            ["retries": 10])
        let start = ContinuousClock.now
        let error = #expect(throws: PluginError.self) {
            _ = try storage.list(module: "example.com/busy", call: CallContext(timeout: 3))
        }
        let elapsed = Self.seconds(since: start)
        // The last answer was a 503: that is what the caller learns (the retry that would pass the deadline is not made).
        // 3 s, not 1: the first answer must come before the deadline also on a loaded machine. Ten retries with
        // SlowDown's backoff (400 ms × 2^attempt, capped at 5 s) would take over 30 s.
        #expect(error?.code == .unavailable && error?.message.contains("HTTP 503 SlowDown") == true, "\(String(describing: error))")
        #expect(elapsed < 5, "took \(elapsed) s")
        let tries = S3StorageTests.logLines(log).filter { $0.contains("list-type") && $0.hasSuffix(" 503 injected") }.count
        #expect(tries >= 1 && tries < 11, "\(tries) tries")
    }

    @Test("a call whose deadline has passed, or that the host cancelled, sends nothing")
    func endedBeforeStart() throws {
        let (storage, _, log) = try storage("[]")
        let cancelled = CallContext()
        cancelled.cancel()
        let error = #expect(throws: PluginError.self) { _ = try storage.list(module: "example.com/m", call: cancelled) }
        #expect(error?.code == .cancelled, "\(String(describing: error))")
        let expired = CallContext(deadline: MonotonicClock.nanoseconds() - 1)
        let late = #expect(throws: PluginError.self) { _ = try storage.exists(module: "example.com/m", version: "v1.0.0", call: expired) }
        #expect(late?.code == .timeout, "\(String(describing: late))")
        #expect(!S3StorageTests.logLines(log).contains { $0.contains("example.com") }, "\(S3StorageTests.logLines(log))")
    }

    @Test("cancelled while a part uploads: CANCELLED within seconds, the multipart upload aborted, nothing stored")
    func cancelMidMultipart() throws {
        // Part 2 of 3 is held by the proxy: the save is inside the upload when the host cancels it.
        let (storage, bucket, log) = try storage(#"[{"method": "PUT", "contains": "partNumber=2", "stall": 60, "times": 1}]"#,
                                                 ["partSizeBytes": 5 << 20])
        let zip = StorageConformanceTests.randomBytes(12 << 20, seed: 11)
        let context = CallContext(timeout: 120)
        nonisolated(unsafe) var outcome: PluginError?
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                try StorageConformanceTests.save(storage, "example.com/cancelled", "v1.0.0", zip: zip, call: context)
            } catch {
                outcome = error as? PluginError
            }
            done.signal()
        }
        #expect(waitUntil(timeout: 60) { S3StorageTests.logLines(log).contains { $0.hasPrefix("PUT") && $0.contains("partNumber=2") } })
        #expect(try RGW.uploadsInProgress(bucket) == ["example.com/cancelled/@v/v1.0.0.zip"])
        let cancelledAt = ContinuousClock.now
        context.cancel()
        #expect(done.wait(timeout: .now() + 30) == .success)
        let took = Self.seconds(since: cancelledAt)
        #expect(outcome?.code == .cancelled, "\(String(describing: outcome))")
        #expect(took < 10, "stopped \(took) s after the cancel")
        // Aborted: no upload in progress, no part billed; the .mod and the lock are gone too.
        #expect(try RGW.uploadsInProgress(bucket).isEmpty)
        #expect(try RGW.keys(bucket).isEmpty)
        // Part 3 was never sent.
        #expect(!S3StorageTests.logLines(log).contains { $0.contains("partNumber=3") })
        // The next save, uncancelled, stores the version.
        try StorageConformanceTests.save(storage, "example.com/cancelled", "v1.0.0", zip: Array(zip.prefix(1000)))
        #expect(try StorageConformanceTests.read(storage, "example.com/cancelled", "v1.0.0", .zip) == Array(zip.prefix(1000)))
    }
}
