// Retention over the in-memory fakes with injected time: the age policy, LRU under a byte budget, keep globs and
// private-only modules, dry runs, the token, hostile bodies, the schedule (monotonic time passed in). Serialized:
// the retention and admin metrics are process-wide and only this suite moves athens_retention_evicted_total.
import Foundation
import JSON
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("retention over in-memory fakes", .serialized)
struct RetentionTests {
    static let token = "0123456789abcdef-retention"
    static let bearer = [(name: "authorization", value: "Bearer \(token)")]
    static let now: Int64 = 1_800_000_000
    static let day: Int64 = 86_400

    /// A harness with retention under `settings` over `store`, at wall time `now`.
    static func harness(_ settings: RetentionSettings, store: FakeAccessStore, rules: [RoutingRule] = [],
                        recorder: AccessRecorder? = nil) -> DownloadHarness {
        DownloadHarness(rules: rules, adminToken: token, accesses: recorder) { download in
            Retention(settings: settings, download: download, store: store, recorder: recorder, wallClock: { now }, pageSize: 2)
        }
    }

    /// A version whose three files take `bytes` bytes in all (the zip padded; the fake does not validate).
    static func version(_ module: String, _ v: String, bytes: Int) -> FakeVersion {
        let honest = FakeVersion.honest(module: module, version: v)
        return FakeVersion(info: honest.info, mod: honest.mod, zip: [UInt8](repeating: 0x5A, count: bytes - honest.info.count - honest.mod.count))
    }

    static func post(_ h: DownloadHarness, _ json: String, headers: [(name: String, value: String)] = bearer) throws -> (status: Int, body: JSONObject) {
        let response = try #require(h.start("/admin/retention", method: .post, headers: headers, body: Array(json.utf8)).wait()).response
        guard case let .object(object) = try JSONReader.parse(response.bodyBytes) else { throw AdminError.failed("not an object") }
        return (response.status, object)
    }

    /// "module@version reason" of each eviction of an answer, in order.
    static func evictions(_ body: JSONObject) -> [String] {
        guard case let .array(items)? = body["evictions"] else { return [] }
        return items.compactMap { item -> String? in
            guard case let .object(o) = item, case let .string(m)? = o["module"], case let .string(v)? = o["version"],
                  case let .string(r)? = o["reason"] else { return nil }
            return "\(m)@\(v) \(r)"
        }
    }

    static func evicted(_ reason: String) -> Double {
        metric(Metrics.shared.render(), "athens_retention_evicted_total", labels: #"reason="\#(reason)""#) ?? 0
    }

    @Test("the age policy removes exactly the versions not downloaded for longer than maxAgeDays")
    func ageRemovesExactlyTheOld() throws {
        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxAgeDays: 30), store: store)
        for (module, version, age) in [("example.com/a", "v1.0.0", 100), ("example.com/a", "v1.1.0", 10), ("other.org/b", "v0.1.0", 31),
                                       ("other.org/b", "v0.2.0", 30)] {
            h.storage.put(module, version, .honest(module: module, version: version))
            store.set(module, version, Self.now - Int64(age) * Self.day)
        }
        h.storage.put("fresh.org/c", "v1.0.0", .honest(module: "fresh.org/c", version: "v1.0.0"))  // never downloaded
        let before = Self.evicted("age")
        let answer = try Self.post(h, #"{"dryRun": false}"#)
        #expect(answer.status == 200)
        #expect(Self.evictions(answer.body) == ["example.com/a@v1.0.0 age", "other.org/b@v0.1.0 age"], "oldest first")
        #expect(h.storage.moduleKeys == ["example.com/a@v1.1.0", "fresh.org/c@v1.0.0", "other.org/b@v0.2.0"], "exactly 30 days is kept")
        #expect(answer.body["deleted"].map { if case let .array(a) = $0 { a.count } else { -1 } } == 2)
        #expect(answer.body["firstSeen"] == .number(JSONNumber(1)))
        #expect(store.time("fresh.org/c", "v1.0.0") == Self.now, "no record: its clock starts when retention first sees it")
        #expect(store.time("example.com/a", "v1.0.0") == nil, "the journal forgets what was removed")
        #expect(Self.evicted("age") == before + 2)
    }

