import Foundation
import Testing
@testable import RequestPath
@testable import PluginHost

/// /readyz with a cross-process single-flight lock configured: ready only when storage and the lock both answer.
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

    @Test("a failing lock backend: 503 naming the lock; storage failing: 503 without asking the lock",
          arguments: [PluginError.Code.unavailable, .timeout])
    func failingLock(code: PluginError.Code) throws {
        let lock = FakeLock(name: "redis")
        let h = DownloadHarness(lock: lock)
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

    @Test("without a lock configured, /readyz asks storage only (the lock is not required)")
    func noLock() {
        #expect(DownloadHarness().get("/readyz")?.response.status == 200)
    }
}
