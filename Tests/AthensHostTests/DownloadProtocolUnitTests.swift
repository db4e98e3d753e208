// The download protocol's file endpoints through the seams, no .so loaded: hits from storage and memory, the sync
// miss (fetch → store → serve), each download mode, the slow-storage breaker, storage failures and a full pool.
// Driven through the Router with in-memory fakes (Support/DownloadHarness.swift); the test's thread is the loop.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// A value handed from one thread to another.
private final class Slot<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    var value: Value? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

@Suite("download protocol over in-memory fakes: files, modes, breaker, failures", .blockingBodies)
struct DownloadProtocolUnitTests {
    static let module = "example.com/a"
    static let files = FakeVersion.honest(module: module, version: "v1.0.0")

    @Test("a stored file is answered on the loop from storage, then from memory without a second open")
    func hitFromStorageThenMemory() throws {
        let h = DownloadHarness()
        h.storage.put(Self.module, "v1.0.0", Self.files)
        for (artifact, bytes, type) in [("info", Self.files.info, "application/json"), ("mod", Self.files.mod, "text/plain; charset=utf-8"),
                                        ("zip", Self.files.zip, "application/zip")] {
            let opens = h.storage.calls("open")
            let first = try #require(h.get("/example.com/a/@v/v1.0.0.\(artifact)"))
            #expect(first.response.status == 200)
            #expect(first.response.bodyBytes == bytes)
            #expect(first.response.header("Content-Type") == type)
            #expect(first.response.cacheResult == "hit")
            #expect(first.response.endpoint == artifact)
            #expect(first.onCaller && first.poolRunning == 0, "a hit never waits for a pool")
            #expect(h.storage.calls("open") == opens + 1)
            let second = try #require(h.get("/example.com/a/@v/v1.0.0.\(artifact)"))
            #expect(second.response.status == 200 && second.response.bodyBytes == bytes && second.onCaller)
            #expect(second.response.cacheResult == "hit")
            #expect(h.storage.calls("open") == opens + 1, "the second \(artifact) came from memory")
        }
        #expect(h.upstream.calls("fetch") == 0)
        #expect(h.download.cache.heldBytes == Self.files.info.count + Self.files.mod.count + Self.files.zip.count)
    }

    @Test("a file larger than the memory cache's file limit is streamed from storage each time and never held")
    func largeFilesAreNotHeld() throws {
        let h = DownloadHarness(cacheFileBytes: 16)
        h.storage.put(Self.module, "v1.0.0", Self.files)
        #expect(Self.files.zip.count > 16)
        for round in 1...2 {
            let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
            #expect(answer.response.status == 200)
            if case .blob = answer.response.body {} else { Issue.record("a large file is sent as the storage blob") }
            #expect(answer.response.bodyBytes == Self.files.zip)
            #expect(h.storage.calls("open") == round)
        }
        #expect(h.download.cache.heldBytes == 0)
    }

    @Test("sync: a miss is fetched on the pool, validated, stored, then served; the next request is a hit")
    func syncMiss() throws {
        let h = DownloadHarness()
        h.upstream.add(Self.module, "v1.0.0")
        let miss = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(miss.response.status == 200)
        #expect(miss.response.bodyBytes == Self.files.zip)
        #expect(miss.response.cacheResult == "miss")
        #expect(!miss.onCaller && miss.poolRunning >= 1, "a miss waits on the download pool, not the loop")
        #expect(h.storage.stored(Self.module, "v1.0.0") == Self.files.ingested)
        #expect(h.upstream.calls("fetch") == 1)
        let hit = try #require(h.get("/example.com/a/@v/v1.0.0.mod"))
        #expect(hit.response.status == 200 && hit.response.bodyBytes == Self.files.mod && hit.onCaller)
        #expect(h.upstream.calls("fetch") == 1)

        // Unknown upstream: 404, nothing stored.
        let unknown = try #require(h.get("/example.com/nothing/@v/v1.0.0.zip"))
        #expect(unknown.response.status == 404)
        #expect(h.storage.keys == ["example.com/a@v1.0.0"])
    }

    @Test("a sync miss stored by someone else while it queued is served from storage without a stash")
    func storedWhileQueued() throws {
        let h = DownloadHarness(workers: 1, queue: 4)
        h.upstream.add(Self.module, "v1.0.0")
        h.upstream.add("example.com/b", "v1.0.0")
        h.upstream.fetchGate.close()
        let busy = h.start("/example.com/a/@v/v1.0.0.zip")
        #expect(waitUntil { h.upstream.fetchGate.held == 1 }, "the one worker is busy")
        let queued = h.start("/example.com/b/@v/v1.0.0.mod")
        #expect(h.pool.load.waiting == 1 && queued.count == 0)
        // Another instance (or an earlier flight) stores it meanwhile.
        h.storage.put("example.com/b", "v1.0.0", .honest(module: "example.com/b", version: "v1.0.0"))
        h.upstream.fetchGate.openGate()
        #expect(busy.wait()?.response.status == 200)
        let answer = try #require(queued.wait())
        #expect(answer.response.status == 200 && answer.response.bodyBytes == Array("module example.com/b\n".utf8))
        #expect(h.upstream.calls("fetch") == 1)
        #expect(h.storage.calls("exists") == 1, "only a's stash asked storage; b was found by the pool's second look")
    }

