// The admin API through the Router over the in-memory fakes: the token, the off switch, delete (dry run, one
// version, all, glob, no catalog), the caches forgetting, hostile bodies. The test's thread plays the event loop.
// Serialized: the admin metrics are process-wide and only this suite moves them, so the counts are exact.
import Foundation
import JSON
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("admin API over in-memory fakes: token, delete, caches, hostile input", .serialized)
struct AdminAPITests {
    static let token = "0123456789abcdef-admin"
    static let bearer = [(name: "authorization", value: "Bearer \(token)")]

    /// A harness with the admin API on and three stored versions of two modules.
    static func harness() -> DownloadHarness {
        let h = DownloadHarness(adminToken: token)
        for (module, version) in [("example.com/a", "v1.0.0"), ("example.com/a", "v1.1.0"), ("other.org/b", "v0.1.0")] {
            h.storage.put(module, version, FakeVersion.honest(module: module, version: version))
        }
        return h
    }

    static func post(_ h: DownloadHarness, _ action: String, _ json: String, headers: [(name: String, value: String)] = bearer) throws -> Response {
        try #require(h.start("/admin/" + action, method: .post, headers: headers, body: Array(json.utf8)).wait()).response
    }

    static func object(_ response: Response) throws -> JSONObject {
        guard case let .object(object) = try JSONReader.parse(response.bodyBytes) else { throw AdminError.failed("not an object") }
        return object
    }

    static let allKeys = ["example.com/a@v1.0.0", "example.com/a@v1.1.0", "other.org/b@v0.1.0"]

    @Test("admin off: /admin/ paths are 404 and nothing is removed")
    func offIs404() throws {
        let h = DownloadHarness()
        h.storage.put("example.com/a", "v1.0.0", FakeVersion.honest(module: "example.com/a", version: "v1.0.0"))
        let answer = try #require(h.start("/admin/delete", method: .post, headers: Self.bearer,
                                          body: Array(#"{"module":"example.com/a","versions":"all","dryRun":false}"#.utf8)).wait())
        #expect(answer.response.status == 404)
        #expect(h.storage.calls("remove") == 0 && h.storage.keys == ["example.com/a@v1.0.0"])
    }

    @Test("a missing, wrong, truncated or Basic token is 401 with nothing done, and counted",
          arguments: [nil, "Bearer wrong-token-wrong-token!", "Bearer " + String(token.dropLast()), "Bearer " + token + "x",
                      "Basic " + token, "Bearer", token])
    func badTokenIs401(_ header: String?) throws {
        let h = Self.harness()
        let before = metric(Metrics.shared.render(), "athens_admin_requests_total", labels: #"action="delete",result="unauthorized""#) ?? 0
        let response = try Self.post(h, "delete", #"{"module":"example.com/a","versions":"all","dryRun":false}"#,
                                     headers: header.map { [(name: "authorization", value: $0)] } ?? [])
        #expect(response.status == 401)
        #expect(response.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(h.storage.calls("remove") == 0 && h.storage.calls("list") == 0 && h.storage.keys == Self.allKeys)
        #expect(metric(Metrics.shared.render(), "athens_admin_requests_total", labels: #"action="delete",result="unauthorized""#) == before + 1)
    }

    @Test("the scheme is case-insensitive and basicAuth does not guard /admin/")
    func tokenIndependentOfBasicAuth() throws {
        let h = DownloadHarness(auth: BasicAuth(user: "u", password: "p"), adminToken: Self.token)
        h.storage.put("example.com/a", "v1.0.0", FakeVersion.honest(module: "example.com/a", version: "v1.0.0"))
        let response = try Self.post(h, "delete", #"{"module":"example.com/a","version":"v1.0.0"}"#,
                                     headers: [(name: "authorization", value: "bEaReR   \(Self.token)")])
        #expect(response.status == 200)
        // And the admin token opens nothing else.
        #expect(h.get("/example.com/a/@v/list", headers: Self.bearer)?.response.status == 401)
    }

    @Test("delete is a dry run unless told otherwise: it answers what would go, removes nothing, on the pool")
    func dryRunByDefault() throws {
        let h = Self.harness()
        let answer = try #require(h.start("/admin/delete", method: .post, headers: Self.bearer,
                                          body: Array(#"{"module":"example.com/a","versions":"all"}"#.utf8)).wait())
        #expect(answer.response.status == 200)
        #expect(!answer.onCaller && answer.poolRunning >= 1, "storage calls run on the download pool")
        let body = try Self.object(answer.response)
        #expect(body["dryRun"] == .bool(true))
        #expect(body["wouldDelete"] == .array([
            .object(JSONObject([("module", .string("example.com/a")), ("version", .string("v1.0.0"))])),
            .object(JSONObject([("module", .string("example.com/a")), ("version", .string("v1.1.0"))])),
        ]))
        #expect(h.storage.calls("remove") == 0 && h.storage.keys == Self.allKeys)
    }

