// Routing rules, list merging, @latest, query resolution, the catalog and the router's own endpoints through the
// seams, no .so loaded (Support/DownloadHarness.swift: a Router over FakeStorage and the fetchers "public" and
// "private"). The end-to-end versions of these run the real athens (RoutingAndStashTests, QueriesAndLatestTests).
import Foundation
import Testing
@testable import PluginHost
@testable import RequestPath

extension FakeFetcher {
    /// Every call this fetcher saw.
    var allCalls: Int { calls("fetch") + calls("list") + calls("resolve") }
}

@Suite("routing, list, @latest, queries and catalog over in-memory fakes")
struct DownloadRoutingUnitTests {
    @Test("a private module goes only to its rule's fetcher, for files, list, @latest and queries")
    func privateRule() throws {
        let h = DownloadHarness(rules: [RoutingRule(patterns: "corp.example", action: .private(fetcher: "private")),
                                        RoutingRule(patterns: "orphan.example", action: .private(fetcher: "missing"))])
        for fetcher in [h.inhouse, h.upstream] {
            // The public fetcher has it too: a leak would find it there.
            fetcher.add("corp.example/lib", "v1.0.0")
            fetcher.resolves("corp.example/lib", "main", to: "v1.0.0")
            fetcher.add("orphan.example/lib", "v1.0.0")
        }
        #expect(h.get("/corp.example/lib/@v/v1.0.0.zip")?.response.status == 200)
        #expect(h.get("/corp.example/lib/@v/list")?.response.bodyText == "v1.0.0\n")
        #expect(h.get("/corp.example/lib/@latest")?.response.status == 200)
        #expect(h.get("/corp.example/lib/@v/main.info")?.response.status == 200)
        #expect(h.inhouse.calls("fetch") == 1 && h.inhouse.calls("list") >= 1 && h.inhouse.calls("resolve") >= 2)
        // A private rule naming no loaded fetcher: nothing to ask, and never the default route.
        #expect(h.get("/orphan.example/lib/@v/v1.0.0.zip")?.response.status == 404)
        #expect(h.get("/orphan.example/lib/@v/list")?.response.status == 404)
        #expect(h.upstream.allCalls == 0, "the public fetcher saw a private module")
        #expect(h.download.policy.refusesSumLookup("corp.example/lib"))
    }

    @Test("an excluded module is 404 everywhere, even when stored; neither storage nor a fetcher is asked")
    func excludeRule() throws {
        let h = DownloadHarness(rules: [RoutingRule(patterns: "bad.example", action: .exclude)])
        h.storage.put("bad.example/x", "v1.0.0", .honest(module: "bad.example/x", version: "v1.0.0"))
        h.upstream.add("bad.example/x", "v1.0.0")
        for target in ["/bad.example/x/@v/v1.0.0.zip", "/bad.example/x/@v/v1.0.0.info", "/bad.example/x/@v/list", "/bad.example/x/@latest",
                       "/bad.example/x/@v/main.info"] {
            let answer = try #require(h.get(target))
            #expect(answer.response.status == 404, "\(target)")
            #expect(answer.response.bodyText.contains("excluded"), "\(target)")
        }
        #expect(h.settle())
        #expect(h.storage.calls("open") == 0 && h.storage.calls("list") == 0)
        #expect(h.upstream.allCalls == 0)
    }

    @Test("a rule's mode and fetcher override the global ones for its modules only")
    func ruleOverrides() throws {
        let h = DownloadHarness(mode: .none, rules: [
            RoutingRule(patterns: "sync.example", action: .fetch(fetcher: nil), mode: .sync),
            RoutingRule(patterns: "redirect.example", action: .fetch(fetcher: nil), mode: .redirect),
            RoutingRule(patterns: "named.example", action: .fetch(fetcher: "private"), mode: .sync),
        ], downloadURL: "https://elsewhere.example")
        for module in ["sync.example/m", "other.example/m", "redirect.example/m"] { h.upstream.add(module, "v1.0.0") }
        h.inhouse.add("named.example/m", "v1.0.0")
        #expect(h.get("/sync.example/m/@v/v1.0.0.zip")?.response.status == 200)
        #expect(h.get("/other.example/m/@v/v1.0.0.zip")?.response.status == 404, "the global mode is none")
        #expect(h.get("/redirect.example/m/@v/v1.0.0.zip")?.response.header("Location") == "https://elsewhere.example/redirect.example/m/@v/v1.0.0.zip")
        #expect(h.get("/named.example/m/@v/v1.0.0.zip")?.response.status == 200)
        #expect(h.settle())
        #expect(h.upstream.calls("fetch") == 1 && h.inhouse.calls("fetch") == 1)
        #expect(h.storage.keys == ["named.example/m@v1.0.0", "sync.example/m@v1.0.0"])
    }

