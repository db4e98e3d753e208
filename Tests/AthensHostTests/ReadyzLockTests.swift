import Foundation
import Testing
@testable import RequestPath
@testable import PluginHost

/// /readyz with a cross-process single-flight lock configured: storage must answer; a lock that does not answer
/// degrades the answer (200, said in the body) unless the manifest's lock.requiredForReadiness makes it 503.
@Suite("/readyz checks the lock")
struct ReadyzLockTests {
    @Test("a working lock: 200, probed by one acquire (no wait) and its release, nothing left held")
    func healthyLock() throws {
        let lock = FakeLock()
        let h = DownloadHarness(lock: lock)
        let ready = try #require(h.get("/readyz"))
        #expect(ready.response.status == 200 && !ready.onCaller)
        #expect(lock.calls("acquire") == 1 && lock.calls("release") == 1)
        #expect(lock.keys == ["test:readyz"] && lock.held == 0)
    }

    @Test("the probe key held elsewhere (BUSY) is an answer: 200")
    func busyIsHealthy() throws {
        let lock = FakeLock()
        let h = DownloadHarness(lock: lock)
        guard case .held = try lock.acquire(key: "test:readyz", leaseMilliseconds: 60_000, waitMilliseconds: 0) else {
            throw TestFailure("could not hold the key")
        }
        #expect(h.get("/readyz")?.response.status == 200)
        #expect(lock.calls("release") == 0)
    }

    @Test("a failing lock backend, by default: 200 saying the lock is degraded (the instance still serves, local single-flight)",
          arguments: [PluginError.Code.unavailable, .timeout])
    func failingLockDegrades(code: PluginError.Code) throws {
        let lock = FakeLock(name: "redis")
        let h = DownloadHarness(lock: lock)
        lock.fail("acquire", with: code)
        let answer = try #require(h.get("/readyz"))
        #expect(answer.response.status == 200)
        let body = answer.response.bodyText
        #expect(body.hasPrefix("ready (degraded): lock redis: unavailable (local single-flight)"), "\(body)")
        #expect(lock.held == 0)
        lock.fail("acquire", with: nil)
        let healthy = try #require(h.get("/readyz"))
        #expect(healthy.response.status == 200 && healthy.response.bodyText == "ready\n")
        // Storage failing is never degraded: 503, without asking the lock.
        h.storage.fail("exists", with: .unavailable)
        let before = lock.calls("acquire")
        #expect(h.get("/readyz")?.response.status == 503)
        #expect(lock.calls("acquire") == before)
    }

    @Test("a failing lock backend with lock.requiredForReadiness: 503 naming the lock; storage failing: 503 without asking the lock",
          arguments: [PluginError.Code.unavailable, .timeout])
    func failingRequiredLock(code: PluginError.Code) throws {
        let lock = FakeLock(name: "redis")
        let h = DownloadHarness(lock: lock, lockRequired: true)
        lock.fail("acquire", with: code)
        let answer = try #require(h.get("/readyz"))
        #expect(answer.response.status == 503)
        let body = answer.response.bodyText
        #expect(body.contains("not ready: lock redis"), "\(body)")
        lock.fail("acquire", with: nil)
        #expect(h.get("/readyz")?.response.status == 200)
        h.storage.fail("exists", with: .unavailable)
        let before = lock.calls("acquire")
        #expect(h.get("/readyz")?.response.status == 503)
        #expect(lock.calls("acquire") == before)
    }

    @Test("a lock whose release fails after the acquire: degraded by default, 503 when required")
    func failingRelease() throws {
        for required in [false, true] {
            let lock = FakeLock(name: "redis")
            let h = DownloadHarness(lock: lock, lockRequired: required)
            lock.fail("release", with: .unavailable)
            let answer = try #require(h.get("/readyz"))
            #expect(answer.response.status == (required ? 503 : 200), "required: \(required)")
            #expect(answer.response.bodyText.contains("lock redis"), "\(answer.response.bodyText)")
        }
    }

    @Test("the built athens with RedisLock on a port nobody listens on: /readyz 200 degraded by default, 503 with requiredForReadiness",
          arguments: [false, true])
    func redisDownEndToEnd(required: Bool) throws {
        let work = TestSupport.makeTemporaryDirectory("readyz-lock")
        defer { TestSupport.removeDirectory(work) }
        // A port that was free a moment ago: connecting is refused, as when Redis is down.
        let closed = try TestSupport.freePort()
        let server = try AthensServer(manifest: """
        {"spoolDirectory": "\(work)", "accessLog": false,
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/storage"}},
         "stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "RedisLock", "requiredForReadiness": \(required),
                                 "config": {"url": "redis://127.0.0.1:\(closed)/0", "connectTimeoutMilliseconds": 500}}}]}}
        """, directory: work)
        defer { server.stop() }
        let ready = try server.get("/readyz")
        let body = String(decoding: ready.body, as: UTF8.self)
        #expect(ready.status == (required ? 503 : 200), "\(body)")
        #expect(body.contains(required ? "not ready: lock RedisLock" : "ready (degraded): lock RedisLock: unavailable (local single-flight)"), "\(body)")
        #expect(try server.get("/healthz").status == 200)
    }

    @Test("without a lock configured, /readyz asks storage only (the lock is not required)")
    func noLock() {
        #expect(DownloadHarness().get("/readyz")?.response.status == 200)
    }
}
