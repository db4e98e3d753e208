// A client that hangs up while its request waits for a stash leaves the flight at once (ClientHangUp.swift,
// Connection.probeHalfClose): the real HTTP server and stash chain over the fakes, a fetch held at a gate that stops
// when its context is cancelled, clients on raw sockets. Then the same with the built athens and the C fixture.
// Synchronised on conditions; the "not cancelled" checks give the server a second to get it wrong.
import Foundation
import Glibc
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("client hang-ups reach the stash", .blockingBodies)
struct ClientHangUpTests {
    /// HTTPServer → Router → DownloadProtocol → StashChain (singleflight, pool) over a FakeStorage and a FakeFetcher
    /// whose fetches wait at a closed gate until it opens or their context is cancelled.
    final class Rig: @unchecked Sendable {
        let storage = FakeStorage()
        let fetcher = FakeFetcher(name: "public")
        let chain: StashChain
        let pool = WorkerPool(name: "download", threads: 4, capacity: 8)
        let background = WorkerPool(name: "background", threads: 2, capacity: 8)
        let server: HTTPServer
        static let zip = "/example.com/slow/@v/v1.0.0.zip"

        init(mode: DownloadMode = .sync, grace: Double = 0) throws {
            fetcher.stopsWhenCancelled = true
            fetcher.fetchGate.close()
            fetcher.add("example.com/slow", "v1.0.0")
            var policy = DownloadPolicy(mode: mode, downloadURL: "http://127.0.0.1:9/elsewhere")
            policy.fetchersByName = ["public": fetcher]
            policy.defaultFetchers = [fetcher]
            let fetching = FetchingStasher(policy: policy, storage: storage, spoolDirectory: NSTemporaryDirectory())
            chain = StashChain(wrappers: [.singleflight, .pool(workers: 2)], timeout: 60, fetching: fetching, callers: 6, queue: 8,
                               abandonGrace: grace)
            let download = DownloadProtocol(storage: storage, policy: policy, stasher: chain.stasher, pool: pool, background: background,
                                            lists: ListCache(ttl: 60), cache: ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 1 << 16))
            var settings = ServerSettings()
            settings.listen = "127.0.0.1:0"
            settings.threads = 1
            server = HTTPServer(settings: settings, handler: Router(download: download, sumdb: nil, version: "test"))
            try server.bind()
            server.start()
            // Its loops run for the life of the process and hold it unowned: it must never be freed.
            _ = Unmanaged.passRetained(server)
        }

        deinit {
            fetcher.fetchGate.openGate()
            server.beginShutdown()
            chain.retire()
            pool.retire()
            background.retire()
        }

        /// A client that has sent `GET target` (HTTP/1.`minor`).
        func send(_ target: String = Rig.zip, minor: Int = 1) throws -> RawClient {
            let client = try RawClient(port: server.port)
            client.send("GET \(target) HTTP/1.\(minor)\r\nHost: 127.0.0.1\r\n\r\n")
            return client
        }

        /// The flight of the slow version (joining it without waiting).
        var flight: PendingStash { chain.flights[0].start(module: "example.com/slow", version: "v1.0.0", context: CallContext(requestID: "")) }

