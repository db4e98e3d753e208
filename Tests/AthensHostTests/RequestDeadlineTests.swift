// list, @latest, query and catalog requests call their plugins with a deadline: the request's own wait
// (`stash.timeoutSeconds`, DownloadProtocol.requestContext) from its start, one budget for every call of the request.
// Over the fakes (DownloadHarness), then with the built athens and the context-aware C fetcher (ctx_fetcher.c).
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("request deadlines on list, @latest, queries and the catalog")
struct RequestDeadlineTests {
    /// Whether `call` has a deadline `seconds` after some instant in `start...end` (nanoseconds).
    static func due(_ call: CallContext?, _ seconds: Double, after start: UInt64, before end: UInt64) -> Bool {
        guard let deadline = call?.deadline else { return false }
        let span = UInt64(seconds * 1e9)
        return deadline >= start + span && deadline <= end + span
    }

    @Test("each request's plugin calls share one deadline, requestTimeout from its start (600 s by default)")
    func deadlines() throws {
        let h = DownloadHarness()
        h.upstream.add("example.com/a", "v1.0.0")
        h.upstream.resolves("example.com/a", "master", to: "v1.0.0")
        h.upstream.resolves("example.com/a", "latest", to: "v1.0.0")
        #expect(h.download.requestTimeout == 600)
        var start = MonotonicClock.nanoseconds()
        #expect(h.get("/example.com/a/@v/list")?.response.status == 200)
        let list = try #require(h.upstream.lastCall("list"))
        #expect(Self.due(list, 600, after: start, before: MonotonicClock.nanoseconds()))
        #expect(h.storage.lastCall("list") === list, "storage and fetcher calls of one request share its context")
        start = MonotonicClock.nanoseconds()
        #expect(h.get("/example.com/a/@latest")?.response.status == 200)
        #expect(Self.due(h.upstream.lastCall("resolve"), 600, after: start, before: MonotonicClock.nanoseconds()))
        start = MonotonicClock.nanoseconds()
        #expect(h.get("/example.com/a/@v/master.info")?.response.status == 200)
        #expect(Self.due(h.upstream.lastCall("resolve"), 600, after: start, before: MonotonicClock.nanoseconds()))
        #expect(h.upstream.lastCall("resolve") !== h.upstream.lastCall("fetch"), "the stash has its own context")
        start = MonotonicClock.nanoseconds()
        #expect(h.get("/catalog")?.response.status == 200)
        #expect(Self.due(h.storage.lastCall("catalog"), 600, after: start, before: MonotonicClock.nanoseconds()))
    }

    @Test("the built athens: a 1.1 fetcher's list_ctx and resolve_ctx see stash.timeoutSeconds (60 s) as their deadline")
    func pluginSeesDeadline() throws {
        let path = try CallContextTests.built.get().v11
        let marker = CallContextTests.directory + "/marker-\(UUID().uuidString)"
        let server = try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage"}, "stash": {"timeoutSeconds": 60},
             "fetchers": [{"name": "ctx", "plugin": "\(path)", "config": {"marker": "\(marker)"}}]}
            """, directory: CallContextTests.directory)
        defer { server.stop() }
        let lines = { ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        func deadline(_ prefix: String) -> UInt64? {
            lines().first { $0.hasPrefix(prefix) }.flatMap { line in
                line.split(separator: " ").first { $0.hasPrefix("deadline=") }.flatMap { UInt64($0.dropFirst(9)) }
            }
        }
        for (target, prefix) in [("/example.com/q/@v/list", "list entry=list_ctx module=example.com/q "),
                                 ("/example.com/q/@latest", "resolve entry=resolve_ctx module=example.com/q query=latest "),
                                 ("/example.com/q/@v/master.info", "resolve entry=resolve_ctx module=example.com/q query=master ")] {
            let start = MonotonicClock.nanoseconds()
            #expect(try server.get(target).status == 404, "\(target)")
            let end = MonotonicClock.nanoseconds()
            let seen = try #require(deadline(prefix), "\(target): \(lines())")
            #expect(seen >= start + 60_000_000_000 && seen <= end + 60_000_000_000, "\(target): deadline \(seen), asked at \(start)")
        }
    }
}