    @Test("list: storage ∪ fetcher, semver-sorted, pseudo-versions dropped; the fetcher's answer is cached for the TTL")
    func listMerging() throws {
        let h = DownloadHarness()
        let module = "example.com/m"
        for version in ["v1.0.0", "v0.0.0-20240101000000-abcdefabcdef"] { h.storage.put(module, version, .honest(module: module, version: version)) }
        for version in ["v1.1.0", "v1.2.0-pre", "v1.0.0", "v0.0.0-20230101000000-abcdefabcdef"] { h.upstream.add(module, version) }
        let answer = try #require(h.get("/example.com/m/@v/list"))
        #expect(answer.response.status == 200)
        #expect(answer.response.bodyText == "v1.0.0\nv1.1.0\nv1.2.0-pre\n")
        #expect(answer.response.header("Cache-Control") == "no-cache")
        #expect(!answer.onCaller, "a list waits on the pool")
        #expect(h.get("/example.com/m/@v/list")?.response.bodyText == "v1.0.0\nv1.1.0\nv1.2.0-pre\n")
        #expect(h.upstream.calls("list") == 1, "the second list came from the list cache")

        // Storage holding only a pseudo-version knows the module: 200 and empty, so the go command asks @latest.
        h.storage.put("example.com/pseudo", "v0.0.0-20240101000000-abcdefabcdef", .honest(module: "example.com/pseudo", version: "v0.0.0-20240101000000-abcdefabcdef"))
        let pseudo = try #require(h.get("/example.com/pseudo/@v/list"))
        #expect(pseudo.response.status == 200 && pseudo.response.bodyBytes.isEmpty)
        #expect(h.get("/example.com/unknown/@v/list")?.response.status == 404)
    }

    @Test("list with the fetcher down: fallback serves storage (or the stale answer), strict fails, offline asks no fetcher")
    func listNetworkModes() throws {
        let module = "example.com/m"
        func harness(_ network: NetworkMode, ttl: Double = 60) -> DownloadHarness {
            let h = DownloadHarness(network: network, listTTL: ttl)
            h.storage.put(module, "v1.0.0", .honest(module: module, version: "v1.0.0"))
            h.upstream.add(module, "v1.1.0")
            return h
        }
        let fallback = harness(.fallback)
        fallback.upstream.fail("list", with: .unavailable)
        #expect(fallback.get("/example.com/m/@v/list")?.response.bodyText == "v1.0.0\n")
        #expect(fallback.get("/example.com/nothing/@v/list")?.response.status == 502, "nothing stored to fall back on")

        let strict = harness(.strict)
        strict.upstream.fail("list", with: .unavailable)
        #expect(strict.get("/example.com/m/@v/list")?.response.status == 502)

        let offline = harness(.offline)
        #expect(offline.get("/example.com/m/@v/list")?.response.bodyText == "v1.0.0\n")
        #expect(offline.get("/example.com/nothing/@v/list")?.response.status == 404)
        #expect(offline.upstream.allCalls == 0)

        // TTL 0: every list asks the fetcher; when it then fails, the last answer is served stale.
        let stale = harness(.fallback, ttl: 0)
        #expect(stale.get("/example.com/m/@v/list")?.response.bodyText == "v1.0.0\nv1.1.0\n")
        stale.upstream.fail("list", with: .timeout)
        #expect(stale.get("/example.com/m/@v/list")?.response.bodyText == "v1.0.0\nv1.1.0\n")
        #expect(stale.upstream.calls("list") == 2)
    }

    @Test("@latest from storage: a release over a pre-release over the newest pseudo-version by time", arguments: [
        (["v1.0.0", "v1.1.0-pre", "v0.0.0-20250101000000-abcdefabcdef"], "v1.0.0"),
        (["v1.0.1-pre", "v1.1.0-pre", "v0.0.0-20250101000000-abcdefabcdef"], "v1.1.0-pre"),
        (["v0.1.0-0.20230101000000-abcdefabcdef", "v0.0.0-20240101000000-abcdefabcdef"], "v0.0.0-20240101000000-abcdefabcdef"),
    ])
    func latestFromStorage(stored: [String], expected: String) throws {
        let h = DownloadHarness()
        let module = "example.com/m"
        for version in stored { h.storage.put(module, version, .honest(module: module, version: version)) }
        let answer = try #require(h.get("/example.com/m/@latest"))
        #expect(answer.response.status == 200)
        #expect(answer.response.bodyBytes == FakeVersion.honest(module: module, version: expected).info)
        #expect(answer.response.header("Cache-Control") == "no-cache")
        #expect(h.upstream.calls("resolve") == 1, "the fetcher was asked first (and knows nothing)")
    }