    @Test("async: 404 at once, then the version is stored in the background and served")
    func asyncMode() throws {
        let h = DownloadHarness(mode: .async)
        h.upstream.add(Self.module, "v1.0.0")
        let first = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(first.response.status == 404)
        #expect(first.response.bodyText.contains("fetching it in the background"))
        #expect(first.onCaller, "answered without waiting for the fetch")
        #expect(waitUntil { h.storage.stored(Self.module, "v1.0.0") != nil })
        #expect(h.settle())
        #expect(h.storage.stored(Self.module, "v1.0.0") == Self.files.ingested)
        #expect(h.upstream.calls("fetch") == 1)
        let later = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(later.response.status == 200 && later.response.bodyBytes == Self.files.zip)
    }

    @Test("redirect: 302 to the same file under downloadURL, escaped; nothing fetched; no downloadURL → 404")
    func redirectMode() throws {
        let h = DownloadHarness(mode: .redirect, downloadURL: "https://proxy.example/base/")
        h.upstream.add("example.com/Big", "v1.0.0")
        let answer = try #require(h.get("/example.com/!big/@v/v1.0.0.zip"))
        #expect(answer.response.status == 302)
        #expect(answer.response.header("Location") == "https://proxy.example/base/example.com/!big/@v/v1.0.0.zip")
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 0)
        #expect(h.storage.keys.isEmpty)

