// ABI 1.1's per-call contexts from the host side, with a context-aware C fetcher (Tests/Fixtures/CPlugins/ctx_fetcher.c)
// under the real stash chain: who cancels a fetch and when, what deadline and request id the plugin sees, and that a
// 1.0 build of the same fixture gets the 1.0 entries. Synchronised on the fixture's marker lines; the short stash
// timeouts are the callers giving up (what is tested), and the latency bound (< 1 s) is loose on purpose.
import Foundation
import PluginABI
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("per-call contexts: cancellation, deadlines, request ids (C fixture)", .blockingBodies)
struct CallContextTests {
    static let directory = TestSupport.makeTemporaryDirectory("ctx")
    static let built = Result { () throws -> (v11: String, v10: String) in
        (try TestSupport.compileCPlugin("ctx_fetcher.c", into: directory, name: "libCtxFetcher.so"),
         try TestSupport.compileCPlugin("ctx_fetcher.c", defines: ["ABI10_ONLY"], into: directory, name: "libCtxFetcher10.so"))
    }

    /// The fixture under a `singleflight` + `pool` chain over a fake storage.
    final class Rig: @unchecked Sendable {
        let marker = CallContextTests.directory + "/marker-\(UUID().uuidString)"
        let storage = FakeStorage()
        let fetcher: FetcherPlugin
        let chain: StashChain

        init(_ path: String, timeout: Double = 0.3, grace: Double = 0, fetchTimeout: Double? = nil) throws {
            fetcher = try FetcherPlugin(library: PluginLibrary(path: path), configJSON: #"{"marker": "\#(marker)"}"#)
            let fetching = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: NSTemporaryDirectory())
            chain = StashChain(wrappers: [.singleflight, .pool(workers: 2)], timeout: timeout, fetching: fetching, callers: 4, queue: 8,
                               abandonGrace: grace, fetchTimeout: fetchTimeout)
        }

        deinit { chain.retire() }

        var lines: [String] { ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        /// The first line starting with `event`, as key=value pairs.
        func event(_ event: String) -> [String: String]? {
            guard let line = lines.first(where: { $0.hasPrefix(event + " ") }) else { return nil }
            return Dictionary(line.split(separator: " ").dropFirst().compactMap { pair in
                pair.firstIndex(of: "=").map { (String(pair[..<$0]), String(pair[pair.index(after: $0)...])) }
            }, uniquingKeysWith: { a, _ in a })
        }

        /// A sync caller on this thread, working for `request`: the status it gets (200 or the error's).
        func stash(_ module: String, request: String, keep: Bool = false) -> Int {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            do throws(DownloadError) {
                try chain.stasher.stash(module: module, version: "v1.0.0", keep: keep)
                return 200
            } catch {
                return error.status
            }
        }
    }

    @Test("create_with_host gets the host's services: name, version, minor 1, the sizes it allocates")
    func hostServices() throws {
        let rig = try Rig(try Self.built.get().v11)
        let create = try #require(rig.event("create"), "\(rig.lines)")
        #expect(create == ["host": "athens", "version": HostServices.version, "minor": "1", "reader": "24", "sink": "16", "error": "512"])
        #expect(HostServices.host(for: "CtxFetcher") == HostServices.host(for: "CtxFetcher"), "one ath_host per plugin, for the process")
    }

