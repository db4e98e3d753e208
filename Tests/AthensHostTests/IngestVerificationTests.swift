// Ingest verification and quarantine against the built athens over FileStorage, a fake upstream and the test
// checksum database (x/mod's sumdb server, Support/SumDBServer.swift), which hashes its records from its own copy
// of the honest fixture tree: an upstream whose copy is altered afterwards disagrees with it.
import Foundation
import Testing
@testable import SumDB

@Suite("ingest verification and quarantine end to end", .blockingBodies, .serialized)
final class IngestVerificationTests {
    static let token = "ingest-admin-token-0123456789"
    let work = TestSupport.makeTemporaryDirectory("ingest")
    /// What the upstream serves (tests alter it); the sumdb hashes from `honest`, a copy made before.
    let tree: String, honest: String, privateTree: String
    let upstream: FakeUpstream, privateUpstream: FakeUpstream
    let sumdb: SumDBServer

    init() throws {
        tree = work + "/tree"
        honest = work + "/honest"
        privateTree = work + "/private"
        try TestSupport.makeFixtureProxy(tree)
        try TestSupport.makeFixtureProxy(honest)
        try TestSupport.makeFixtureProxy(privateTree, "--private")
        upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        privateUpstream = try FakeUpstream(root: privateTree, logPath: work + "/private.log")
        sumdb = try SumDBServer(proxy: honest, directory: work)
    }

    deinit {
        upstream.stop()
        privateUpstream.stop()
        sumdb.stop()
        TestSupport.removeDirectory(work)
    }

    func athens(checksumDB: String? = nil, store: String = "store", upstreamURL: String? = nil, extra: String = "") throws -> AthensServer {
        let db = checksumDB ?? #"{"url": "\#(sumdb.url)", "key": "\#(sumdb.verifierKey)"}"#
        return try AthensServer(manifest: """
        {"admin": {"token": "\(Self.token)"}, "checksumDB": \(db), "spoolDirectory": "\(work)", "accessLog": false, \(extra)
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/\(store)"}},
         "rules": [{"match": "corp.example", "action": "private", "fetcher": "corp"}],
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstreamURL ?? upstream.url)", "timeoutSeconds": 5}},
                      {"name": "corp", "plugin": "ProxyFetcher", "config": {"url": "\(privateUpstream.url)", "timeoutSeconds": 5}}]}
        """, directory: work)
    }

    /// The stored file of FileStorage (a GOPROXY tree), nil when absent.
    func stored(_ module: String, _ version: String, _ ext: String) -> [UInt8]? {
        FileManager.default.contents(atPath: "\(work)/store/\(module)/@v/\(version).\(ext)").map { Array($0) }
    }