        let without = DownloadHarness(mode: .redirect)
        let notFound = try #require(without.get("/example.com/a/@v/v1.0.0.info"))
        #expect(notFound.response.status == 404)
        #expect(notFound.response.header("Location") == nil)
    }

    @Test("async_redirect: 302 at once and the version is stored in the background")
    func asyncRedirectMode() throws {
        let h = DownloadHarness(mode: .asyncRedirect, downloadURL: "https://proxy.example")
        h.upstream.add(Self.module, "v1.0.0")
        let answer = try #require(h.get("/example.com/a/@v/v1.0.0.mod"))
        #expect(answer.response.status == 302)
        #expect(answer.response.header("Location") == "https://proxy.example/example.com/a/@v/v1.0.0.mod")
        #expect(waitUntil { h.storage.stored(Self.module, "v1.0.0") != nil })
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 1)
    }

    @Test("none: 404 for a miss and nothing fetched; what is stored is still served")
    func noneMode() throws {
        let h = DownloadHarness(mode: .none)
        h.upstream.add(Self.module, "v1.0.0")
        h.storage.put("example.com/stored", "v1.0.0", .honest(module: "example.com/stored", version: "v1.0.0"))
        let miss = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(miss.response.status == 404)
        #expect(miss.response.bodyText.contains("does not fetch"))
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 0)
        #expect(h.storage.stored(Self.module, "v1.0.0") == nil)
        #expect(h.get("/example.com/stored/@v/v1.0.0.mod")?.response.status == 200)
    }

    @Test("after one slow storage open, opens (hits and sync misses) run off the event loop")
    func slowStorageBreaker() throws {
        let h = DownloadHarness()
        for name in ["example.com/a", "example.com/b"] { h.storage.put(name, "v1.0.0", .honest(module: name, version: "v1.0.0")) }
        let quick = h.start("/example.com/a/@v/v1.0.0.info")
        #expect(quick.count == 1, "answered before handle returned: on the loop")
        #expect(!h.download.breaker.isTripped)

        // One open held at the gate for longer than the threshold, on a thread playing the loop.
        h.storage.openGate.close()
        let slow = Slot<PendingResponse>(), slowReturned = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            slow.value = h.start("/example.com/a/@v/v1.0.0.mod")
            slowReturned.signal()
        }
        #expect(waitUntil { h.storage.openGate.held == 1 })
        let heldSince = MonotonicClock.now()
        // A condition on the clock (the open has been held past the threshold), not a sleep standing in for an event.
        #expect(waitUntil { MonotonicClock.now() - heldSince > h.download.breaker.threshold * 2 })
        h.storage.openGate.openGate()
        #expect(slowReturned.wait(timeout: .now() + 30) == .success)
        let slowAnswer = slow.value?.wait()
        #expect(slowAnswer?.response.status == 200)
        #expect(slowAnswer?.onCaller == true, "the slow open itself ran on the loop")
        #expect(h.download.breaker.isTripped)

        // Now the loop hands the open to the pool: handle returns while the open is still held.
        h.storage.openGate.close()
        let next = Slot<PendingResponse>(), nextReturned = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            next.value = h.start("/example.com/b/@v/v1.0.0.mod")
            nextReturned.signal()
        }
        let returned = nextReturned.wait(timeout: .now() + 30) == .success
        #expect(returned, "the loop was held by a slow open although the breaker had tripped")
        #expect(waitUntil { h.storage.openGate.held == 1 })
        if returned { #expect(next.value?.count == 0) }
        h.storage.openGate.openGate()
        if !returned { _ = nextReturned.wait(timeout: .now() + 30) }
        let offLoop = next.value?.wait()
        #expect(offLoop?.response.status == 200)
        #expect(offLoop?.response.bodyBytes == Array("module example.com/b\n".utf8))
        #expect(offLoop?.onCaller == false && (offLoop?.poolRunning ?? 0) >= 1)

        // A sync miss while tripped is fetched in place on that pool thread.
        h.upstream.add("example.com/c", "v1.0.0")
        let miss = try #require(h.get("/example.com/c/@v/v1.0.0.zip"))
        #expect(miss.response.status == 200 && miss.response.cacheResult == "miss")
        #expect(!miss.onCaller && miss.poolRunning >= 1)
        #expect(h.upstream.calls("fetch") == 1)
        // The memory cache still answers on the loop: it makes no storage call.
        #expect(h.start("/example.com/a/@v/v1.0.0.info").count == 1)
    }

    @Test("a failing storage answers the status of DownloadError's table; a storage failure is not a miss", arguments: [
        (PluginError.Code.unavailable, 502), (.invalid, 502), (.timeout, 504), (.internal, 500), (.alreadyExists, 500),
        (.contractViolation, 502), (.notFound, 404),
    ])
    func storageFailures(code: PluginError.Code, status: Int) throws {
        let h = DownloadHarness(mode: .none)
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.upstream.add(Self.module, "v1.1.0")
        h.storage.fail("open", with: code)
        h.storage.fail("list", with: code)
        let file = try #require(h.get("/example.com/a/@v/v1.0.0.mod"))
        #expect(file.response.status == status)
        if status == 500 { #expect(file.response.bodyText == "internal error (see the server log)\n", "no internals sent to clients") }
        let list = try #require(h.get("/example.com/a/@v/list"))
        #expect(list.response.status == status)
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 0)
        #expect(h.storage.keys == ["example.com/a@v1.0.0"], "nothing lost, nothing added")

        // In sync mode too, a failure other than not-found is answered, not fetched over.
        let sync = DownloadHarness()
        sync.upstream.add(Self.module, "v1.0.0")
        sync.storage.fail("open", with: code)
        let answer = try #require(sync.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(answer.response.status == status)
        #expect(sync.upstream.calls("fetch") == (code == .notFound ? 1 : 0))
    }

    @Test("a small stored file that cannot be read whole is a 502, never a 200 cut short, and is not cached")
    func shortBlob() throws {
        let h = DownloadHarness()
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.storage.giveShortBlobs(true)
        let answer = try #require(h.get("/example.com/a/@v/v1.0.0.mod"))
        #expect(answer.response.status == 502)
        #expect(answer.response.bodyText.contains("invalid answer to storage.open"))
        #expect(h.download.cache.heldBytes == 0)
        #expect(h.upstream.calls("fetch") == 0, "a broken stored file is not a miss")
        h.storage.giveShortBlobs(false)
        #expect(h.get("/example.com/a/@v/v1.0.0.mod")?.response.bodyBytes == Self.files.mod)
    }

    @Test("a failing save answers 502, stores nothing and asks storage to drop what it may have left")
    func failingSave() throws {
        let h = DownloadHarness()
        h.upstream.add(Self.module, "v1.0.0")
        h.storage.fail("save", with: .unavailable)
        let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(answer.response.status == 502)
        #expect(h.storage.keys.isEmpty)
        #expect(h.storage.calls("remove") == 1)
        h.storage.fail("save", with: nil)
        #expect(h.get("/example.com/a/@v/v1.0.0.zip")?.response.status == 200, "the next request tries again")
    }

    @Test("a full download pool answers 503 with Retry-After at once; hits still answered; nothing fetched for the refused")
    func fullPool() throws {
        let h = DownloadHarness(workers: 1, queue: 0)
        h.upstream.add(Self.module, "v1.0.0")
        h.upstream.add("example.com/b", "v1.0.0")
        h.storage.put("example.com/stored", "v1.0.0", .honest(module: "example.com/stored", version: "v1.0.0"))
        h.upstream.fetchGate.close()
        let busy = h.start("/example.com/a/@v/v1.0.0.zip")
        #expect(waitUntil { h.upstream.fetchGate.held == 1 }, "the one worker is busy")
        for target in ["/example.com/b/@v/v1.0.0.zip", "/example.com/b/@v/list", "/example.com/b/@latest", "/example.com/b/@v/main.info"] {
            let refused = try #require(h.get(target))
            #expect(refused.response.status == 503, "\(target)")
            #expect(refused.response.header("Retry-After") == "1")
            #expect(refused.onCaller, "refused at once")
        }
        let hit = try #require(h.get("/example.com/stored/@v/v1.0.0.mod"))
        #expect(hit.response.status == 200 && hit.onCaller)
        h.upstream.fetchGate.openGate()
        #expect(busy.wait()?.response.status == 200)
        #expect(h.upstream.calls("fetch") == 1)
        #expect(h.upstream.calls("list") == 0 && h.upstream.calls("resolve") == 0)
        #expect(h.storage.stored("example.com/b", "v1.0.0") == nil)
    }
}