        var zipBytes: [UInt8] { FakeVersion.honest(module: "example.com/slow", version: "v1.0.0").zip }
    }

    @Test("the only waiting client hangs up: with grace 0 the fetch's context is cancelled at once; nothing stored, fd freed")
    func lastWaiterHangsUp() throws {
        let rig = try Rig()
        var client: RawClient? = try rig.send()
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 && rig.flight.waiterCount == 1 })
        let left = MonotonicClock.nanoseconds()
        client = nil // close(): a FIN; the server's probe gets a reset
        #expect(waitUntil(timeout: 10) { rig.fetcher.cancelledAt != nil }, "still fetching after its client left")
        let latency = Double(Int64(rig.fetcher.cancelledAt ?? 0) - Int64(left)) / 1e6
        print("fetch cancelled \(latency) ms after its only client hung up")
        #expect(latency < 2000)
        #expect(waitUntil { rig.chain.flights[0].running == 0 && rig.server.connectionCount == 0 && rig.pool.load.running == 0 })
        #expect(rig.storage.keys.isEmpty)
        _ = client
    }

    @Test("a client that resets its connection (SO_LINGER 0) leaves at once too")
    func resetLeaves() throws {
        let rig = try Rig()
        var client: RawClient? = try rig.send()
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 && rig.flight.waiterCount == 1 })
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(client!.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        client = nil
        #expect(waitUntil(timeout: 10) { rig.fetcher.cancelledAt != nil })
        #expect(waitUntil { rig.server.connectionCount == 0 })
        _ = client
    }

    @Test("one of two waiting clients hangs up: no cancel, and the other gets the zip")
    func oneOfTwoHangsUp() throws {
        let rig = try Rig()
        var first: RawClient? = try rig.send()
        let second = try rig.send()
        #expect(waitUntil { rig.flight.waiterCount == 2 })
        first = nil
        #expect(waitUntil { rig.flight.waiterCount == 1 && rig.server.connectionCount == 1 }, "the hang-up was not noticed")
        #expect(!waitUntil(timeout: 1) { rig.fetcher.cancelledAt != nil }, "cancelled while a client still waits")
        rig.fetcher.fetchGate.openGate()
        let answer = try #require(second.readResponse(timeout: 30))
        #expect(answer.status == 200 && answer.body == rig.zipBytes)
        #expect(rig.storage.keys == ["example.com/slow@v1.0.0"])
        _ = first
    }

    @Test("async_redirect and async: the background fetch goes on after every client hung up", arguments: [DownloadMode.asyncRedirect, .async])
    func asyncModesKeepFetching(mode: DownloadMode) throws {
        let rig = try Rig(mode: mode)
        var reader: RawClient? = try rig.send()
        #expect(reader?.readResponse()?.status == (mode == .async ? 404 : 302))
        var leaver: RawClient? = try rig.send() // hangs up without reading its answer
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 })
        reader = nil
        leaver = nil
        #expect(waitUntil { rig.server.connectionCount == 0 })
        #expect(!waitUntil(timeout: 1) { rig.fetcher.cancelledAt != nil }, "a kept stash was cancelled")
        rig.fetcher.fetchGate.openGate()
        #expect(waitUntil(timeout: 30) { rig.storage.keys == ["example.com/slow@v1.0.0"] })
        _ = (reader, leaver)
    }

    @Test("a client that half-closes (shutdown SHUT_WR) but still reads gets its answer; HTTP/1.1 sees a 100 first",
          arguments: [1, 0])
    func halfCloseStillAnswered(minor: Int) throws {
        let rig = try Rig()
        let client = try rig.send(minor: minor)
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 && rig.flight.waiterCount == 1 })
        shutdown(client.fd, Int32(SHUT_WR))
        if minor == 1 {
            let interim = try #require(client.readResponse(timeout: 10), "no probe")
            #expect(interim.status == 100 && interim.body.isEmpty)
        }
        #expect(!waitUntil(timeout: 1) { rig.fetcher.cancelledAt != nil }, "a half-closed client was taken for gone")
        #expect(rig.flight.waiterCount == 1)
        rig.fetcher.fetchGate.openGate()
        let answer = try #require(client.readResponse(timeout: 30))
        #expect(answer.status == 200 && answer.body == rig.zipBytes)
        #expect(client.isClosed(), "the server closes after answering a half-closed client")
    }

    @Test("pipelined requests behind a waiting one, and keep-alive after it, are not hang-ups")
    func pipelinedAndKeepAlive() throws {
        let rig = try Rig()
        rig.storage.put("example.com/stored", "v1.0.0", .honest(module: "example.com/stored", version: "v1.0.0"))
        let client = try RawClient(port: rig.server.port)
        client.send("GET \(Rig.zip) HTTP/1.1\r\nHost: a\r\n\r\nGET /example.com/stored/@v/v1.0.0.mod HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(waitUntil { rig.fetcher.fetchGate.held == 1 })
        #expect(!waitUntil(timeout: 1) { rig.fetcher.cancelledAt != nil })
        rig.fetcher.fetchGate.openGate()
        let zip = try #require(client.readResponse(timeout: 30)), mod = try #require(client.readResponse(timeout: 30))
        #expect(zip.status == 200 && zip.body == rig.zipBytes)
        #expect(mod.status == 200 && String(decoding: mod.body, as: UTF8.self) == "module example.com/stored\n")
        client.send("GET /example.com/slow/@v/v1.0.0.info HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(client.readResponse(timeout: 30)?.status == 200, "the connection was kept alive")
        #expect(rig.fetcher.calls("fetch") == 1)
    }

    @Test("a list request whose client hangs up has its plugin calls cancelled")
    func listCancelled() throws {
        let rig = try Rig()
        rig.fetcher.listGate.close()
        var client: RawClient? = try rig.send("/example.com/slow/@v/list")
        #expect(waitUntil { rig.fetcher.listGate.held == 1 })
        client = nil
        #expect(waitUntil(timeout: 10) { rig.fetcher.cancelledAt != nil }, "the list went on after its client left")
        #expect(waitUntil { rig.pool.load.running == 0 && rig.server.connectionCount == 0 })
        _ = client
    }

    @Test("ClientHangUp: a wait ends when the client goes, from another thread; a gone client's wait ends at once")
    func signalEndsWait() {
        let pending = PendingStash(), client = ClientHangUp()
        let signalled = DispatchSemaphore(value: 0)
        Thread { signalled.wait(); client.signal() }.start()
        signalled.signal()
        guard case .clientLeft = pending.wait(timeout: 30, client: client) else { Issue.record("not ended by the hang-up"); return }
        #expect(client.observe {} == nil, "a gone client takes no observers")
        guard case .clientLeft = pending.wait(timeout: 30, client: client) else { Issue.record("a gone client waited"); return }
        guard case .timedOut = pending.wait(timeout: 0.01, client: ClientHangUp()) else { Issue.record("no timeout"); return }
        pending.end(.success(()))
        guard case .ended = pending.wait(timeout: 30, client: client) else { Issue.record("an ended stash is its outcome first"); return }
        #expect(ClientHangUp.current == nil)
        ClientHangUp.with(client) { #expect(ClientHangUp.current === client) }
        #expect(ClientHangUp.current == nil)
    }
}

/// The built athens with `stash.abandonGraceSeconds: 0` and the context-aware C fetcher (ctx_fetcher.c).
@Suite("client hang-ups in the server (C fixture)", .blockingBodies)
struct ClientHangUpServerTests {
    @Test("a context-aware fetcher is cancelled within 100 ms of its last waiting client hanging up (bound 2 s)")
    func cancelledAfterHangUp() throws {
        let path = try CallContextTests.built.get().v11
        let marker = CallContextTests.directory + "/marker-\(UUID().uuidString)"
        let server = try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage"}, "stash": {"timeoutSeconds": 60, "abandonGraceSeconds": 0},
             "fetchers": [{"name": "ctx", "plugin": "\(path)", "config": {"marker": "\(marker)"}}]}
            """, directory: CallContextTests.directory)
        defer { server.stop() }
        let lines = { ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        var client: RawClient? = try HostServicesServerTests.send(server, "/example.com/slow/@v/v1.0.0.zip", request: "req-hangup-1")
        #expect(waitUntil { lines().contains { $0.hasPrefix("fetch entry=fetch_ctx module=example.com/slow request=req-hangup-1") } }, "\(lines())")
        let left = MonotonicClock.nanoseconds()
        client = nil
        #expect(waitUntil(timeout: 10) { lines().contains { $0.hasPrefix("cancelled at=") } }, "not cancelled: \(lines())")
        let cancelled = try #require(lines().first { $0.hasPrefix("cancelled at=") })
        // CLOCK_MONOTONIC is system-wide: the fixture's time and ours compare.
        let at = try #require(UInt64(cancelled.split(separator: " ")[1].dropFirst(3)))
        let latency = Double(Int64(at) - Int64(left)) / 1e6
        print("C fixture cancelled \(latency) ms after its last client hung up")
        #expect(latency < 2000)
        #expect(cancelled.hasSuffix("request=req-hangup-1"))
        #expect(try server.get("/example.com/slow/@v/list").status != 0, "the server still answers")
        _ = client
    }
}