    @Test("the last waiter times out: the fetch is cancelled within 1 s, nothing stored; it saw the request id and deadline")
    func cancelledWhenLastWaiterLeaves() throws {
        let rig = try Rig(try Self.built.get().v11, fetchTimeout: 120)
        let before = MonotonicClock.nanoseconds()
        #expect(rig.stash("example.com/slow", request: "req-cancel-1") == 504)
        let left = MonotonicClock.nanoseconds()
        #expect(waitUntil(timeout: 10) { rig.event("cancelled") != nil }, "\(rig.lines)")
        let fetch = try #require(rig.event("fetch"))
        #expect(fetch["entry"] == "fetch_ctx" && fetch["request"] == "req-cancel-1")
        let deadline = try #require(fetch["deadline"].flatMap { UInt64($0) })
        #expect(deadline > before + 119_000_000_000 && deadline < left + 121_000_000_000, "the fetch deadline is 120 s from the start")
        let cancelled = try #require(rig.event("cancelled"))
        #expect(cancelled["request"] == "req-cancel-1")
        let seen = try #require(cancelled["at"].flatMap { UInt64($0) })
        let latency = Double(Int64(seen) - Int64(left)) / 1e6
        print("cancel seen \(latency) ms after the last waiter left")
        #expect(latency < 1000, "the plugin saw the cancel \(latency) ms after its last waiter left")
        #expect(waitUntil { rig.chain.flights[0].running == 0 && rig.chain.pools[0].load == (0, 0) })
        #expect(rig.storage.keys.isEmpty)
    }

    @Test("while one waiter remains the fetch goes on; when it leaves too, it is cancelled")
    func secondWaiterKeepsItRunning() throws {
        let rig = try Rig(try Self.built.get().v11)
        let other = rig.chain.outermost.start(module: "example.com/slow", version: "v1.0.0")
        other.attach(keep: false)
        #expect(rig.stash("example.com/slow", request: "req-a") == 504)
        #expect(rig.chain.joins == 1)
        #expect(waitUntil(timeout: 1) { rig.event("cancelled") != nil } == false, "cancelled with a waiter left: \(rig.lines)")
        other.detach(grace: 0)
        #expect(waitUntil(timeout: 10) { rig.event("cancelled") != nil }, "\(rig.lines)")
        #expect(other.wait(timeout: 30).map { if case let .failure(error) = $0 { error.status } else { 200 } } == 503)
    }

    @Test("a retry within the grace period joins the flight, and the fetch is not cancelled")
    func retryWithinGrace() throws {
        let rig = try Rig(try Self.built.get().v11, timeout: 0.3, grace: 3600)
        #expect(rig.stash("example.com/slow", request: "req-1") == 504)
        #expect(rig.stash("example.com/slow", request: "req-2") == 504)
        #expect(rig.chain.joins == 1)
        let flight = rig.chain.outermost.start(module: "example.com/slow", version: "v1.0.0")
        #expect(flight.context.wasCancelled == false)
        #expect(rig.event("cancelled") == nil)
        flight.context.cancel() // let the fixture go
        #expect(waitUntil(timeout: 10) { rig.event("cancelled") != nil })
    }

    @Test("an async (kept) stash outlives its waiter; the plugin stops itself at the fetch deadline")
    func keptUntilDeadline() throws {
        let rig = try Rig(try Self.built.get().v11, fetchTimeout: 1.5)
        #expect(rig.stash("example.com/slow", request: "req-async", keep: true) == 504)
        #expect(waitUntil(timeout: 20) { rig.event("timeout") != nil }, "\(rig.lines)")
        #expect(rig.event("cancelled") == nil, "a kept stash was cancelled")
        let fetch = try #require(rig.event("fetch")), stopped = try #require(rig.event("timeout"))
        #expect(try #require(UInt64(stopped["at"] ?? "")) >= (try #require(UInt64(fetch["deadline"] ?? ""))))
        #expect(waitUntil { rig.chain.flights[0].running == 0 })
        #expect(rig.storage.keys.isEmpty)
    }

