import Foundation
import Testing

/// Operations and hardening: metrics, request logs, auth, graceful shutdown, reload, slow clients,
/// hostile input and injected faults, against the built athens with real upstream processes.
@Suite("operations and hardening", .blockingBodies, .serialized)
final class OperationsTests {
    let fixture: FixtureUpstream
    var work: String { fixture.work }
    var tree: String { fixture.tree }
    var upstream: FakeUpstream { fixture.upstream }
    let cFetcher: String
    let cStorage: String

    init() throws {
        fixture = try FixtureUpstream("ops")
        cFetcher = try TestSupport.compileCPlugin("test_fetcher.c", into: fixture.work, name: "libCTestFetcher.so")
        cStorage = try TestSupport.compileCPlugin("test_storage.c", into: fixture.work, name: "libCTestStorage.so")
    }

    func athens(_ body: String) throws -> AthensServer {
        try AthensServer(manifest: "{\"spoolDirectory\": \"\(work)\", " + body + "}", directory: work)
    }

    var proxyFetcher: String {
        #"{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\#(upstream.url)", "timeoutSeconds": 5}}"#
    }

    @Test("/metrics counts requests, cache hits and misses, fetches, and exposes pool gauges")
    func metrics() throws {
        let server = try athens(#""storage": {"plugin": "MemoryStorage"}, "fetchers": [\#(proxyFetcher)], "accessLog": false"#)
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        #expect(try server.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        #expect(try server.get("/example.com/nowhere/@v/v1.0.0.zip").status == 404)
        let expected: [(name: String, labels: String, value: Double)] = [
            ("athens_http_requests_total", #"endpoint="zip",code="200""#, 2),
            ("athens_http_requests_total", #"endpoint="zip",code="404""#, 1),
            ("athens_cache_requests_total", #"artifact="zip",result="hit""#, 1),
            ("athens_cache_requests_total", #"artifact="zip",result="miss""#, 1),
            ("athens_fetches_total", #"fetcher="u",result="ok""#, 1),
            ("athens_fetches_total", #"fetcher="u",result="not_found""#, 1),
            ("athens_http_request_duration_seconds_count", #"endpoint="zip""#, 3),
            ("athens_pool_queue_depth", #"pool="download""#, 0),
            ("athens_singleflight_joins_total", "", 0),
        ]
        // A request is counted after its answer is written, on its connection's event loop; /metrics may be answered
        // by another loop first, so poll until the counts settle instead of reading once.
        var r = try server.get("/metrics")
        var text = String(decoding: r.body, as: UTF8.self)
        _ = try waitUntil(timeout: 10) {
            r = try server.get("/metrics")
            text = String(decoding: r.body, as: UTF8.self)
            return expected.allSatisfy { metric(text, $0.name, labels: $0.labels) == $0.value }
        }
        #expect(r.status == 200)
        #expect(r.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        for sample in expected {
            #expect(metric(text, sample.name, labels: sample.labels) == sample.value, "\(sample.name){\(sample.labels)}")
        }
        // Every sample line is `name{labels} number`.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2 && Double(parts[1]) != nil && parts[0].hasPrefix("athens_"), "bad sample: \(line)")
        }
    }

    @Test("one log line per request with the request id, honoured and echoed; credentials never logged")
    func requestLogs() throws {
        let secretURL = upstream.url.replacingOccurrences(of: "http://", with: "http://robot:hunter2secret@")
        let server = try athens("""
        "storage": {"plugin": "MemoryStorage"}, "logFormat": "json",
        "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(secretURL)", "timeoutSeconds": 2}}]
        """)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.send("GET /example.com/hello/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nAthens-Request-ID: trace-42.a\r\n\r\n")
        let r = try #require(client.readResponse())
        #expect(r.status == 200)
        #expect(r.headers["athens-request-id"] == "trace-42.a")
        let generated = try server.get("/example.com/nowhere/@v/list")
        let id = try #require(generated.headers["athens-request-id"])
        #expect(!id.isEmpty && id != "trace-42.a")
        upstream.stop()
        #expect(try server.get("/example.com/dep/@v/v1.0.0.zip").status == 502)
        // The access log line is written after the answer: wait for all three requests' lines.
        func requestLines() -> [[String: Any]] {
            server.process.stderr.split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["msg"] as? String == "request" }
        }
        #expect(waitUntil { requestLines().count >= 3 }, "\(server.process.stderr)")
        let requests = requestLines()
        let traced = try #require(requests.first { $0["request_id"] as? String == "trace-42.a" })
        #expect(traced["status"] as? Int == 200)
        #expect(traced["path"] as? String == "/example.com/hello/@v/v1.0.0.info")
        #expect(traced["method"] as? String == "GET")
        #expect(traced["endpoint"] as? String == "info")
        #expect(traced["cache"] as? String == "miss")
        #expect(requests.contains { $0["request_id"] as? String == id && $0["status"] as? Int == 404 })
        #expect(requests.contains { $0["status"] as? Int == 502 })
        #expect(!server.process.stderr.contains("hunter2secret"), "a credential reached the log")
    }

    @Test("basic auth guards every route but the probes, compared in constant time")
    func basicAuth() throws {
        let server = try athens(#""storage": {"plugin": "MemoryStorage"}, "fetchers": [\#(proxyFetcher)], "basicAuth": {"user": "alice", "password": "s3cret"}"#)
        defer { server.stop() }
        func get(_ path: String, _ authorization: String?) throws -> (status: Int, headers: [String: String]) {
            let c = try RawClient(port: server.port)
            c.send("GET \(path) HTTP/1.1\r\nHost: x\r\n" + (authorization.map { "Authorization: \($0)\r\n" } ?? "") + "\r\n")
            let r = try #require(c.readResponse())
            return (r.status, r.headers)
        }
        let denied = try get("/example.com/hello/@v/list", nil)
        #expect(denied.status == 401)
        #expect(denied.headers["www-authenticate"] == "Basic realm=\"athens\"")
        #expect(try get("/example.com/hello/@v/list", "Basic YWxpY2U6d3Jvbmc=").status == 401)   // alice:wrong
        #expect(try get("/example.com/hello/@v/list", "Basic YWxpY2U6czNjcmV0").status == 200)   // alice:s3cret
        #expect(try get("/example.com/hello/@v/list", "Basic YWxpY2U6czNjcmV0X").status == 401)
        #expect(try get("/metrics", nil).status == 401)
        #expect(try get("/healthz", nil).status == 200)
        #expect(try get("/readyz", nil).status == 200)
    }

    @Test("SIGTERM: in-flight requests finish, new connections are refused, exit status 0")
    func gracefulShutdown() throws {
        let server = try athens(#""storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "c", "plugin": "\#(cFetcher)"}]"#)
        let slow = try RawClient(port: server.port)
        slow.send("GET /example.com/slow/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n")
        // In flight: the slow fetch holds a download worker.
        #expect(try waitUntil { metric(try server.metrics(), "athens_pool_running", labels: #"pool="download""#) == 1 })
        kill(server.process.process.processIdentifier, SIGTERM)
        // The listener closes once the signal is taken: connects are refused from then on.
        #expect(waitUntil(timeout: 10) {
            let fd = RawClient.connect(port: server.port)
            if fd >= 0 { close(fd) }
            return fd == -ECONNREFUSED
        })
        #expect(throws: (any Error).self, "a new connection after SIGTERM") { _ = try server.get("/healthz", timeout: 2) }
        let response = try #require(slow.readResponse(timeout: 10))
        #expect(response.status == 200)
        #expect(response.headers["connection"] == "close")
        server.process.process.waitUntilExit()
        #expect(server.process.process.terminationStatus == 0)
    }

    @Test("SIGHUP swaps the storage plugin without dropping requests; a bad manifest keeps the old one")
    func reload() throws {
        let manifestPath = work + "/reload.json"
        func write(_ body: String) throws { try body.write(toFile: manifestPath, atomically: true, encoding: .utf8) }
        let root = work + "/filestorage"
        try write(#"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "spoolDirectory": "\#(work)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "c", "plugin": "\#(cFetcher)"}]}"#)
        let process = try ChildProcess(TestSupport.athens, ["--config", manifestPath])
        defer { process.stop() }
        let port = try #require(UInt16(process.firstLine()?.split(separator: ":").last ?? ""))
        func get(_ path: String) throws -> Int { let c = try RawClient(port: port); c.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"); return c.readResponse(timeout: 20)?.status ?? 0 }
        #expect(try get("/example.com/ok/a/@v/v1.0.0.zip") == 200)
        // A slow request in flight across the reload.
        let slow = try RawClient(port: port)
        slow.send("GET /example.com/slow/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try waitUntil { metric(try AthensServer.metrics(port: port), "athens_pool_running", labels: #"pool="download""#) == 1 }, "the slow request is in flight")
        try write(#"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "spoolDirectory": "\#(work)", "storage": {"plugin": "FileStorage", "config": {"root": "\#(root)"}}, "fetchers": [{"name": "c", "plugin": "\#(cFetcher)"}]}"#)
        kill(process.process.processIdentifier, SIGHUP)
        #expect(waitUntil { process.stderr.contains("msg=reloaded") }, "\(process.stderr)")
        #expect(try get("/example.com/ok/b/@v/v1.0.0.zip") == 200)
        #expect(FileManager.default.fileExists(atPath: root + "/example.com/ok/b/@v/v1.0.0.zip"), "the new storage is in use")
        #expect(slow.readResponse(timeout: 10)?.status == 200, "the request in flight finished")
        // A broken manifest: logged, refused, the running configuration stays.
        try write("{ this is not json")
        kill(process.process.processIdentifier, SIGHUP)
        #expect(waitUntil { process.stderr.contains("reload refused") }, "\(process.stderr)")
        #expect(try get("/example.com/ok/c/@v/v1.0.0.zip") == 200)
        #expect(FileManager.default.fileExists(atPath: root + "/example.com/ok/c/@v/v1.0.0.zip"))
        #expect(process.process.isRunning)
    }

    @Test("1,000 idle and byte-at-a-time connections do not stop a normal client (each answered within 1 s)")
    func slowClients() throws {
        // Long header timeout: the trickling heads must outlast the test on a loaded machine; timeouts are tested elsewhere.
        let server = try athens(#""storage": {"plugin": "MemoryStorage"}, "fetchers": [\#(proxyFetcher)], "accessLog": false, "server": {"headerTimeoutSeconds": 120}"#)
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 200)
        var idle: [RawClient] = []
        for _ in 0..<1000 {
            // Another address than the normal client's: from its own, it would meet its per-client cap.
            idle.append(try RawClient(port: server.port, from: "127.0.0.2"))
        }
        // Half send their heads one byte per write (TCP_NODELAY, round-robin) all through the measurement.
        final class Trickle: @unchecked Sendable {
            let lock = NSLock(); var stop = false; var rounds = 0
            let clients: [RawClient]
            init(_ clients: [RawClient]) { self.clients = clients }
        }
        let trickle = Trickle(idle.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        for c in trickle.clients { c.setNoDelay() }
        let head = Array("GET /example.com/hello/@v/list HTTP/1.1\r\nX-Slow: ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 2000)
        let trickled = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { trickled.signal() }
            for byte in head {
                if trickle.lock.withLock({ trickle.stop }) { return }
                for c in trickle.clients { c.send([byte]) }
                trickle.lock.withLock { trickle.rounds += 1 }
                usleep(1_000)   // pacing: how slow clients send; not synchronisation
            }
        }
        #expect(waitUntil { trickle.lock.withLock { trickle.rounds } >= 20 }, "the slow clients are mid-head")
        var worst = 0.0
        for _ in 0..<10 {
            let start = Date()
            #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 200)
            worst = max(worst, Date().timeIntervalSince(start))
        }
        let rounds = trickle.lock.withLock { trickle.stop = true; return trickle.rounds }
        trickled.wait()
        #expect(worst < 1, "a normal request took \(worst) s")
        #expect(rounds < head.count, "the slow clients were still sending when the measurement ended")
        // The 1,000 slow connections and the one asking.
        var open: Double?
        #expect(try waitUntil { open = metric(try server.metrics(), "athens_http_connections"); return open == 1_001 },
                "athens_http_connections \(open ?? -1): the gauge counts the 1,000 open connections")
        withExtendedLifetime(idle) {}
    }

    /// ≥ 50 hostile requests: each gets a 4xx (never 5xx, never a crash) and nothing is written outside the storage root.
    static let hostile: [(String, Int)] = [
        ("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/../../etc/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/%2e%2e/%2e%2e/etc/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/%2E%2E/x/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/..%2f..%2fetc/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/..%2f..%2f..%2fpasswd.info HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/v1.0.0%2f..%2f..%2fx.zip HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m%00/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/v1.0.0%00.zip HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/%FF/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/%C0%AE%C0%AE/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/%E2%80%AE/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/Upper/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/V1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m!/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/!!m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/!1/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/v1.0.0!.zip HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com//m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET //example.com/m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/./@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /.hidden.com/m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /-flag.com/m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /nodot/m/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/con/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/.info HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/a/b.info HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /example.com/m/@v/v1.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/m/@v/master.zip HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/m/@v/v2.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/m/@v/v1.0.0.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/m/@v/latest.info HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /example.com/m/@latest/x HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /@v/list HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /" + String(repeating: "a/", count: 5000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "y", count: 20000) + "\r\n\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-A: b\r\n", count: 200) + "\r\n", 431),
        ("POST /example.com/m/@v/list HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405),
        ("PUT /example.com/m/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("DELETE /example.com/m/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("GET http://evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", 413),
        ("GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\n obs-fold\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\nBad\u{0}Header: 1\r\n\r\n", 400),
        ("GET /x HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        ("GET /x HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 400),
        ("GET /\u{1B}[31mred HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("\u{16}\u{03}\u{01}\u{00}\u{a5}\u{01}\u{00}\u{00}\u{a1}\u{03}\u{03}\r\n\r\n", 400),
        ("GET /catalog?pagesize=-1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /catalog?token=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /sumdb/sum.golang.org/lookup/../../x HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /sumdb/sum.golang.org/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ]

    @Test("the hostile-input table: 4xx for each, no 5xx, nothing written outside storage")
    func hostileInput() throws {
        #expect(Self.hostile.count >= 50)
        let root = work + "/hostile-root"
        let server = try athens(#""storage": {"plugin": "FileStorage", "config": {"root": "\#(root)"}}, "fetchers": [\#(proxyFetcher)]"#)
        defer { server.stop() }
        let before = try FileManager.default.contentsOfDirectory(atPath: work).sorted()
        for (request, status) in Self.hostile {
            let c = try RawClient(port: server.port)
            c.send(request)
            let r = c.readResponse(timeout: 10)
            #expect(r?.status == status, "\(request.prefix(80).debugDescription) → \(r?.status ?? 0)")
        }
        #expect(try server.get("/healthz").status == 200, "still serving")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).sorted() == before, "nothing new beside the root")
        let stored = FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []
        #expect(stored.allSatisfy { !$0.contains("..") && !$0.contains("passwd") }, "\(stored)")
        #expect(!stored.contains { $0.hasSuffix(".zip") }, "no hostile request stored anything")
    }

    @Test("injected faults: failing storage, truncated upstream zips, a full disk — clean errors, nothing partial, still serving")
    func faults() throws {
        // A storage whose saves fail.
        let failing = try athens(#""storage": {"plugin": "\#(cStorage)"}, "fetchers": [{"name": "c", "plugin": "\#(cFetcher)"}]"#)
        defer { failing.stop() }
        let r = try failing.get("/example.com/ok/storage-fail/@v/v1.0.0.zip")
        #expect(r.status == 502)
        #expect(String(decoding: r.body, as: UTF8.self).contains("disk on fire"))
        #expect(try failing.get("/example.com/ok/fine/@v/v1.0.0.zip").status == 200)

        // A storage that stalls: after the first stall its calls leave the event loop, so hits stay fast.
        let stalling = try athens(#""storage": {"plugin": "\#(cStorage)"}, "server": {"threads": 1}, "fetchers": [{"name": "c", "plugin": "\#(cFetcher)"}]"#)
        defer { stalling.stop() }
        #expect(try stalling.get("/example.com/ok/storage-stall/@v/v1.0.0.info").status == 200)   // fetched, then a 2 s open
        #expect(stalling.process.stderr.contains("storage is slow"))
        let stalled = try RawClient(port: stalling.port)
        stalled.send("GET /example.com/ok/storage-stall/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n")
        // The stalled open runs on a download worker; the one event loop answers meanwhile.
        #expect(try waitUntil { metric(try stalling.metrics(), "athens_pool_running", labels: #"pool="download""#) == 1 })
        #expect(try stalling.get("/healthz").status == 200)
        var pending = pollfd(fd: stalled.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0, "the stalled request was answered before /healthz: the event loop may have been held")
        #expect(stalled.readResponse(timeout: 10)?.status == 200)

        // An upstream that cuts zips short, or resets.
        let truncating = try athens(#""storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\#(upstream.url)/_fault/truncate:.zip", "timeoutSeconds": 5}}]"#)
        defer { truncating.stop() }
        #expect(try truncating.get("/example.com/hello/@v/v1.0.0.zip").status == 502)
        #expect(try truncating.get("/example.com/hello/@v/v1.0.0.info").status == 502, "nothing of the version was stored")
        #expect(String(decoding: try truncating.get("/example.com/hello/@v/list").body, as: UTF8.self).contains("v1.0.0"))

        // A full disk under FileStorage.
        let small = work + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let mounted = try TestSupport.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", small])
        guard mounted.status == 0 else {
            Issue.record("cannot mount a small tmpfs here (\(mounted.stderr)); the full-disk case is covered by FileStorageTests")
            return
        }
        defer { _ = try? TestSupport.run("/bin/umount", [small]) }
        let full = try athens(#""storage": {"plugin": "FileStorage", "config": {"root": "\#(small)/root"}}, "fetchers": [\#(proxyFetcher)]"#)
        defer { full.stop() }
        // A zip bigger than the disk: 502 with the cause, and no partial files left.
        let big = tree + "/example.com/big/@v"
        try FileManager.default.createDirectory(atPath: big, withIntermediateDirectories: true)
        try "v1.0.0\n".write(toFile: big + "/list", atomically: true, encoding: .utf8)
        try #"{"Version":"v1.0.0"}"#.write(toFile: big + "/v1.0.0.info", atomically: true, encoding: .utf8)
        try "module example.com/big\n".write(toFile: big + "/v1.0.0.mod", atomically: true, encoding: .utf8)
        let made = try TestSupport.run("/usr/bin/env", ["python3", "-c", """
        import zipfile, os
        with zipfile.ZipFile('\(big)/v1.0.0.zip', 'w', zipfile.ZIP_STORED) as z:
            z.writestr('example.com/big@v1.0.0/go.mod', 'module example.com/big\\n')
            z.writestr('example.com/big@v1.0.0/blob.bin', os.urandom(200000))
        """])
        #expect(made.status == 0, "\(made.stderr)")
        let answer = try full.get("/example.com/big/@v/v1.0.0.zip")
        #expect(answer.status == 502)
        #expect(String(decoding: answer.body, as: UTF8.self).contains("No space left"))
        let leftovers = (FileManager.default.enumerator(atPath: small + "/root")?.allObjects as? [String] ?? []).filter { $0.contains("big@") || $0.hasSuffix(".zip") || ($0.contains(".tmp") && $0 != ".tmp") } // .tmp: FileStorage's work directory, empty
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(try full.get("/example.com/m/@v/v1.0.0.zip").status == 200, "small modules still fit and are served")
    }
}
