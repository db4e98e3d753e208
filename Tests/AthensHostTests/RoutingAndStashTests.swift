import Foundation
import Testing

/// The stash wrappers, routing rules, download and network modes, catalog and sumdb proxying, with real
/// processes on 127.0.0.1: fake upstreams that log every path they are asked, athens, the go command.
@Suite("routing, modes and stash wrappers", .blockingBodies, .serialized)
final class RoutingAndStashTests {
    let work = TestSupport.makeTemporaryDirectory("routing")
    let publicTree: String
    let privateTree: String
    let publicUpstream: FakeUpstream
    let privateUpstream: FakeUpstream

    init() throws {
        publicTree = work + "/public"
        privateTree = work + "/private"
        try TestSupport.makeFixtureProxy(publicTree)
        try TestSupport.makeFixtureProxy(privateTree, "--private")
        publicUpstream = try FakeUpstream(root: publicTree, logPath: work + "/public.log")
        privateUpstream = try FakeUpstream(root: privateTree, logPath: work + "/private.log")
    }

    deinit {
        publicUpstream.stop()
        privateUpstream.stop()
        TestSupport.removeDirectory(work)
    }

    func athens(_ extra: String = "", fetcherTimeout: Int = 10) throws -> AthensServer {
        try AthensServer(manifest: """
        {"storage": {"plugin": "MemoryStorage"}, "spoolDirectory": "\(work)",
         "fetchers": [{"name": "public", "plugin": "ProxyFetcher", "config": {"url": "\(publicUpstream.url)", "timeoutSeconds": \(fetcherTimeout)}},
                      {"name": "private", "plugin": "ProxyFetcher", "config": {"url": "\(privateUpstream.url)", "timeoutSeconds": \(fetcherTimeout)}}],
         "defaultFetcher": "public"\(extra)}
        """, directory: work)
    }

