// Retention against the built athens over FileStorage: the last access survives a SIGTERM and a restart (the
// journal), `athens admin retention`, and evictions while clients download (whole bodies or a refetch, never a cut).
import Foundation
import Testing

@Suite("retention end to end over FileStorage", .blockingBodies, .serialized)
final class RetentionEndToEndTests {
    static let token = "e2e-retention-token-0123456789"
    let fixture: FixtureUpstream
    var work: String { fixture.work }
    var tree: String { fixture.tree }
    var upstream: FakeUpstream { fixture.upstream }

    init() throws { fixture = try FixtureUpstream("retention") }

    func athens(retention: String) throws -> AthensServer {
        try AthensServer(manifest: """
        {"admin": {"token": "\(Self.token)"}, "spoolDirectory": "\(work)", "accessLog": false,
         "retention": \(retention),
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store"}},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 20}}]}
        """, directory: work)
    }

    static func post(_ server: AthensServer, _ path: String, _ body: [UInt8], query: String = "") throws -> (status: Int, body: String) {
        let client = try RawClient(port: server.port)
        client.send(Array("POST \(path)\(query) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let response = try #require(client.readResponse(timeout: 60))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test("a download's access time is flushed at SIGTERM and read by retention after a restart; athens admin retention")
    func survivesRestart() throws {
        let retention = #"{"maxAgeDays": 30, "intervalHours": 0, "flushSeconds": 3600, "stateDirectory": "\#(work)/state", "instance": "one"}"#
        let journal = work + "/state/one.access"
        let first = try athens(retention: retention)
        #expect(try first.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        #expect(try first.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        // A version stored without a download: uploaded.
        let module = "example.com/uploaded", mod = Array("module example.com/uploaded\n".utf8)
        let zip = FakeZip.stored(["\(module)@v0.1.0/go.mod": mod])
        #expect(try Self.post(first, "/admin/upload", mod + zip, query: "?module=\(module)&version=v0.1.0&modBytes=\(mod.count)").status == 200)
        #expect((try? String(contentsOfFile: journal, encoding: .utf8)) ?? "" == "", "nothing written before the flush interval")
        // SIGTERM and a generous wait (ChildProcess.stop kills after 5 s, which a loaded machine can take).
        kill(first.process.process.processIdentifier, SIGTERM)
        #expect(waitUntil(timeout: 60) { !first.process.process.isRunning }, "athens stops on SIGTERM")
        #expect(first.process.process.terminationStatus == 0, "\(first.process.stderr)")
        let lines = ((try? String(contentsOfFile: journal, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasSuffix(" example.com/hello v1.0.0") == true, "two hits, one record: \(lines)")

        let second = try athens(retention: retention)
        defer { second.stop() }
        let dry = try Self.post(second, "/admin/retention", [])
        #expect(dry.status == 200, "\(dry.body)")
        #expect(dry.body.contains(#""dryRun":true"#) && dry.body.contains(#""stored":2"#), "\(dry.body)")
        #expect(dry.body.contains(#""firstSeen":1"#), "the download before the restart is known; only the upload is new: \(dry.body)")
        #expect(dry.body.contains(#""evictions":[]"#))
        let cli = try TestSupport.run(TestSupport.athens, ["admin", "--url", second.url, "--token", Self.token, "retention"])
        #expect(cli.status == 0 && cli.stdout.contains(#""dryRun":true"#) && cli.stdout.contains(#""firstSeen":0"#), "\(cli)")
        let apply = try TestSupport.run(TestSupport.athens, ["admin", "--url", second.url, "--token", Self.token, "retention", "--apply"])
        #expect(apply.status == 0 && apply.stdout.contains(#""dryRun":false"#) && apply.stdout.contains(#""deleted":[]"#), "\(apply)")
        #expect(try TestSupport.run(TestSupport.athens, ["admin", "--url", second.url, "--token", Self.token, "retention", "now"]).status == 2)
        #expect(try TestSupport.run(TestSupport.athens, ["admin", "--url", second.url, "--token", "wrong-token-0000000000", "retention", "--apply"]).status == 1)
        #expect(try second.get("/example.com/hello/@v/v1.0.0.mod").status == 200, "nothing was evicted")
        #expect(metric(try second.metrics(), "athens_admin_requests_total", labels: #"action="retention",result="unauthorized""#) == 1)
    }

    @Test("a SIGHUP reload flushes the replaced assembly's marks to the journal")
    func reloadFlushes() throws {
        let journal = work + "/state3/r.access"
        let server = try athens(retention: #"{"maxAgeDays": 30, "intervalHours": 0, "flushSeconds": 3600, "stateDirectory": "\#(work)/state3", "instance": "r"}"#)
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.1.0.info").status == 200)
        #expect(!FileManager.default.fileExists(atPath: journal))
        kill(server.process.process.processIdentifier, SIGHUP)
        #expect(waitUntil(timeout: 30) { ((try? String(contentsOfFile: journal, encoding: .utf8)) ?? "").hasSuffix(" example.com/hello v1.1.0\n") })
        #expect(try server.get("/healthz").status == 200)
    }

    @Test("evictions while clients download: every response is the whole zip (or a 404), never a partial body")
    func evictionUnderDownloads() throws {
        let made = try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_big_module.py", tree,
                                                        "example.com/big", "v1.0.0", "4"])
        #expect(made.status == 0)
        let expected = try Array(Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/big/@v/v1.0.0.zip")))
        let server = try athens(retention: #"{"maxTotalBytes": 1, "intervalHours": 0, "stateDirectory": "\#(work)/state2"}"#)
        defer { server.stop() }
        #expect(try server.get("/example.com/big/@v/v1.0.0.zip").body == expected)

        final class Outcomes: @unchecked Sendable {
            let lock = NSLock()
            var whole = 0, notFound = 0, bad: [String] = []
            var stop = false
        }
        let outcomes = Outcomes()
        let port = server.port
        let clients = (0..<3).map { _ in
            Thread {
                while !outcomes.lock.withLock({ outcomes.stop }) {
                    let client = try? RawClient(port: port)
                    client?.send("GET /example.com/big/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n")
                    let response = client?.readResponse(timeout: 60)
                    outcomes.lock.withLock {
                        switch response {
                        case let r? where r.status == 200 && r.body == expected: outcomes.whole += 1
                        case let r? where r.status == 404: outcomes.notFound += 1
                        case let r?: outcomes.bad.append("status \(r.status), \(r.body.count) of \(expected.count) bytes")
                        case nil: outcomes.bad.append("no complete response")
                        }
                    }
                }
            }
        }
        clients.forEach { $0.start() }
        var evicted = 0
        for _ in 0..<4 {
            let seen = outcomes.lock.withLock { outcomes.whole }
            #expect(waitUntil(timeout: 60) { outcomes.lock.withLock { outcomes.whole } > seen }, "clients are downloading")
            let apply = try Self.post(server, "/admin/retention", Array(#"{"dryRun": false}"#.utf8))
            #expect(apply.status == 200, "\(apply.body)")
            if apply.body.contains(#""deleted":[{"module":"example.com/big""#) { evicted += 1 }
        }
        outcomes.lock.withLock { outcomes.stop = true }
        #expect(waitUntil(timeout: 120) { clients.allSatisfy(\.isFinished) })
        #expect(evicted >= 1, "the version was evicted while downloaded")
        outcomes.lock.withLock {
            #expect(outcomes.bad.isEmpty, "\(outcomes.bad)")
            #expect(outcomes.whole >= 4)
        }
        let metrics = try server.metrics()
        #expect(metric(metrics, "athens_retention_evicted_total", labels: #"reason="lru""#) == Double(evicted))
        #expect((metric(metrics, "athens_fetches_total", labels: #"fetcher="u",result="ok""#) ?? 0) >= Double(evicted), "each eviction is refetched")
    }
}