    /// Replaces the upstream's zip of example.com/hello@version with a valid zip of other contents (same go.mod).
    func alterUpstreamZip(_ version: String) throws -> [UInt8] {
        let base = "\(tree)/example.com/hello/@v/\(version)"
        let mod = Array(try #require(FileManager.default.contents(atPath: base + ".mod")))
        let zip = FakeZip.stored(["example.com/hello@\(version)/go.mod": mod,
                                  "example.com/hello@\(version)/hello.go": Array("package hello\n\nconst Version = \"moved\"\n".utf8)])
        try Data(zip).write(to: URL(fileURLWithPath: base + ".zip"))
        return zip
    }

    func admin(_ server: AthensServer, _ action: String, _ body: String) throws -> (status: Int, body: String) {
        let client = try RawClient(port: server.port)
        client.send("POST /admin/\(action) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        let response = try #require(client.readResponse())
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func verified(_ server: AthensServer, _ result: String) throws -> Double {
        metric(try server.metrics(), "athens_ingest_verify_total", labels: #"result="\#(result)""#) ?? 0
    }

    @Test("an upstream zip that disagrees with the checksum database is refused with 502 and not stored; an honest one later is stored")
    func alteredUpstreamRefused() throws {
        let server = try athens()
        defer { server.stop() }
        let honestZip = Array(try #require(FileManager.default.contents(atPath: "\(tree)/example.com/hello/@v/v1.0.0.zip")))
        _ = try alterUpstreamZip("v1.0.0")
        for artifact in ["zip", "info", "mod"] {
            let refused = try server.get("/example.com/hello/@v/v1.0.0.\(artifact)")
            let body = String(decoding: refused.body, as: UTF8.self)
            #expect(refused.status == 502, "\(artifact): \(body)")
            #expect(body.contains("example.com/hello@v1.0.0") && body.contains("zip hashes to") && body.contains("checksum database"), "\(body)")
        }
        #expect(stored("example.com/hello", "v1.0.0", "info") == nil && stored("example.com/hello", "v1.0.0", "zip") == nil, "nothing stored")
        #expect(try verified(server, "mismatch") == 3, "each request fetched and was refused: a refused version is never kept")
        // The tag is restored upstream: the next request stores it.
        try Data(honestZip).write(to: URL(fileURLWithPath: "\(tree)/example.com/hello/@v/v1.0.0.zip"))
        let zip = try server.get("/example.com/hello/@v/v1.0.0.zip")
        #expect(zip.status == 200 && zip.body == honestZip)
        #expect(stored("example.com/hello", "v1.0.0", "zip") == honestZip)
        #expect(try verified(server, "ok") == 1)
        #expect(sumdb.requests.filter { $0.hasPrefix("/lookup/example.com/hello@v1.0.0") }.count == 1, "the verified record is looked up once: \(sumdb.requests)")
    }

    @Test("the .info records the h1 hashes the go command puts in go.sum, and the go command downloads through it")
    func recordedHashesMatchGoSum() throws {
        let server = try athens()
        defer { server.stop() }
        let modules = ["example.com/hello@v1.1.0", "example.com/Upper/Case@v0.1.0", "example.com/legacy@v2.0.0+incompatible"]
        let sums = try GoCommand.sums(modules, proxy: server.url)
        for module in modules {
            let (path, version) = (String(module.split(separator: "@")[0]), String(module.split(separator: "@")[1]))
            let escaped = path.replacingOccurrences(of: "U", with: "!u").replacingOccurrences(of: "C", with: "!c")
            let info = try #require(stored(escaped, version, "info"), "\(module) stored")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(info)) as? [String: Any])
            let record = try #require(object["Athens"] as? [String: String], "\(String(decoding: info, as: UTF8.self))")
            #expect(object["Version"] as? String == version && object["Time"] as? String == "2024-01-02T03:04:05Z")
            #expect(record["Zip"] == sums[module] && !(sums[module] ?? "").isEmpty, "\(module): \(record) vs go.sum \(sums[module] ?? "-")")
            let mod = try #require(stored(escaped, version, "mod"))
            #expect(record["Mod"] == DirHash.hashGoMod(mod))
            // What the checksum database holds for it, verified.
            let lookup = String(decoding: try sumdb.fetch("lookup/\(escaped)@\(version)"), as: UTF8.self)
            #expect(lookup.contains("\(path) \(version) \(record["Zip"] ?? "")\n") && lookup.contains("\(path) \(version)/go.mod \(record["Mod"] ?? "")\n"))
        }
        #expect(try verified(server, "ok") == 3)
    }

    @Test("a private module is not looked up in the checksum database")
    func privateNotLookedUp() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/corp.example/secret/@v/v1.0.0.zip").status == 200)
        #expect(stored("corp.example/secret", "v1.0.0", "info") != nil)
        #expect(!sumdb.requests.contains { $0.contains("corp.example") }, "\(sumdb.requests)")
        #expect(try verified(server, "skipped") == 1)
        let info = String(decoding: try #require(stored("corp.example/secret", "v1.0.0", "info")), as: UTF8.self)
        #expect(info.contains(#""Athens":{"Zip":"h1:"#), "recorded all the same: \(info)")
    }

    @Test("with the checksum database down, a public module is refused (fail closed) and nothing is stored; verifyIngest false stores it")
    func checksumDBDown() throws {
        // A port nothing listens on (the sumdb fixture's own, once it is stopped).
        let down = try SumDBServer(proxy: honest, directory: work)
        let url = down.url, key = down.verifierKey
        down.stop()
        let server = try athens(checksumDB: #"{"url": "\#(url)", "key": "\#(key)"}"#)
        let refused = try server.get("/example.com/dep/@v/v1.0.0.mod")
        let body = String(decoding: refused.body, as: UTF8.self)
        #expect(refused.status == 502 && body.contains("example.com/dep@v1.0.0") && body.contains("did not verify"), "\(body)")
        #expect(stored("example.com/dep", "v1.0.0", "info") == nil)
        #expect(try verified(server, "unavailable") == 1)
        #expect(try server.get("/corp.example/secret/@v/v1.1.0.mod").status == 200, "private modules do not need it")
        server.stop()
        let off = try athens(checksumDB: #"{"url": "\#(url)", "key": "\#(key)", "verifyIngest": false}"#)
        defer { off.stop() }
        #expect(try off.get("/example.com/dep/@v/v1.0.0.mod").status == 200)
        #expect(try verified(off, "unavailable") == 0 && verified(off, "ok") == 0)
    }

    @Test("verify with quarantine: a zip altered on disk answers 410 (the go command says why), across a restart, until released")
    func quarantineLifecycle() throws {
        var server = try athens()
        #expect(try server.get("/example.com/hello/@v/v1.2.0-pre.1.zip").status == 200)
        let intact = try admin(server, "verify", #"{"module":"example.com/hello","version":"v1.2.0-pre.1","quarantine":true}"#)
        #expect(intact.status == 200 && intact.body.contains(#""match":true"#) && !intact.body.contains("quarantined"), "\(intact)")
        // Altered on disk after it was stored: differs from both the checksum database and the ingest record.
        let zipPath = "\(work)/store/example.com/hello/@v/v1.2.0-pre.1.zip"
        try Data(FakeZip.stored(["example.com/hello@v1.2.0-pre.1/go.mod": try #require(stored("example.com/hello", "v1.2.0-pre.1", "mod")),
                                 "example.com/hello@v1.2.0-pre.1/hello.go": Array("package hello // altered\n".utf8)]))
            .write(to: URL(fileURLWithPath: zipPath))
        let report = try admin(server, "verify", #"{"module":"example.com/hello","version":"v1.2.0-pre.1","quarantine":true}"#)
        #expect(report.status == 200 && report.body.contains(#""match":false"#) && report.body.contains(#""quarantined":"#), "\(report)")
        #expect(report.body.contains(#""ingest":"h1:"#) && report.body.contains(#""ingestRecord":true"#))
        for artifact in ["zip", "mod", "info"] {
            let gone = try server.get("/example.com/hello/@v/v1.2.0-pre.1.\(artifact)")
            #expect(gone.status == 410 && String(decoding: gone.body, as: UTF8.self).contains("quarantined"), "\(artifact)")
        }
        #expect(try server.get("/athens.quarantine/@v/list").status == 404, "marks are not served")
        let catalog = String(decoding: try server.get("/catalog").body, as: UTF8.self)
        #expect(catalog.contains("example.com/hello") && !catalog.contains("athens.quarantine"), "nor listed: \(catalog)")
        let go = try GoCommand.run(["mod", "download", "example.com/hello@v1.2.0-pre.1"], proxy: server.url)
        #expect(go.status != 0 && go.stderr.contains("410 Gone") && go.stderr.contains("quarantined"), "\(go)")

        // The mark is in storage: a new process on the same storage answers 410 from its first request.
        server.stop()
        server = try athens()
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.2.0-pre.1.zip").status == 410)
        let list = try admin(server, "quarantine", "{}")
        #expect(list.status == 200 && list.body.contains(#""module":"example.com/hello","version":"v1.2.0-pre.1","reason":"verify: the stored zip hashes to"#), "\(list)")
        #expect(try admin(server, "quarantine", #"{"action":"release","module":"example.com/hello","version":"v1.2.0-pre.1"}"#).status == 200)
        #expect(try server.get("/example.com/hello/@v/v1.2.0-pre.1.mod").status == 200)
        #expect(try admin(server, "quarantine", #"{"action":"release","module":"example.com/hello","version":"v1.2.0-pre.1"}"#).status == 404)
        #expect(try admin(server, "quarantine", "{}").body == #"{"quarantined":[]}"#)
    }

    @Test("bad quarantine requests are 400 and change nothing")
    func badQuarantineRequests() throws {
        let server = try athens()
        defer { server.stop() }
        for body in [#"{"action":"add","module":"example.com/hello","version":"v1.0.0"}"#, #"{"action":"add","module":"../x","version":"v1.0.0","reason":"r"}"#,
                     #"{"action":"add","module":"example.com/hello","version":"1.0","reason":"r"}"#, #"{"action":"frob"}"#, #"{"module":"example.com/hello"}"#,
                     #"{"action":"release","version":"v1.0.0"}"#, "not json", #"{"action":"list","extra":1}"#] {
            #expect(try admin(server, "quarantine", body).status == 400, "\(body)")
        }
        #expect(try admin(server, "verify", #"{"module":"example.com/hello","version":"v1.0.0","quarantine":"yes"}"#).status == 400)
        #expect(try admin(server, "quarantine", "{}").body == #"{"quarantined":[]}"#)
        #expect(FileManager.default.fileExists(atPath: "\(work)/store/athens.quarantine") == false)
    }

    @Test("an athens whose upstream is another athens reads its extended .info and records its own hashes")
    func athensBehindAthens() throws {
        let first = try athens()
        defer { first.stop() }
        let second = try athens(store: "store2", upstreamURL: first.url)
        defer { second.stop() }
        let zip = try second.get("/example.com/dep/@v/v1.0.0.zip")
        #expect(zip.status == 200, "\(String(decoding: zip.body, as: UTF8.self))")
        let ours = try #require(FileManager.default.contents(atPath: "\(work)/store2/example.com/dep/@v/v1.0.0.info"))
        let theirs = try #require(stored("example.com/dep", "v1.0.0", "info"))
        #expect(Array(ours) == theirs, "the same hashes, computed again: \(String(decoding: ours, as: UTF8.self))")
        #expect(try verified(second, "ok") == 1 && verified(first, "ok") == 1)
    }

    @Test("a mark made by one instance is seen by another on the same storage within the list-cache TTL; the command line drives it")
    func quarantineSeenByOtherInstance() throws {
        let a = try athens(extra: #""listCacheSeconds": 1,"#), b = try athens(extra: #""listCacheSeconds": 1,"#)
        defer { a.stop(); b.stop() }
        #expect(try b.get("/example.com/dep/@v/v1.0.0.mod").status == 200)
        let cli = ["admin", "--url", a.url, "--token", Self.token, "quarantine"]
        let added = try TestSupport.run(TestSupport.athens, cli + ["add", "example.com/dep@v1.0.0", "--reason", "CVE-0000-0001"])
        #expect(added.status == 0 && added.stdout.contains("CVE-0000-0001"), "\(added)")
        #expect(try a.get("/example.com/dep/@v/v1.0.0.mod").status == 410, "at once where it was made")
        #expect(try waitUntil(timeout: 30) { try b.get("/example.com/dep/@v/v1.0.0.mod").status == 410 }, "b re-reads the marks")
        #expect(String(decoding: try b.get("/example.com/dep/@v/v1.0.0.zip").body, as: UTF8.self).contains("CVE-0000-0001"))
        #expect(try TestSupport.run(TestSupport.athens, cli + ["add", "example.com/dep@v1.0.0"]).status == 2, "add needs a reason")
        #expect(try TestSupport.run(TestSupport.athens, cli + ["release", "example.com/dep@v1.0.0"]).status == 0)
        #expect(try waitUntil(timeout: 30) { try b.get("/example.com/dep/@v/v1.0.0.mod").status == 200 })
        #expect(try TestSupport.run(TestSupport.athens, cli + ["release", "example.com/dep@v1.0.0"]).status == 1, "not quarantined: 404")
    }

    @Test("a public module the checksum database does not know is refused (404 there: not_found), nothing stored")
    func unknownToChecksumDB() throws {
        // example.com/second is served by the upstream but was never in the tree the checksum database hashes from.
        let extra = work + "/second"
        try TestSupport.makeFixtureProxy(extra, "--second")
        try FileManager.default.copyItem(atPath: extra + "/example.com/second", toPath: tree + "/example.com/second")
        let server = try athens()
        defer { server.stop() }
        let refused = try server.get("/example.com/second/@v/v1.0.0.zip")
        let body = String(decoding: refused.body, as: UTF8.self)
        #expect(refused.status == 502 && body.contains("example.com/second@v1.0.0") && body.contains("not found") && body.contains("noSumPatterns"), "\(body)")
        #expect(stored("example.com/second", "v1.0.0", "info") == nil)
        #expect(try verified(server, "not_found") == 1)
    }
}