    @Test("@latest from the fetcher: its own answer (cached), else the pick from its list without pseudo-versions")
    func latestFromFetcher() throws {
        let h = DownloadHarness()
        h.storage.put("example.com/m", "v1.9.0", .honest(module: "example.com/m", version: "v1.9.0"))
        h.upstream.add("example.com/m", "v1.5.0")
        h.upstream.resolves("example.com/m", "latest", to: "v1.5.0")
        #expect(h.get("/example.com/m/@latest")?.response.bodyBytes == FakeVersion.honest(module: "example.com/m", version: "v1.5.0").info)
        #expect(h.get("/example.com/m/@latest")?.response.status == 200)
        #expect(h.upstream.calls("resolve") == 1, "cached for the TTL")

        for version in ["v1.0.0", "v1.1.0-pre", "v0.0.0-20990101000000-abcdefabcdef"] { h.upstream.add("example.com/n", version) }
        #expect(h.get("/example.com/n/@latest")?.response.bodyBytes == FakeVersion.honest(module: "example.com/n", version: "v1.0.0").info)
        // A fetcher naming a version the path cannot have is a bad gateway, never served.
        h.upstream.add("example.com/liar", "v2.0.0")
        h.upstream.resolves("example.com/liar", "latest", to: "v2.0.0")
        #expect(h.get("/example.com/liar/@latest")?.response.status == 502)
        #expect(h.get("/example.com/nowhere/@latest")?.response.status == 404)
    }

    @Test("@latest with the fetcher down: from storage unless strict; offline never asks")
    func latestNetworkModes() throws {
        let module = "example.com/m"
        let storedInfo = FakeVersion.honest(module: module, version: "v1.0.0").info
        for network in NetworkMode.allCases {
            let h = DownloadHarness(network: network)
            h.storage.put(module, "v1.0.0", .honest(module: module, version: "v1.0.0"))
            h.upstream.fail("resolve", with: .unavailable)
            let answer = try #require(h.get("/example.com/m/@latest"))
            if network == .strict {
                #expect(answer.response.status == 502)
            } else {
                #expect(answer.response.status == 200 && answer.response.bodyBytes == storedInfo, "\(network)")
            }
            #expect(h.upstream.calls("resolve") == (network == .offline ? 0 : 1), "\(network)")
            #expect(h.get("/example.com/nothing/@latest")?.response.status == (network == .offline ? 404 : 502), "\(network)")
        }
    }

    @Test("a query (branch name) resolves through the fetcher; the canonical version is stored and served")
    func queryResolution() throws {
        let h = DownloadHarness()
        let module = "example.com/m"
        h.upstream.add(module, "v1.2.0")
        h.upstream.resolves(module, "main", to: "v1.2.0")
        let answer = try #require(h.get("/example.com/m/@v/main.info"))
        #expect(answer.response.status == 200)
        #expect(answer.response.bodyBytes == FakeVersion.honest(module: module, version: "v1.2.0").ingested.info)
        #expect(h.storage.stored(module, "v1.2.0") == FakeVersion.honest(module: module, version: "v1.2.0").ingested)
        #expect(h.get("/example.com/m/@v/main.info")?.response.status == 200)
        #expect(h.upstream.calls("fetch") == 1, "the second query found the version stored")

        #expect(h.get("/example.com/m/@v/latest.info")?.response.bodyText.contains("use @latest") == true)
        #expect(h.get("/example.com/m/@v/main.mod")?.response.status == 404, "only .info answers queries")
        #expect(h.get("/example.com/m/@v/nosuch.info")?.response.status == 404)
        // A resolver naming a version the path cannot have: 502, nothing stored.
        h.upstream.add(module, "v2.0.0")
        h.upstream.resolves(module, "dev", to: "v2.0.0")
        #expect(h.get("/example.com/m/@v/dev.info")?.response.status == 502)
        // v3.2.0 of a path without /v3 can only be v3.2.0+incompatible: served from storage when stored…
        h.storage.put(module, "v3.2.0+incompatible", .honest(module: module, version: "v3.2.0+incompatible"))
        #expect(h.get("/example.com/m/@v/v3.2.0.info")?.response.bodyBytes == FakeVersion.honest(module: module, version: "v3.2.0+incompatible").info)
        // …and any other answer for such a tag is refused.
        h.upstream.resolves(module, "v4.0.0", to: "v1.2.0")
        #expect(h.get("/example.com/m/@v/v4.0.0.info")?.response.status == 502)
        #expect(h.storage.keys == ["example.com/m@v1.2.0", "example.com/m@v3.2.0+incompatible"])

        let none = DownloadHarness(mode: .none)
        none.upstream.resolves(module, "main", to: "v1.2.0")
        #expect(none.get("/example.com/m/@v/main.info")?.response.bodyText.contains("queries need a fetcher") == true)
        #expect(none.upstream.allCalls == 0)
    }