    @Test("a 1.0 build gets create and fetch (no context), and is stopped by a refusing sink once cancelled")
    func abi10GetsTheOldEntries() throws {
        let rig = try Rig(try Self.built.get().v10)
        #expect(rig.fetcher.library.descriptor.create_with_host == nil && rig.fetcher.library.fetcherMethods?.fetch_ctx == nil)
        #expect(rig.lines.first == "create10")
        #expect(rig.stash("example.com/slow", request: "req-10") == 504)
        let left = MonotonicClock.nanoseconds()
        #expect(waitUntil(timeout: 10) { rig.event("refused") != nil }, "\(rig.lines)")
        #expect(rig.event("fetch")?["entry"] == "fetch")
        let refused = try #require(rig.event("refused")?["at"].flatMap { UInt64($0) })
        #expect(Double(Int64(refused) - Int64(left)) / 1e6 < 1000)
        #expect(waitUntil { rig.chain.flights[0].running == 0 })
        #expect(rig.storage.keys.isEmpty)
    }

    @Test("a plugin's message is bounded (cut at a character, marked), repaired, and stays one line in either log format")
    func logMessagesBounded() {
        let long = String(repeating: "€", count: 2000) // 6000 bytes: the cut at 4096 falls between a character's bytes
        let cut = long.withCString { HostServices.bounded($0) }
        #expect(cut.hasSuffix("…") && cut.dropLast().allSatisfy { $0 == "€" })
        #expect(cut.utf8.count <= HostServices.messageLimit + 3)
        let invalid: [CChar] = [0x61, -1, 0x62, 0]
        #expect(HostServices.bounded(invalid) == "a\u{FFFD}b")
        for json in [false, true] {
            let line = Log.line([("msg", "one\ntwo\u{7}", true), ("plugin", "P", true)], json: json)
            #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"), "\(line)")
        }
        #expect(HostServices.level(ATH_LOG_WARNING) == .warning && HostServices.level(ath_log_level(rawValue: 99)) == .debug)
    }

    @Test("the stash calls fetch, exists and save with one context: the caller's request id and the fetch deadline")
    func stashPassesItsContext() throws {
        let storage = FakeStorage(), fetcher = FakeFetcher()
        fetcher.add("example.com/a", "v1.0.0")
        let fetching = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: NSTemporaryDirectory())
        let chain = StashChain(wrappers: [.singleflight], timeout: 30, fetching: fetching, callers: 2, queue: 4, fetchTimeout: 90)
        defer { chain.retire() }
        let start = MonotonicClock.nanoseconds()
        CrashReporter.setRequest("req-ctx-9")
        defer { CrashReporter.setRequest("") }
        try chain.stasher.stash(module: "example.com/a", version: "v1.0.0")
        let fetch = try #require(fetcher.lastCall("fetch")), save = try #require(storage.lastCall("save"))
        #expect(fetch === save && storage.lastCall("exists") === fetch)
        #expect(fetch.requestID == "req-ctx-9")
        let deadline = try #require(fetch.deadline)
        #expect(deadline >= start + 90_000_000_000 && deadline < MonotonicClock.nanoseconds() + 90_000_000_000)
        #expect(!fetch.wasCancelled, "a stash that ended is not cancelled when its caller leaves")
        #expect(StashChain.defaultFetchTimeout(600) == 2400 && StashChain.defaultFetchTimeout(10) == 600)
    }

    @Test("CallContext: cancel from another thread, deadline, and its ath_call")
    func contextBasics() throws {
        let context = CallContext(requestID: "req-x", timeout: 3600)
        #expect(!context.isCancelled)
        context.withCCall { call in
            #expect(call.pointee.struct_size == 40 && call.pointee.reserved == 0)
            #expect(String(cString: call.pointee.request_id) == "req-x")
            #expect(call.pointee.cancelled?(call) == 0)
            let done = DispatchSemaphore(value: 0)
            Thread { context.cancel(); done.signal() }.start()
            done.wait()
            #expect(call.pointee.cancelled?(call) == 1)
        }
        #expect(CallContext(requestID: "", deadline: MonotonicClock.nanoseconds() - 1).isCancelled, "past its deadline")
        #expect(!CallContext(requestID: "").isCancelled)
    }
}

