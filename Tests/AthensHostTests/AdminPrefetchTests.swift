// POST /admin/prefetch and GET /admin/jobs/<id> through the Router over the in-memory fakes: what a body names,
// the refusals (garbage lines with their numbers, hostile paths, too many items), the job's progress and outcome
// per item, the route's rules (exclude), queries, the token, the jobs kept, and the concurrency bound.
import Foundation
import JSON
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("admin prefetch over in-memory fakes: parsing, jobs, routing, concurrency", .blockingBodies)
struct AdminPrefetchTests {
    static let token = AdminAPITests.token
    static let bearer = AdminAPITests.bearer

    static func items(_ text: String, query: Substring = "", maxItems: Int = 10_000) throws(AdminError) -> PrefetchRequest {
        try PrefetchRequest.parse(query: query, body: Array(text.utf8), maxItems: maxItems)
    }

    static func refusal(_ text: String, query: Substring = "", maxItems: Int = 10_000) -> String? {
        do {
            _ = try items(text, query: query, maxItems: maxItems)
            return nil
        } catch {
            return error.status == 400 ? error.message : "status \(error.status)"
        }
    }

    // MARK: parsing

    @Test("a go.sum: both line kinds, deduplicated; a version named only by /go.mod is marked goModOnly")
    func goSum() throws {
        let request = try Self.items("""
        example.com/a v1.0.0 h1:aaaa=
        example.com/a v1.0.0/go.mod h1:bbbb=
        example.com/b v0.2.0/go.mod h1:cccc=
        example.com/c/v2 v2.1.0/go.mod h1:dddd=
        example.com/c/v2 v2.1.0 h1:eeee=

        """)
        #expect(request.format == .gosum)
        #expect(request.items == [
            .init(module: "example.com/a", version: "v1.0.0", isQuery: false),
            .init(module: "example.com/b", version: "v0.2.0", isQuery: false, goModOnly: true),
            .init(module: "example.com/c/v2", version: "v2.1.0", isQuery: false),
        ])
    }

    @Test("a go.mod: single and block requires, indirect ones too; replace and exclude ignored and said so")
    func goMod() throws {
        let request = try Self.items("""
        module example.com/me

        go 1.22

        require example.com/single v1.2.3
        require (
            example.com/a v1.0.0
            "example.com/quoted" v0.1.0 // indirect
        )
        replace example.com/a => ../a
        exclude (
            example.com/a v0.9.0
            example.com/a v0.9.1
        )
        """)
        #expect(request.format == .gomod)
        #expect(request.items.map { "\($0.module)@\($0.version)" } == ["example.com/single@v1.2.3", "example.com/a@v1.0.0", "example.com/quoted@v0.1.0"])
        #expect(request.notes == ["go.mod: 2 exclude directives ignored", "go.mod: 1 replace directive ignored"])
    }

    @Test("a list: versions and queries, comments and blank lines skipped; ?format= overrides the guess")
    func list() throws {
        let request = try Self.items("# warm these\nexample.com/a@v1.0.0\n\nexample.com/b@latest\r\nexample.com/c@master\nexample.com/d@v1\nexample.com/a@v1.0.0\n")
        #expect(request.format == .list)
        #expect(request.items.map { "\($0.module)@\($0.version)\($0.isQuery ? "?" : "")" }
            == ["example.com/a@v1.0.0", "example.com/b@latest?", "example.com/c@master?", "example.com/d@v1?"])
        // A go.sum-looking body read as a list is refused, not guessed at.
        #expect(Self.refusal("example.com/a v1.0.0 h1:x=\n", query: "format=list")?.contains("line 1") == true)
        #expect(Self.refusal("example.com/a@v1.0.0\n", query: "format=yaml")?.contains("query.format") == true)
        #expect(Self.refusal("example.com/a@v1.0.0\n", query: "other=1")?.contains("unknown parameter") == true)
    }

    @Test("garbage lines refuse the whole body with their line numbers", arguments: [
        ("example.com/a@v1.0.0\nnot a module line\nexample.com/b@v1.0.0\njunk\n", ["line 2", "line 4"]),
        ("example.com/a v1.0.0 h1:x=\nexample.com/b v1.0.0\n", ["line 2"]),
        ("module m\nrequire (\n  example.com/a\n)\n", ["line 3"]),
        ("module m\nrequire (\n  example.com/a v1.0.0\n", ["without its closing"]),
        ("example.com/a v1.0 h1:x=\n", ["line 1", "not a canonical version"]),
        ("module m\nrequire example.com/a master\n", ["line 2"]),
    ])
    func garbage(_ body: String, _ expected: [String]) {
        let message = Self.refusal(body)
        #expect(message != nil)
        for part in expected { #expect(message?.contains(part) == true, "\(message ?? "accepted")") }
    }

    @Test("hostile paths and versions: .., NUL, very long, upgrade/patch, slashes are 400 naming the line", arguments: [
        "example.com/../etc@v1.0.0", "example.com/a\u{0}b@v1.0.0", "example.com/a@v1.0.0\u{0}", "example.com/" + String(repeating: "a", count: 5000) + "@v1.0.0",
        "example.com/a@" + String(repeating: "v", count: 300), "example.com/a@upgrade", "example.com/a@patch", "example.com/a@../../x",
        "example.com/a@..", "Example.COM/a@v1.0.0", "/abs@v1.0.0", "example.com/a@", "@v1.0.0",
    ])
    func hostile(_ line: String) {
        let message = Self.refusal("example.com/ok@v1.0.0\n" + line + "\n")
        #expect(message?.contains("line 2") == true, "\(message ?? "accepted")")
        #expect(message.map { !$0.utf8.contains(0) } ?? true, "no NUL in the message")
    }

    @Test("an empty body, binary bytes and more than prefetchMaxItems are refused")
    func limits() {
        #expect(Self.refusal("\n# nothing\n")?.contains("names no module") == true)
        #expect(Self.refusal(String(decoding: [0xFF, 0xFE, 0x00, 0x41], as: UTF8.self)) != nil)
        let many = (0..<11).map { "example.com/m\($0)@v1.0.0" }.joined(separator: "\n")
        #expect(Self.refusal(many, maxItems: 10)?.contains("more than admin.prefetchMaxItems (10)") == true)
        #expect(Self.refusal(many, maxItems: 11) == nil)
    }

    // MARK: jobs

    static func start(_ h: DownloadHarness, _ body: String, query: String = "", headers: [(name: String, value: String)] = bearer) throws -> Response {
        try #require(h.start("/admin/prefetch" + (query.isEmpty ? "" : "?" + query), method: .post, headers: headers, body: Array(body.utf8)).wait()).response
    }

    static func job(_ h: DownloadHarness, _ id: String) throws -> JSONObject {
        try AdminAPITests.object(try #require(h.get("/admin/jobs/" + id, headers: bearer)).response)
    }

    /// Starts a prefetch and waits for its job to finish; the job's last answer.
    static func run(_ h: DownloadHarness, _ body: String, query: String = "") throws -> JSONObject {
        let response = try start(h, body, query: query)
        try #require(response.status == 202, "\(response.bodyText)")
        let id = try #require(try AdminAPITests.object(response)["id"]?.stringValue)
        #expect(response.header("Location") == "/admin/jobs/" + id)
        var last = JSONObject()
        #expect(try waitUntil { last = try job(h, id); return last["state"] == .string("done") })
        return last
    }

    static func states(_ job: JSONObject) -> [String] {
        guard case let .array(items)? = job["items"] else { return [] }
        return items.map { item in
            guard case let .object(o) = item else { return "?" }
            let name = o["module"]?.stringValue ?? "?"
            let version = o["version"]?.stringValue.map { "@" + $0 } ?? ""
            return "\(name)\(version) \(o["state"]?.stringValue ?? "?")" + (o["error"] != nil ? " !" : "")
        }
    }

    @Test("a job fetches what is missing, skips what is stored without a fetch, and counts both")
    func doneAndSkipped() throws {
        let h = DownloadHarness(adminToken: Self.token)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        h.upstream.add("example.com/a", "v1.0.0")
        h.upstream.add("example.com/b", "v1.1.0")
        h.upstream.add("example.com/c/v2", "v2.0.0")
        let job = try Self.run(h, "example.com/a v1.0.0 h1:x=\nexample.com/b v1.1.0/go.mod h1:y=\nexample.com/c/v2 v2.0.0 h1:z=\n")
        #expect(job["total"] == .number(JSONNumber(3)) && job["done"] == .number(JSONNumber(2)))
        #expect(job["skipped"] == .number(JSONNumber(1)) && job["failed"] == .number(JSONNumber(0)))
        #expect(Self.states(job) == ["example.com/a@v1.0.0 skipped", "example.com/b@v1.1.0 done", "example.com/c/v2@v2.0.0 done"])
        #expect(h.upstream.calls("fetch") == 2, "the stored version is not fetched")
        #expect(h.storage.keys == ["example.com/a@v1.0.0", "example.com/b@v1.1.0", "example.com/c/v2@v2.0.0"])
    }

    @Test("an excluded module, an unknown one and a private one go their routes: failed with the reason, or its own fetcher")
    func routes() throws {
        let h = DownloadHarness(rules: [RoutingRule(patterns: "bad.example", action: .exclude),
                                        RoutingRule(patterns: "corp.example", action: .private(fetcher: "private"))],
                                adminToken: Self.token)
        h.upstream.add("bad.example/x", "v1.0.0")
        h.upstream.add("corp.example/secret", "v1.0.0")
        h.inhouse.add("corp.example/secret", "v1.0.0")
        let job = try Self.run(h, "bad.example/x@v1.0.0\nexample.com/missing@v1.0.0\ncorp.example/secret@v1.0.0\n")
        #expect(Self.states(job) == ["bad.example/x@v1.0.0 failed !", "example.com/missing@v1.0.0 failed !", "corp.example/secret@v1.0.0 done"])
        #expect(job["failed"] == .number(JSONNumber(2)))
        #expect(Self.jobText(job).contains("bad.example/x is excluded by this proxy's policy"))
        #expect(h.inhouse.calls("fetch") == 1)
        #expect(h.upstream.calls("fetch") == 1, "only the unknown module asked the public upstream: never the private or excluded one")
        #expect(h.storage.keys == ["corp.example/secret@v1.0.0"])
    }

    static func jobText(_ job: JSONObject) -> String { JSONValue.object(job).text() }

    @Test("queries: @latest and a branch resolve through the fetcher, and the version they name is stored")
    func queries() throws {
        let h = DownloadHarness(adminToken: Self.token)
        h.upstream.add("example.com/q", "v1.2.0")
        h.upstream.add("example.com/q", "v1.3.0")
        h.upstream.resolves("example.com/q", "latest", to: "v1.3.0")
        h.upstream.add("example.com/b", "v0.0.0-20240102030405-abcdefabcdef")
        h.upstream.resolves("example.com/b", "master", to: "v0.0.0-20240102030405-abcdefabcdef")
        let job = try Self.run(h, "example.com/q@latest\nexample.com/b@master\nexample.com/q@nosuchbranch\n")
        #expect(Self.states(job) == ["example.com/q@v1.3.0 done", "example.com/b@v0.0.0-20240102030405-abcdefabcdef done", "example.com/q failed !"])
        #expect(h.storage.keys == ["example.com/b@v0.0.0-20240102030405-abcdefabcdef", "example.com/q@v1.3.0"])
    }

    @Test("a wrong token is 401 and nothing starts; the job endpoint wants the token, GET, and a known id")
    func tokenAndJobs() throws {
        let h = DownloadHarness(adminToken: Self.token)
        h.upstream.add("example.com/a", "v1.0.0")
        let refused = try Self.start(h, "example.com/a@v1.0.0\n", headers: [(name: "authorization", value: "Bearer wrong-wrong-wrong-wrong")])
        #expect(refused.status == 401)
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 0 && h.storage.keys.isEmpty)
        let bad = try Self.start(h, "example.com/a@v1.0.0\nrubbish\n")
        #expect(bad.status == 400 && bad.bodyText.contains("line 2"))
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 0 && h.storage.keys.isEmpty, "a refused body starts nothing")

        let started = try Self.start(h, "example.com/a@v1.0.0\n")
        let id = try #require(try AdminAPITests.object(started)["id"]?.stringValue)
        #expect(h.get("/admin/jobs/" + id)?.response.status == 401)
        #expect(h.get("/admin/jobs/" + id, headers: [(name: "authorization", value: "Bearer nope-nope-nope-nope")])?.response.status == 401)
        #expect(h.start("/admin/jobs/" + id, method: .post, headers: Self.bearer, body: Array("x".utf8)).wait()?.response.status == 405)
        let unknown = try #require(h.get("/admin/jobs/0000000000000000", headers: Self.bearer)).response
        #expect(unknown.status == 404 && unknown.bodyText.contains("no prefetch job"))
        #expect(h.get("/admin/jobs/", headers: Self.bearer)?.response.status == 404)
        #expect(h.get("/admin/prefetch", headers: Self.bearer)?.response.status == 405)
    }

    @Test("jobs kept are bounded: the oldest finished one is dropped (404) to make room")
    func boundedJobs() throws {
        var settings = AdminSettings()
        settings.maxJobs = 2
        let h = DownloadHarness(adminToken: Self.token, adminSettings: settings)
        h.upstream.add("example.com/a", "v1.0.0")
        var ids: [String] = []
        for _ in 0..<3 {
            let job = try Self.run(h, "example.com/a@v1.0.0\n")
            ids.append(try #require(job["id"]?.stringValue))
        }
        #expect(Set(ids).count == 3)
        #expect(h.get("/admin/jobs/" + ids[0], headers: Self.bearer)?.response.status == 404)
        #expect(h.get("/admin/jobs/" + ids[1], headers: Self.bearer)?.response.status == 200)
        #expect(h.get("/admin/jobs/" + ids[2], headers: Self.bearer)?.response.status == 200)
    }

    @Test("concurrency: never more items at once than half the download pool; clients still find free workers")
    func concurrencyBound() throws {
        var settings = AdminSettings()
        settings.prefetchConcurrency = 50 // asks for more than allowed: capped at half the pool
        let h = DownloadHarness(workers: 4, queue: 16, adminToken: Self.token, adminSettings: settings)
        let modules = (0..<8).map { "example.com/m\($0)" }
        for module in modules { h.upstream.add(module, "v1.0.0") }
        h.upstream.add("example.com/client", "v1.0.0")
        h.upstream.fetchGate.close()
        let response = try Self.start(h, modules.map { $0 + "@v1.0.0" }.joined(separator: "\n"))
        let id = try #require(try AdminAPITests.object(response)["id"]?.stringValue)
        // Both lanes reach the upstream (held at the gate) and the pool runs just those two jobs, none queued (unbounded,
        // four would run and four wait). One polled condition: the admin call's own pool job may still be finishing,
        // and a job just handed to a worker is briefly counted as waiting (both seen in CI under the full suite).
        #expect(waitUntil { h.upstream.peakConcurrentFetches == 2 && h.pool.load.running == 2 && h.pool.load.waiting == 0 })
        // A client's miss still gets a worker (it waits at the gate too, but it is not refused with 503).
        let client = h.start("/example.com/client/@v/v1.0.0.info")
        #expect(waitUntil { h.pool.load.running == 3 })
        h.upstream.fetchGate.openGate()
        #expect(client.wait()?.response.status == 200)
        #expect(try waitUntil { try Self.job(h, id)["state"] == .string("done") })
        #expect(try Self.job(h, id)["done"] == .number(JSONNumber(8)))
        #expect(h.upstream.peakConcurrentFetches <= 3, "2 prefetch lanes + the client")
    }
}