    @Test("deleting one version removes exactly it, and the memory cache forgets its files")
    func deleteOneVersion() throws {
        let h = Self.harness()
        // Served once: the small files are now in memory and a hit needs no storage call.
        for artifact in ["info", "mod", "zip"] { #expect(h.get("/example.com/a/@v/v1.0.0.\(artifact)")?.response.status == 200) }
        #expect(h.download.cache.get("example.com/a@v1.0.0.mod") != nil)
        let before = metric(Metrics.shared.render(), "athens_admin_requests_total", labels: #"action="delete",result="ok""#) ?? 0
        let response = try Self.post(h, "delete", #"{"module":"example.com/a","version":"v1.0.0","dryRun":false}"#)
        #expect(response.status == 200)
        #expect(try Self.object(response)["deleted"] == .array([.object(JSONObject([("module", .string("example.com/a")), ("version", .string("v1.0.0"))]))]))
        #expect(h.storage.moduleKeys == ["example.com/a@v1.1.0", "other.org/b@v0.1.0"])
        #expect(h.download.cache.get("example.com/a@v1.0.0.mod") == nil && h.download.cache.get("example.com/a@v1.0.0.zip") == nil)
        // The fake upstream has no such version: once forgotten, the file is gone for clients too.
        #expect(h.get("/example.com/a/@v/v1.0.0.mod")?.response.status == 404)
        #expect(metric(Metrics.shared.render(), "athens_admin_requests_total", labels: #"action="delete",result="ok""#) == before + 1)
        // A version that is not stored: 404, nothing removed.
        #expect(try Self.post(h, "delete", #"{"module":"example.com/a","version":"v1.9.0","dryRun":false}"#).status == 404)
        #expect(h.storage.calls("remove") == 1)
    }

    @Test("versions all removes every version of the module and nothing else; the list cache forgets the module")
    func deleteAllVersions() throws {
        let h = Self.harness()
        h.download.lists.store("list\u{0}public\u{0}example.com/a", Array("v1.0.0\nv1.1.0".utf8))
        h.download.lists.store("list\u{0}public\u{0}other.org/b", Array("v0.1.0".utf8))
        let response = try Self.post(h, "delete", #"{"module":"example.com/a","versions":"all","dryRun":false}"#)
        #expect(response.status == 200)
        #expect(h.storage.moduleKeys == ["other.org/b@v0.1.0"])
        #expect(h.download.lists.stale("list\u{0}public\u{0}example.com/a") == nil)
        #expect(h.download.lists.stale("list\u{0}public\u{0}other.org/b") != nil, "another module's list stays")
    }

    @Test("a glob matches module paths through the catalog; a storage without catalog answers 501 naming it")
    func deleteGlob() throws {
        let h = Self.harness()
        let dry = try Self.post(h, "delete", #"{"glob":"example.com/*"}"#)
        #expect(dry.status == 200)
        if case let .array(items)? = try Self.object(dry)["wouldDelete"] { #expect(items.count == 2) } else { Issue.record("no wouldDelete") }
        #expect(h.storage.keys == Self.allKeys)
        #expect(try Self.post(h, "delete", #"{"glob":"other.org","dryRun":false}"#).status == 200)
        #expect(h.storage.moduleKeys == ["example.com/a@v1.0.0", "example.com/a@v1.1.0"])

        h.storage.catalogSupported = false
        let refused = try Self.post(h, "delete", #"{"glob":"example.com/*","dryRun":false}"#)
        #expect(refused.status == 501)
        #expect(refused.bodyText.contains("fake-storage"))
        #expect(h.storage.moduleKeys == ["example.com/a@v1.0.0", "example.com/a@v1.1.0"])
    }

    @Test("a failing remove is a 500 naming the version; the others still go")
    func removeFailure() throws {
        let h = Self.harness()
        h.storage.fail("remove", with: .unavailable)
        let response = try Self.post(h, "delete", #"{"module":"example.com/a","versions":"all","dryRun":false}"#)
        #expect(response.status == 500)
        if case let .array(items)? = try Self.object(response)["failed"] { #expect(items.count == 2) } else { Issue.record("no failed") }
    }

    @Test("hostile or malformed bodies are 400 and nothing is removed", arguments: [
        "", "not json", "[]", #"{"module":"example.com/a"}"#, #"{"module":"../etc","version":"v1.0.0","dryRun":false}"#,
        #"{"module":"example.com/../a","versions":"all","dryRun":false}"#, #"{"module":"example.com/a","version":"1.0.0","dryRun":false}"#,
        #"{"module":"example.com/a","version":"v1.0","dryRun":false}"#, #"{"module":"example.com/a/v2","version":"v1.0.0","dryRun":false}"#,
        #"{"module":"example.com/a","versions":"some","dryRun":false}"#, #"{"module":"example.com/a","version":"v1.0.0","glob":"*","dryRun":false}"#,
        #"{"glob":"","dryRun":false}"#, #"{"glob":"a b","dryRun":false}"#, #"{"module":"example.com/a","versions":"all","dryRun":"no"}"#,
        #"{"module":"example.com/a","versions":"all","dryRun":false,"force":true}"#, #"{"module":7,"versions":"all"}"#,
    ])
    func hostileBodies(_ json: String) throws {
        let h = Self.harness()
        let response = try Self.post(h, "delete", json)
        #expect(response.status == 400, "\(json): \(response.bodyText)")
        #expect(try Self.object(response)["error"] != nil)
        #expect(h.storage.calls("remove") == 0 && h.storage.keys == Self.allKeys)
    }

    @Test("an unknown action is 404; GET on an action is 405; POST outside /admin/ is 405")
    func routes() throws {
        let h = Self.harness()
        #expect(try Self.post(h, "nuke", "{}").status == 404)
        let get = try #require(h.start("/admin/delete", headers: Self.bearer).wait()).response
        #expect(get.status == 405 && get.header("Allow") == "POST")
        #expect(try #require(h.start("/example.com/a/@v/list", method: .post, body: Array("x".utf8)).wait()).response.status == 405)
        #expect(h.storage.calls("remove") == 0)
    }

    @Test("the token compare accepts exactly the token")
    func tokenCompare() {
        let token = AdminToken("abcdefghijklmnop")
        #expect(token.accepts("Bearer abcdefghijklmnop"))
        #expect(token.accepts("BEARER  abcdefghijklmnop"))
        for header in ["Bearer abcdefghijklmno", "Bearer abcdefghijklmnopq", "Bearer abcdefghijklmnoP", "Bearerabcdefghijklmnop", "", "Bearer "] {
            #expect(!token.accepts(header), "\(header)")
        }
        #expect(!token.accepts(nil))
    }
}