/// The same fixture in the built athens: its log lines through `ath_host.log`, and shutdown past the timeout.
@Suite("host services and shutdown cancellation in the server (C fixture)", .blockingBodies)
struct HostServicesServerTests {
    static func server(marker: String) throws -> AthensServer {
        let path = try CallContextTests.built.get().v11
        return try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage"}, "shutdownTimeoutSeconds": 0.5, "stash": {"timeoutSeconds": 60},
             "fetchers": [{"name": "ctx", "plugin": "\(path)", "config": {"marker": "\(marker)"}}]}
            """, directory: CallContextTests.directory)
    }

    /// Sends one GET with an Athens-Request-ID and returns the connection (the answer may not come yet).
    static func send(_ server: AthensServer, _ path: String, request: String) throws -> RawClient {
        let client = try RawClient(port: server.port)
        client.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAthens-Request-ID: \(request)\r\n\r\n")
        return client
    }

    @Test("a plugin's log lines are the host's: plugin name, level, the request id of the call, one bounded line")
    func pluginLogs() throws {
        let marker = CallContextTests.directory + "/marker-\(UUID().uuidString)"
        let server = try Self.server(marker: marker)
        defer { server.stop() }
        let client = try Self.send(server, "/example.com/log/@v/v1.0.0.info", request: "req-log-7")
        #expect(client.readResponse(timeout: 30)?.status == 404)
        var lines: [String] { server.process.stderr.split(separator: "\n").map(String.init) }
        #expect(waitUntil { lines.contains { $0.contains("request_id=req-log-7") && $0.contains("plugin=CtxFetcher") } }, "\(server.process.stderr)")
        let line = try #require(lines.first { $0.contains("plugin=CtxFetcher") && $0.contains("request_id=req-log-7") })
        #expect(line.contains("level=info"))
        #expect(line.contains(#"msg="fetch log\nsecond\tline xxx"#), "newline and tab escaped: \(line.prefix(200))")
        #expect(line.contains("…"), "cut")
        #expect(line.utf8.count < HostServices.messageLimit + 300, "bounded: \(line.utf8.count) bytes")
        #expect(!lines.contains { $0.hasPrefix("second") })
        // Logged during create: no request in flight, so none named.
        let created = try #require(lines.first { $0.contains("created, marker file set") })
        #expect(created.contains("level=warning") && created.contains("plugin=CtxFetcher") && !created.contains("request_id="))
    }

    @Test("SIGTERM with a fetch still running: past the shutdown timeout its context is cancelled, then athens exits 0")
    func cancelledAtShutdown() throws {
        let marker = CallContextTests.directory + "/marker-\(UUID().uuidString)"
        let server = try Self.server(marker: marker)
        let client = try Self.send(server, "/example.com/slow/@v/v1.0.0.info", request: "req-stop-1")
        let lines = { ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        #expect(waitUntil { lines().contains { $0.hasPrefix("fetch entry=fetch_ctx module=example.com/slow request=req-stop-1") } }, "\(lines())")
        let pid = server.process.process.processIdentifier
        let signalled = MonotonicClock.nanoseconds()
        kill(pid, SIGTERM)
        #expect(waitUntil(timeout: 20) { !server.process.process.isRunning }, "athens still running after SIGTERM")
        server.stop()
        #expect(server.process.process.terminationStatus == 0)
        let cancelled = try #require(lines().first { $0.hasPrefix("cancelled at=") && $0.hasSuffix("request=req-stop-1") }, "\(lines())")
        // Not before the shutdown timeout (0.5 s): in-flight work gets its chance first. (CLOCK_MONOTONIC is system-wide.)
        let at = try #require(UInt64(cancelled.split(separator: " ")[1].dropFirst(3)))
        #expect(at >= signalled + 450_000_000, "cancelled \(Double(Int64(at) - Int64(signalled)) / 1e6) ms after SIGTERM")
        _ = client
    }
}