extension JSONValue {
    var stringValue: String? { if case let .string(s) = self { s } else { nil } }
}

extension AdminPrefetchTests {
    @Test("the CLI's progress line: a bar of finished/total, failures, the item in progress; the summary counts")
    func progressLine() throws {
        let job = try #require({ () -> JSONObject? in
            if case let .object(o) = try? JSONReader.parse(Array("""
            {"id":"ab","state":"running","total":4,"done":1,"skipped":1,"failed":0,"running":1,"seconds":1.500,
             "items":[{"module":"a.example/x","version":"v1.0.0","state":"done"},{"module":"b.example/y","version":"v1.0.0","state":"skipped"},
                      {"module":"c.example/z","query":"latest","state":"running"},{"module":"d.example/w","version":"v1.0.0","state":"pending"}]}
            """.utf8)) { return o }
            return nil
        }())
        let progress = AdminCommand.Progress(job)
        #expect(progress.bar(width: 8) == "[####....] 2/4  c.example/z@latest")
        #expect(progress.finishedLines().map(\.1) == ["done a.example/x@v1.0.0", "skipped b.example/y@v1.0.0"])
        #expect(!progress.done)
        #expect(progress.summary(id: "ab") == "prefetch ab: 4 items: 1 fetched, 1 already stored, 0 failed (1.500 s)")
    }

    @Test("a reload keeps the jobs: an AdminAPI given the process's table sets its bound and sees the older jobs")
    func jobsAcrossReloads() throws {
        let table = PrefetchJobs(capacity: 5)
        var settings = AdminSettings()
        settings.maxJobs = 3
        let first = DownloadHarness(adminToken: Self.token)
        let api = AdminAPI(token: AdminToken(Self.token), download: first.download, settings: settings, jobs: table)
        #expect(api.jobs === table && table.capacity == 3)
        let job = PrefetchJob(id: "0011223344556677", request: try Self.items("example.com/a@v1.0.0\n"), who: "")
        #expect(table.add(job))
        let second = DownloadHarness(adminToken: Self.token)
        let reloaded = AdminAPI(token: AdminToken(Self.token), download: second.download, jobs: table)
        #expect(reloaded.jobs.job("0011223344556677") === job)
    }
}