    @Test("stampede: 200 concurrent requests for one uncached zip make one upstream fetch, identical bytes")
    func stampede() throws {
        let server = try athens()
        defer { server.stop() }
        let expected = try Data(contentsOf: URL(fileURLWithPath: publicTree + "/example.com/hello/@v/v1.1.0.zip"))
        // All 200 requests are on the wire before any answer is read.
        let clients = try (0..<200).map { _ in try RawClient(port: server.port) }
        for client in clients { client.send("GET /example.com/hello/@v/v1.1.0.zip HTTP/1.1\r\nHost: x\r\n\r\n") }
        var bodies: [[UInt8]] = []
        var failures: [String] = []
        for client in clients {
            guard let r = client.readResponse(timeout: 60) else { failures.append("no answer"); continue }
            if r.status == 200 { bodies.append(r.body) } else { failures.append("status \(r.status)") }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(bodies.count == 200)
        #expect(bodies.allSatisfy { $0 == Array(expected) })
        let zipFetches = publicUpstream.requests.filter { $0.hasSuffix("/example.com/hello/@v/v1.1.0.zip") }
        #expect(zipFetches.count == 1, "upstream saw \(zipFetches.count) zip fetches")
    }

    @Test("a private module goes only to its fetcher: no trace upstream, nor in checksum lookups")
    func privacy() throws {
        let sumRoot = work + "/sumdb"
        try FileManager.default.createDirectory(atPath: sumRoot + "/lookup/example.com", withIntermediateDirectories: true)
        try "12345\nexample.com/hello v1.0.0 h1:x=\n".write(toFile: sumRoot + "/lookup/example.com/hello@v1.0.0", atomically: true, encoding: .utf8)
        let sumUpstream = try FakeUpstream(root: sumRoot, logPath: work + "/sumdb.log")
        defer { sumUpstream.stop() }
        let server = try athens("""
        , "rules": [{"match": "corp.example", "action": "private", "fetcher": "private"}],
          "sumdbs": [{"name": "sum.golang.org", "url": "\(sumUpstream.url)"}]
        """)
        defer { server.stop() }
        let sums = try GoCommand.sums(["corp.example/secret@v1.1.0"], proxy: server.url)
        #expect(sums["corp.example/secret@v1.1.0"]?.hasPrefix("h1:") == true)
        let versions = try GoCommand.run(["list", "-m", "-versions", "corp.example/secret"], proxy: server.url)
        #expect(versions.stdout.contains("v1.0.0 v1.1.0"), "\(versions.stderr)")
        #expect(try server.get("/corp.example/secret/@latest").status == 200)
        // Checksum lookups: private ones refused here, public ones forwarded; /supported answered locally.
        #expect(try server.get("/sumdb/sum.golang.org/supported").status == 200)
        let refused = try server.get("/sumdb/sum.golang.org/lookup/corp.example/secret@v1.1.0")
        #expect(refused.status == 403)
        let lookup = try server.get("/sumdb/sum.golang.org/lookup/example.com/hello@v1.0.0")
        #expect(lookup.status == 200 && String(decoding: lookup.body, as: UTF8.self).contains("example.com/hello v1.0.0"))
        #expect(try server.get("/sumdb/sum.golang.org/lookup/example.com/../../etc/passwd@v1").status == 404)
        #expect(try server.get("/sumdb/other.example/supported").status == 404)
        // Nothing about corp.example reached the public upstream or the checksum database.
        #expect(!publicUpstream.requests.contains { $0.contains("corp.example") }, "\(publicUpstream.requests)")
        #expect(!sumUpstream.requests.contains { $0.contains("corp.example") })
        #expect(sumUpstream.requests.contains { $0.contains("example.com/hello") })
        #expect(privateUpstream.requests.contains { $0.contains("corp.example/secret/@v/v1.1.0.zip") })
    }

    @Test("excluded modules are 404 and never fetched, even when the go command asks")
    func exclude() throws {
        let server = try athens(#", "rules": [{"match": "example.com/hello", "action": "exclude"}]"#)
        defer { server.stop() }
        for path in ["/example.com/hello/@v/list", "/example.com/hello/@latest", "/example.com/hello/@v/v1.0.0.info",
                     "/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/main.info"] {
            #expect(try server.get(path).status == 404, "\(path)")
        }
        let go = try GoCommand.run(["mod", "download", "-json", "example.com/hello@v1.0.0"], proxy: server.url)
        #expect(go.status != 0)
        #expect(!publicUpstream.requests.contains { $0.contains("example.com/hello") })
        // Other modules are unaffected.
        #expect(try server.get("/example.com/dep/@v/v1.0.0.info").status == 200)
    }

    @Test("download mode none: 404 and nothing fetched; async: 404 now, served once fetched")
    func noneAndAsync() throws {
        let server = try athens(#", "downloadMode": "none", "rules": [{"match": "example.com/dep", "mode": "async"}]"#)
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 404)
        let refused = try GoCommand.run(["mod", "download", "-json", "example.com/hello@v1.0.0"], proxy: server.url)
        #expect(refused.status != 0, "mode none: the go command gets a 404")
        #expect(!publicUpstream.requests.contains { $0.hasSuffix(".info") && $0.contains("hello") })
        // async: the go command's first try gets a 404 and starts the background fetch.
        let early = try GoCommand.run(["mod", "download", "-json", "example.com/dep@v1.0.0"], proxy: server.url)
        #expect(early.status != 0)
        #expect(try waitUntil { try server.get("/example.com/dep/@v/v1.0.0.zip").status == 200 }, "the background fetch stored it")
        let sums = try GoCommand.sums(["example.com/dep@v1.0.0"], proxy: server.url)
        #expect(sums["example.com/dep@v1.0.0"]?.hasPrefix("h1:") == true)
    }

    @Test("download mode redirect sends the go command upstream; async_redirect also stores it")
    func redirectModes() throws {
        let server = try athens(#", "downloadMode": "redirect", "downloadURL": "\#(publicUpstream.url)", "rules": [{"match": "example.com/dep", "mode": "async_redirect"}]"#)
        defer { server.stop() }
        let r = try server.get("/example.com/!upper/!case/@v/v0.1.0.zip")
        #expect(r.status == 302)
        #expect(r.headers["location"] == publicUpstream.url + "/example.com/!upper/!case/@v/v0.1.0.zip")
        let direct = try GoCommand.sums(["example.com/hello@v1.0.0"], proxy: publicUpstream.url)
        let redirected = try GoCommand.sums(["example.com/hello@v1.0.0"], proxy: server.url)
        #expect(redirected == direct && direct.count == 1)
        #expect(try server.get("/example.com/dep/@v/v1.0.0.info").status == 302)
        #expect(try waitUntil { try server.get("/example.com/dep/@v/v1.0.0.info").status == 200 }, "async_redirect stored it in the background")
    }

    @Test("network modes: offline answers from storage, strict fails when the upstream does, fallback serves stale")
    func networkModes() throws {
        // Warm a server's list cache and storage, then take the upstream away.
        let upstream = try FakeUpstream(root: publicTree, logPath: work + "/own.log")
        func server(_ mode: String) throws -> AthensServer {
            try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage"}, "networkMode": "\(mode)", "listCacheSeconds": 0,
             "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 2}}]}
            """, directory: work)
        }
        let fallback = try server("fallback"), strict = try server("strict"), offline = try server("offline")
        defer { fallback.stop(); strict.stop(); offline.stop() }
        for s in [fallback, strict, offline] {
            // Network modes govern list and @latest only (as in Athens): misses are still fetched.
            #expect(try s.get("/example.com/hello/@v/v1.0.0.info").status == 200)
            _ = try s.get("/example.com/hello/@v/list")
            _ = try s.get("/example.com/hello/@latest")
            // The go command reads the latest version's go.mod for retractions: have it cached.
            #expect(try s.get("/example.com/hello/@v/v1.1.0.mod").status == 200)
        }
        let before = upstream.requests.count
        #expect(String(decoding: try offline.get("/example.com/nothing/@v/list").body, as: UTF8.self).contains("offline"))
        #expect(upstream.requests.count == before, "offline never asks the upstream")
        upstream.stop()
        // fallback: the stale list (all three versions), and latest from it.
        let list = try fallback.get("/example.com/hello/@v/list")
        #expect(list.status == 200 && String(decoding: list.body, as: UTF8.self) == "v1.0.0\nv1.1.0\nv1.2.0-pre.1\n")
        #expect(String(decoding: try fallback.get("/example.com/hello/@latest").body, as: UTF8.self).contains("v1.1.0"))
        // The go command sees the same: versions listed through fallback, an error through strict.
        let viaFallback = try GoCommand.run(["list", "-m", "-versions", "example.com/hello"], proxy: fallback.url)
        #expect(viaFallback.stdout.contains("example.com/hello v1.0.0 v1.1.0 v1.2.0-pre.1"), "stderr: \(viaFallback.stderr)")
        let viaOffline = try GoCommand.run(["list", "-m", "-versions", "example.com/hello"], proxy: offline.url)
        #expect(viaOffline.stdout.contains("example.com/hello v1.0.0"), "offline lists what it stored: \(viaOffline.stderr)")
        let viaStrict = try GoCommand.run(["list", "-m", "-versions", "example.com/hello"], proxy: strict.url)
        #expect(viaStrict.status != 0)
        // strict: the upstream failure is the answer.
        #expect(try strict.get("/example.com/hello/@v/list").status == 502)
        #expect(try strict.get("/example.com/hello/@latest").status == 502)
        // Cached files are served in every mode.
        #expect(try strict.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        #expect(try fallback.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
    }

    @Test("hits are answered fast (each in < 1 s) while slow misses fill the download workers")
    func headOfLine() throws {
        let fetcher = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
        let server = try AthensServer(manifest: """
        {"storage": {"plugin": "MemoryStorage"}, "spoolDirectory": "\(work)", "download": {"workers": 4, "queue": 64},
         "fetchers": [{"name": "c", "plugin": "\(fetcher)"}]}
        """, directory: work)
        defer { server.stop() }
        #expect(try server.get("/example.com/ok/hit/@v/v1.0.0.zip").status == 200)
        // 12 slow misses (1 s each) against 4 workers: the queue is busy for 3 s.
        let slow = try (0..<12).map { i -> RawClient in
            let c = try RawClient(port: server.port)
            c.send("GET /example.com/slow/@v/v1.0.\(i).info HTTP/1.1\r\nHost: x\r\n\r\n")
            return c
        }
        // Every worker busy and misses queued: the hits below come after them.
        #expect(try waitUntil {
            let text = try server.metrics()
            return metric(text, "athens_pool_running", labels: #"pool="download""#) == 4
                && (metric(text, "athens_pool_queue_depth", labels: #"pool="download""#) ?? 0) > 0
        }, "the slow misses hold the pool")
        var worst = 0.0
        for _ in 0..<20 {
            let start = Date()
            #expect(try server.get("/example.com/ok/hit/@v/v1.0.0.zip").status == 200)
            worst = max(worst, Date().timeIntervalSince(start))
        }
        // A hit queued behind them would wait for 1 s misses to end.
        #expect(worst < 1, "a hit took \(worst) s behind slow misses")
        for c in slow { #expect(c.readResponse(timeout: 30)?.status == 200) }
    }

    @Test("a stash slower than the stash deadline answers 504 and is stored when it completes")
    func stashDeadline() throws {
        let fetcher = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
        let server = try AthensServer(manifest: """
        {"storage": {"plugin": "MemoryStorage"}, "spoolDirectory": "\(work)", "stash": {"timeoutSeconds": 0.3},
         "fetchers": [{"name": "c", "plugin": "\(fetcher)"}]}
        """, directory: work)
        defer { server.stop() }
        let first = try server.get("/example.com/slow/@v/v1.0.0.zip")
        #expect(first.status == 504)
        // The fetch goes on after the 504; once it has stored the version the next request is a hit.
        #expect(try waitUntil { metric(try server.metrics(), "athens_fetches_total", labels: #"fetcher="c",result="ok""#) == 1 }, "the slow fetch completed")
        #expect(try server.get("/example.com/slow/@v/v1.0.0.zip").status == 200)
    }

    @Test("/catalog pages through stored versions; bad parameters are 400")
    func catalog() throws {
        let server = try athens()
        defer { server.stop() }
        for path in ["example.com/hello/@v/v1.0.0", "example.com/hello/@v/v1.1.0", "example.com/dep/@v/v1.0.0", "example.com/m/@v/v1.0.0"] {
            #expect(try server.get("/\(path).info").status == 200)
        }
        var seen: [String] = []
        var token = ""
        for _ in 0..<10 {
            let r = try server.get("/catalog?pagesize=3" + (token.isEmpty ? "" : "&token=" + token))
            #expect(r.status == 200)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
            let modules = try #require(object["modules"] as? [[String: String]])
            seen += modules.map { $0["module"]! + "@" + $0["version"]! }
            guard let next = object["next"] as? String else { break }
            token = next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? next
        }
        #expect(Set(seen) == ["example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "example.com/dep@v1.0.0", "example.com/m@v1.0.0"])
        #expect(seen.count == 4)
        for bad in ["/catalog?pagesize=0", "/catalog?pagesize=x", "/catalog?pagesize=99999", "/catalog?token=bogus!!", "/catalog?what=1", "/catalog?token=%zz"] {
            #expect(try server.get(bad).status == 400, "\(bad)")
        }
    }
}