    @Test("under a byte budget the least recently downloaded go first until the rest fits")
    func lruUnderBudget() throws {
        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxTotalBytes: 2_500), store: store)
        // Four versions of 1000 bytes, downloaded in the order d, b, a, c (d longest ago).
        for (name, hoursAgo) in [("a", 2), ("b", 3), ("c", 1), ("d", 4)] {
            let module = "example.com/\(name)"
            h.storage.put(module, "v1.0.0", Self.version(module, "v1.0.0", bytes: 1_000))
            store.set(module, "v1.0.0", Self.now - Int64(hoursAgo) * 3_600)
        }
        let dry = try Self.post(h, "{}")
        #expect(dry.status == 200 && dry.body["dryRun"] == .bool(true))
        #expect(Self.evictions(dry.body) == ["example.com/d@v1.0.0 lru", "example.com/b@v1.0.0 lru"])
        #expect(dry.body["bytesBefore"] == .number(JSONNumber(4_000)) && dry.body["bytesAfter"] == .number(JSONNumber(2_000)))
        #expect(dry.body["overBudget"] == .bool(false))
        #expect(h.storage.keys.count == 4)
        let before = Self.evicted("lru")
        let applied = try Self.post(h, #"{"dryRun": false}"#)
        #expect(applied.status == 200)
        #expect(h.storage.moduleKeys == ["example.com/a@v1.0.0", "example.com/c@v1.0.0"])
        #expect(Self.evicted("lru") == before + 2)
        // Within budget now: a second run removes nothing, and sizes are not asked again (immutable versions).
        let opens = h.storage.calls("open")
        #expect(Self.evictions(try Self.post(h, #"{"dryRun": false}"#).body).isEmpty)
        #expect(h.storage.calls("open") == opens)
    }

    @Test("keep globs and modules a private rule routes are never evicted, even over budget")
    func keepAndPrivate() throws {
        let store = FakeAccessStore()
        var settings = RetentionSettings(maxAgeDays: 1, maxTotalBytes: 1)
        settings.keep = ["keep.example/*"]
        let h = Self.harness(settings, store: store, rules: [RoutingRule(patterns: "corp.example", action: .private(fetcher: "private"))])
        for module in ["keep.example/x", "corp.example/secret", "public.org/y", "keep.examples/z"] {
            h.storage.put(module, "v1.0.0", Self.version(module, "v1.0.0", bytes: 500))
            store.set(module, "v1.0.0", Self.now - 400 * Self.day)
        }
        let answer = try Self.post(h, #"{"dryRun": false}"#)
        #expect(answer.status == 200)
        #expect(Self.evictions(answer.body) == ["keep.examples/z@v1.0.0 age", "public.org/y@v1.0.0 age"], "a glob matches path elements, not prefixes")
        #expect(h.storage.moduleKeys == ["corp.example/secret@v1.0.0", "keep.example/x@v1.0.0"])
        #expect(answer.body["protected"] == .number(JSONNumber(2)))
        #expect(answer.body["overBudget"] == .bool(true), "what is protected alone exceeds the budget: said, not evicted")
    }

    @Test("a dry run deletes nothing and counts nothing; an empty body is a dry run")
    func dryRunDeletesNothing() throws {
        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxAgeDays: 1), store: store)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        store.set("example.com/a", "v1.0.0", Self.now - 9 * Self.day)
        let before = Self.evicted("age")
        for body in ["", "{}", #"{"dryRun": true}"#] {
            let answer = try Self.post(h, body)
            #expect(answer.status == 200 && answer.body["dryRun"] == .bool(true))
            #expect(Self.evictions(answer.body) == ["example.com/a@v1.0.0 age"])
            #expect(answer.body["deleted"] == nil)
        }
        #expect(h.storage.calls("remove") == 0 && h.storage.keys == ["example.com/a@v1.0.0"])
        #expect(Self.evicted("age") == before)
    }

    @Test("a wrong or missing token is 401 and nothing is read, recorded or removed")
    func wrongToken() throws {
        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxAgeDays: 1), store: store)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        for headers in [[], [(name: "authorization", value: "Bearer not-the-token-000000")]] {
            #expect(try Self.post(h, #"{"dryRun": false}"#, headers: headers).status == 401)
        }
        #expect(h.storage.calls("catalog") == 0 && h.storage.calls("remove") == 0 && store.appends == 0)
        #expect(h.storage.keys == ["example.com/a@v1.0.0"])
    }

    @Test("hostile bodies are 400 and nothing is removed", arguments: [
        "not json", "[]", #"{"dryRun": "no"}"#, #"{"dryRun": 0}"#, #"{"dryRun": false, "force": true}"#, "{", #"{"maxAgeDays": 1}"#,
    ])
    func hostileBodies(_ json: String) throws {
        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxAgeDays: 1), store: store)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        store.set("example.com/a", "v1.0.0", 0)
        let answer = try Self.post(h, json)
        #expect(answer.status == 400, "\(json)")
        #expect(answer.body["error"] != nil)
        #expect(h.storage.calls("catalog") == 0 && h.storage.keys == ["example.com/a@v1.0.0"])
    }

    @Test("no retention in the manifest, or a storage without catalog: 501 naming why; a failing journal: 500, nothing removed")
    func refusals() throws {
        let off = DownloadHarness(adminToken: Self.token)
        let response = try #require(off.start("/admin/retention", method: .post, headers: Self.bearer, body: []).wait()).response
        #expect(response.status == 501 && response.bodyText.contains("retention"))

        let store = FakeAccessStore()
        let h = Self.harness(RetentionSettings(maxAgeDays: 1), store: store)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        store.set("example.com/a", "v1.0.0", 0)
        h.storage.catalogSupported = false
        let noCatalog = try Self.post(h, #"{"dryRun": false}"#)
        #expect(noCatalog.status == 501 && noCatalog.body["error"].map { "\($0)" }?.contains("fake-storage") == true)
        h.storage.catalogSupported = true
        store.fail(true)
        #expect(try Self.post(h, #"{"dryRun": false}"#).status == 500)
        #expect(h.storage.calls("remove") == 0 && h.storage.keys == ["example.com/a@v1.0.0"])
    }

    @Test("the schedule runs once per interval of monotonic time, with the manifest's dryRun")
    func schedule() throws {
        let store = FakeAccessStore()
        var settings = RetentionSettings(maxAgeDays: 1)
        settings.dryRun = true
        let download = DownloadHarness()
        download.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        store.set("example.com/a", "v1.0.0", 0)
        let dry = RetentionSchedule(retention: Retention(settings: settings, download: download.download, store: store, recorder: nil,
                                                         wallClock: { Self.now }), intervalSeconds: 3_600, startedAt: 1_000)
        #expect(dry.runIfDue(now: 4_599) == nil, "not due before one interval")
        let report = try #require(dry.runIfDue(now: 4_600))
        #expect(report.dryRun && report.plan.evictions.count == 1 && download.storage.keys.count == 1)
        #expect(dry.runIfDue(now: 8_199) == nil, "the next run is an interval after the last")
        settings.dryRun = false
        let apply = RetentionSchedule(retention: Retention(settings: settings, download: download.download, store: store, recorder: nil,
                                                           wallClock: { Self.now }), intervalSeconds: 60, startedAt: 0)
        #expect(apply.runIfDue(now: 60)?.deleted == [VersionID("example.com/a", "v1.0.0")])
        #expect(download.storage.moduleKeys.isEmpty)
    }

    @Test("the plan: ties by path, protected bytes count toward the budget, age before LRU")
    func planOrder() {
        typealias C = RetentionPlan.Candidate
        let plan = RetentionPlan([C(VersionID("b", "v1"), lastAccess: 50, bytes: 10), C(VersionID("a", "v1"), lastAccess: 50, bytes: 10),
                                  C(VersionID("old", "v1"), lastAccess: 0, bytes: 10), C(VersionID("p", "v1"), lastAccess: 0, bytes: 10, protected: true),
                                  C(VersionID("new", "v1"), lastAccess: 99, bytes: 10)],
                                 maxAgeDays: 1, maxTotalBytes: 20, now: 86_401)
        #expect(plan.evictions.map { "\($0.id) \($0.reason)" } == ["old@v1 age", "a@v1 lru", "b@v1 lru"])
        #expect(plan.bytesBefore == 50 && plan.bytesAfter == 20 && !plan.overBudget && plan.protectedCount == 1)
    }
}