extension AdminPrefetchTests {
    @Test("a /go.mod line first, then the zip line: one item, the whole version; 2,000 distinct items parse")
    func dedupeOrderAndScale() throws {
        let request = try Self.items("example.com/a v1.0.0/go.mod h1:x=\nexample.com/a v1.0.0 h1:y=\nexample.com/a v1.0.0/go.mod h1:x=\n")
        #expect(request.items == [.init(module: "example.com/a", version: "v1.0.0", isQuery: false)])
        let big = (0..<2_000).map { "example.com/m\($0) v1.0.0 h1:x=\nexample.com/m\($0) v1.0.0/go.mod h1:y=" }.joined(separator: "\n")
        #expect(try Self.items(big).items.count == 2_000)
    }
}

extension AdminPrefetchTests {
    @Test("the bound: half the download pool, half the smallest stash pool, at least one, never more than asked")
    func concurrencyArithmetic() {
        let h = DownloadHarness(workers: 8)
        #expect(Prefetcher(download: h.download, concurrency: nil).concurrency == 4)
        #expect(Prefetcher(download: h.download, concurrency: 100).concurrency == 4)
        #expect(Prefetcher(download: h.download, concurrency: 2).concurrency == 2)
        #expect(Prefetcher(download: h.download, concurrency: nil, stashWorkers: 2).concurrency == 1)
        #expect(Prefetcher(download: h.download, concurrency: nil, stashWorkers: 6).concurrency == 3)
        #expect(Prefetcher(download: DownloadHarness(workers: 1).download, concurrency: nil).concurrency == 1)
    }
}