    @Test("/catalog pages through storage; bad parameters are 400 without a storage call; storage errors are mapped")
    func catalog() throws {
        let h = DownloadHarness()
        for name in ["example.com/a", "example.com/b", "example.com/c"] { h.storage.put(name, "v1.0.0", .honest(module: name, version: "v1.0.0")) }
        func page(_ target: String) throws -> (modules: [String], next: String?) {
            let answer = try #require(h.get(target))
            #expect(answer.response.status == 200 && answer.response.header("Content-Type") == "application/json")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.response.bodyBytes)) as? [String: Any])
            let modules = try #require(object["modules"] as? [[String: String]])
            return (modules.map { $0["module"]! + "@" + $0["version"]! }, object["next"] as? String)
        }
        let first = try page("/catalog?pagesize=2")
        #expect(first.modules == ["example.com/a@v1.0.0", "example.com/b@v1.0.0"])
        let next = try #require(first.next)
        let second = try page("/catalog?pagesize=2&token=\(next)")
        #expect(second.modules == ["example.com/c@v1.0.0"] && second.next == nil)
        #expect(try page("/catalog").modules.count == 3)
        #expect(h.storage.calls("catalog") == 3)

        for bad in ["/catalog?pagesize=0", "/catalog?pagesize=10001", "/catalog?pagesize=x", "/catalog?size=2", "/catalog?token=%zz",
                    "/catalog?token=" + String(repeating: "t", count: 1024)] {
            #expect(h.get(bad)?.response.status == 400, "\(bad)")
        }
        #expect(h.storage.calls("catalog") == 3)
        h.storage.fail("catalog", with: .invalid)
        #expect(h.get("/catalog?token=junk")?.response.status == 400)
        h.storage.fail("catalog", with: .unavailable)
        #expect(h.get("/catalog")?.response.status == 502)
    }

    @Test("the router: basic auth on every route but the probes, /readyz asks storage off the loop, bad paths 4xx")
    func routerEndpoints() throws {
        let h = DownloadHarness(auth: BasicAuth(user: "u", password: "p"))
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        let refused = try #require(h.get("/example.com/a/@v/v1.0.0.mod"))
        #expect(refused.response.status == 401 && refused.response.header("WWW-Authenticate") == "Basic realm=\"athens\"")
        // base64("u:p") is "dTpw"; the scheme is case-insensitive, then one or more spaces.
        for good in ["Basic dTpw", "basic   dTpw", "BASIC dTpw"] {
            #expect(h.get("/example.com/a/@v/v1.0.0.mod", headers: [("authorization", good)])?.response.status == 200, "\(good)")
        }
        for bad in ["Basic dTpx", "Basic dTpw=", "Bearer dTpw", "Basic", "dTpw"] {
            #expect(h.get("/example.com/a/@v/v1.0.0.mod", headers: [("authorization", bad)])?.response.status == 401, "\(bad)")
        }
        #expect(h.get("/healthz")?.response.status == 200)
        let ready = try #require(h.get("/readyz"))
        #expect(ready.response.status == 200 && !ready.onCaller)
        h.storage.fail("exists", with: .unavailable)
        #expect(h.get("/readyz")?.response.status == 503)

        let open = DownloadHarness()
        #expect(open.get("/nothing-here")?.response.status == 404)
        #expect(open.get("/example.com/%zz/@v/list")?.response.status == 400)
        #expect(open.get("/example.com/Upper/@v/list")?.response.status == 400)
        #expect(open.get("/example.com/a/@v/v1.0.0.tar")?.response.status == 404)
        #expect(open.get("/sumdb/sum.golang.org/latest")?.response.status == 404, "no checksum database proxied")
        #expect(open.storage.calls("open") == 0 && open.upstream.allCalls == 0)
    }
}
