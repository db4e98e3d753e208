// Every admin operation against the built athens on S3Storage (the Ceph RGW of scripts/rgw.sh) and the real go
// command: upload, prefetch of a real go.sum, delete (one version and a glob through the S3 catalog), verify against
// the test checksum database with quarantine and release, and retention with injected ages and a byte budget.
// What each call changes is checked in the bucket itself (signed listings and reads through RGW.send).
import Foundation
import Testing
@testable import SumDB

@Suite("admin API end to end over S3Storage on Ceph RGW", .blockingBodies, .serialized,
       .enabled(if: RGW.isAvailable, "needs the RGW of scripts/rgw.sh (scripts/test.sh starts it)"))
final class AdminS3EndToEndTests {
    static let token = "s3-admin-token-0123456789"
    /// S3Storage's key prefix: everything athens writes must be under it (the catalog strips it).
    static let prefix = "mirror/"
    let work = TestSupport.makeTemporaryDirectory("admins3")
    /// What the upstream serves; the checksum database hashes from `honest`, a copy made before.
    let tree: String, honest: String
    let upstream: FakeUpstream
    let sumdb: SumDBServer
    let bucket: String

    init() throws {
        tree = work + "/tree"
        honest = work + "/honest"
        for out in [tree, honest] {
            guard try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_fixture_proxy.py", out]).status == 0 else {
                throw TestFailure("fixture tree")
            }
        }
        upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        sumdb = try SumDBServer(proxy: honest, directory: work)
        bucket = try RGW.makeBucket("admin")
    }

    deinit {
        upstream.stop()
        sumdb.stop()
        try? RGW.removeBucket(bucket)
        TestSupport.removeDirectory(work)
    }

    /// athens on S3Storage over this test's bucket, with the admin API, the checksum database and `extra` keys.
    func athens(_ extra: String = "") throws -> AthensServer {
        try AthensServer(manifest: """
        {"admin": {"token": "\(Self.token)"}, "spoolDirectory": "\(work)", "accessLog": false,
         "checksumDB": {"url": "\(sumdb.url)", "key": "\(sumdb.verifierKey)"}\(extra),
         "storage": {"plugin": "S3Storage", "config": \(RGW.json(RGW.config(bucket: bucket, ["prefix": Self.prefix])))},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 20}}]}
        """, directory: work)
    }

    func admin(_ server: AthensServer, _ action: String, _ body: [UInt8], query: String = "") throws -> (status: Int, body: String) {
        let client = try RawClient(port: server.port)
        client.send(Array("POST /admin/\(action)\(query) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let response = try #require(client.readResponse(timeout: 60))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func admin(_ server: AthensServer, _ action: String, _ body: String) throws -> (status: Int, body: String) {
        try admin(server, action, Array(body.utf8))
    }

    /// The bucket's keys, without the prefix (a key outside it is kept whole, so no expected set matches it), and
    /// without the deletion tombstones every delete writes (`tombstones()` has those).
    func keys() throws -> Set<String> {
        try allKeys().filter { !$0.hasPrefix("athens.deleted/") }
    }

    /// The tombstones (`athens.deleted` versions) in the bucket.
    func tombstones() throws -> Set<String> {
        try allKeys().filter { $0.hasPrefix("athens.deleted/") }
    }

    private func allKeys() throws -> Set<String> {
        Set(try RGW.keys(bucket).map { $0.hasPrefix(Self.prefix) ? String($0.dropFirst(Self.prefix.count)) : $0 })
    }

    /// The bytes of the object `key` (under the prefix).
    func object(_ key: String) throws -> [UInt8] {
        let response = try RGW.send(.get, bucket: bucket, key: Self.prefix + key)
        guard response.status == 200 else { throw TestFailure("GET \(key): HTTP \(response.status)") }
        return response.body
    }

    /// The three objects of a version (`path` escaped as in the bucket).
    static func objects(_ path: String, _ version: String) -> Set<String> {
        Set(["info", "mod", "zip"].map { "\(path)/@v/\(version).\($0)" })
    }

    /// The module versions stored in the bucket, as path@version (escaped paths; the quarantine marks left out).
    func storedVersions() throws -> Set<String> {
        Set(try keys().compactMap { key -> String? in
            guard key.hasSuffix(".info"), !key.hasPrefix("athens.quarantine/"), let at = key.range(of: "/@v/") else { return nil }
            return String(key[..<at.lowerBound]) + "@" + String(key[at.upperBound...].dropLast(".info".count))
        })
    }

    func fetches(_ server: AthensServer) throws -> Double {
        metric(try server.metrics(), "athens_fetches_total", labels: #"fetcher="u",result="ok""#) ?? 0
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    static func items(_ object: [String: Any], _ key: String) -> [String] {
        ((object[key] as? [[String: Any]]) ?? []).map { "\($0["module"] ?? "")@\($0["version"] ?? "")" }
    }

    @Test("upload: the go command downloads it from the bucket with the h1: hashes it computes itself, and a second upload is 409")
    func upload() throws {
        let server = try athens()
        defer { server.stop() }
        let module = "example.com/uploaded"
        let mod = Array("module \(module)\n\ngo 1.21\n".utf8)
        let zip = FakeZip.stored(["\(module)@v1.4.0/go.mod": mod, "\(module)@v1.4.0/up.go": Array("package uploaded\n\nconst V = 4\n".utf8)])
        let stored = try admin(server, "upload", mod + zip, query: "?module=\(module)&version=v1.4.0&modBytes=\(mod.count)&time=2024-05-06T07:08:09Z")
        #expect(stored.status == 200, "\(stored.body)")
        #expect(try keys() == Self.objects(module, "v1.4.0"), "the three files and nothing else")
        #expect(try object("\(module)/@v/v1.4.0.zip") == zip)

        // `go mod download -json`: Sum and GoModSum are what the go command hashed from the files it got (go.sum's lines).
        let download = try GoCommand.run(["mod", "download", "-json", "\(module)@v1.4.0"], proxy: server.url)
        #expect(download.status == 0, "\(download.stderr)")
        let reported = try Self.json(download.stdout)
        let zipHash = try DirHash.hashZip(bytes: zip)
        #expect(reported["Sum"] as? String == zipHash && reported["GoModSum"] as? String == DirHash.hashGoMod(mod), "\(reported)")
        // The ingest record in the bucket's .info holds the same hashes.
        let info = try Self.json(String(decoding: try object("\(module)/@v/v1.4.0.info"), as: UTF8.self))
        #expect((info["Athens"] as? [String: String])?["Zip"] == zipHash && info["Time"] as? String == "2024-05-06T07:08:09Z", "\(info)")

        let other = FakeZip.stored(["\(module)@v1.4.0/go.mod": mod, "\(module)@v1.4.0/up.go": Array("package uploaded\n\nconst V = 5\n".utf8)])
        let again = try admin(server, "upload", mod + other, query: "?module=\(module)&version=v1.4.0&modBytes=\(mod.count)&force=true")
        #expect(again.status == 409, "\(again.body)")
        #expect(try object("\(module)/@v/v1.4.0.zip") == zip, "the stored bytes stay")
    }

    @Test("prefetch of a go.sum from go mod tidy: exactly its versions are in the bucket; a second run fetches nothing")
    func prefetchGoSum() throws {
        let (directory, goSum) = try AdminPrefetchEndToEndTests.tidiedModule(in: work, upstream: upstream.url)
        let expected = AdminPrefetchEndToEndTests.versions(inGoSum: goSum)
        #expect(expected == ["example.com/app@v1.0.0", "example.com/dep@v1.0.0", "example.com/hello@v1.0.0", "example.com/multi/v2@v2.0.0"])
        let server = try athens()
        defer { server.stop() }
        let cli = ["admin", "--url", server.url, "--token", Self.token, "prefetch", directory + "/go.sum"]
        let first = try TestSupport.run(TestSupport.athens, cli, environment: ["PATH": "/usr/bin:/bin"])
        #expect(first.status == 0 && first.stderr.contains(": 4 items: 4 fetched, 0 already stored, 0 failed"), "\(first.stderr)")
        #expect(try storedVersions() == expected, "exactly the go.sum's versions")
        #expect(try keys() == expected.reduce(into: Set<String>()) { all, id in
            let parts = id.split(separator: "@")
            all.formUnion(Self.objects(String(parts[0]), String(parts[1])))
        }, "three objects each, no lock or temporary left")
        let again = try TestSupport.run(TestSupport.athens, cli, environment: ["PATH": "/usr/bin:/bin"])
        #expect(again.status == 0 && again.stderr.contains(": 4 items: 0 fetched, 4 already stored, 0 failed"), "\(again.stderr)")
        #expect(try fetches(server) == 4)
    }

    @Test("delete: a dry run changes nothing, apply removes the version's objects, the next download fetches it again; a glob uses the S3 catalog")
    func delete() throws {
        let server = try athens()
        defer { server.stop() }
        for path in ["/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/v1.1.0.zip", "/example.com/!upper/!case/@v/v0.1.0.zip",
                     "/example.com/dep/@v/v1.0.0.zip"] {
            #expect(try server.get(path).status == 200, "\(path)")
        }
        let before = try keys()
        #expect(before.count == 12, "\(before.sorted())")
        let fetched = try fetches(server)

        let dry = try admin(server, "delete", #"{"module":"example.com/hello","version":"v1.0.0"}"#)
        #expect(try dry.status == 200 && Self.items(Self.json(dry.body), "wouldDelete") == ["example.com/hello@v1.0.0"], "\(dry)")
        #expect(try keys() == before && tombstones().isEmpty, "a dry run leaves the bucket alone")
        let real = try admin(server, "delete", #"{"module":"example.com/hello","version":"v1.0.0","dryRun":false}"#)
        #expect(try real.status == 200 && Self.items(Self.json(real.body), "deleted") == ["example.com/hello@v1.0.0"], "\(real)")
        #expect(try keys() == before.subtracting(Self.objects("example.com/hello", "v1.0.0")), "its .info, .mod and .zip, nothing else")
        #expect(try tombstones().contains { $0.hasSuffix(".info") }, "a tombstone tells the other instances to forget it")
        let upstreamAsked = upstream.requests.filter { $0.contains("/example.com/hello/@v/v1.0.0.") }.count
        let again = try GoCommand.sums(["example.com/hello@v1.0.0"], proxy: server.url)
        #expect(again["example.com/hello@v1.0.0"]?.hasPrefix("h1:") == true, "\(again)")
        #expect(try fetches(server) == fetched + 1, "fetched again from the upstream")
        #expect(upstream.requests.filter { $0.contains("/example.com/hello/@v/v1.0.0.") }.count > upstreamAsked)
        #expect(try keys() == before, "stored again")

        // A glob is matched against the catalog S3Storage lists (module paths unescaped: example.com/Upper/Case).
        let globDry = try admin(server, "delete", #"{"glob":"example.com/hello,example.com/Upper"}"#)
        #expect(globDry.status == 200, "\(globDry.body)")
        #expect(Set(Self.items(try Self.json(globDry.body), "wouldDelete")) == ["example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "example.com/Upper/Case@v0.1.0"],
                "\(globDry.body)")
        #expect(try keys() == before)
        let globReal = try admin(server, "delete", #"{"glob":"example.com/hello,example.com/Upper","dryRun":false}"#)
        #expect(try globReal.status == 200 && Self.items(Self.json(globReal.body), "deleted").count == 3, "\(globReal.body)")
        #expect(try keys() == Self.objects("example.com/dep", "v1.0.0"), "only what the glob does not match is left")
        #expect(try server.get("/example.com/!upper/!case/@v/v0.1.0.mod").status == 200, "served again after a new fetch")
        #expect(try fetches(server) == fetched + 2)
        let allOfDep = try admin(server, "delete", #"{"module":"example.com/dep","versions":"all","dryRun":false}"#)
        #expect(try allOfDep.status == 200 && Self.items(Self.json(allOfDep.body), "deleted") == ["example.com/dep@v1.0.0"], "\(allOfDep)")
        #expect(try keys() == Self.objects("example.com/!upper/!case", "v0.1.0"), "every version of the module, through S3Storage's list")
        #expect(metric(try server.metrics(), "athens_admin_requests_total", labels: #"action="delete",result="ok""#) == 3)
    }

    @Test("verify: an intact version matches; a zip altered in the bucket does not and is quarantined (410 for the go command) until released")
    func verifyAndQuarantine() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.1.0.zip").status == 200)
        let intact = try admin(server, "verify", #"{"module":"example.com/hello","version":"v1.1.0","quarantine":true}"#)
        #expect(intact.status == 200 && intact.body.contains(#""match":true"#) && !intact.body.contains("quarantined"), "\(intact)")

        // Another valid zip of the same module written over the stored one, behind athens' back.
        let key = "example.com/hello/@v/v1.1.0.zip"
        let mod = try object("example.com/hello/@v/v1.1.0.mod")
        let altered = FakeZip.stored(["example.com/hello@v1.1.0/go.mod": mod, "example.com/hello@v1.1.0/hello.go": Array("package hello // altered\n".utf8)])
        #expect(try RGW.send(.put, bucket: bucket, key: Self.prefix + key, body: altered).status == 200)
        let report = try admin(server, "verify", #"{"module":"example.com/hello","version":"v1.1.0","quarantine":true}"#)
        #expect(report.status == 200 && report.body.contains(#""match":false,"zip""#) && report.body.contains(#""quarantined":"#), "\(report)")
        #expect(report.body.contains(try DirHash.hashZip(bytes: altered)), "the hash of the bytes in the bucket: \(report.body)")
        for artifact in ["zip", "mod", "info"] {
            #expect(try server.get("/example.com/hello/@v/v1.1.0.\(artifact)").status == 410, "\(artifact)")
        }
        #expect(try keys().contains { $0.hasPrefix("athens.quarantine/") }, "the mark is an object in the bucket")
        let catalog = String(decoding: try server.get("/catalog").body, as: UTF8.self)
        #expect(catalog.contains("example.com/hello") && !catalog.contains("athens.quarantine"), "marks are not listed: \(catalog)")
        let go = try GoCommand.run(["mod", "download", "example.com/hello@v1.1.0"], proxy: server.url)
        #expect(go.status != 0 && go.stderr.contains("410 Gone") && go.stderr.contains("quarantined"), "\(go)")
        let list = try admin(server, "quarantine", "{}")
        #expect(Self.items(try Self.json(list.body), "quarantined") == ["example.com/hello@v1.1.0"], "\(list)")
        // The mark is operator state, not a module: delete neither lists it nor removes it (only release does).
        let everything = try admin(server, "delete", #"{"glob":"*"}"#)
        #expect(try everything.status == 200 && Self.items(Self.json(everything.body), "wouldDelete") == ["example.com/hello@v1.1.0"], "\(everything)")
        let marks = try keys().filter { $0.hasPrefix("athens.quarantine/") }
        for body in [#"{"module":"athens.quarantine","versions":"all","dryRun":false}"#, #"{"module":"athens.quarantine","version":"v0.0.0","dryRun":false}"#] {
            let refused = try admin(server, "delete", body)
            #expect(refused.status == 400 && refused.body.contains("athens.quarantine is reserved"), "\(body): \(refused)")
        }
        let glob = try admin(server, "delete", #"{"glob":"athens.quarantine","dryRun":false}"#)
        #expect(glob.status == 200 && glob.body == #"{"dryRun":false,"deleted":[],"failed":[]}"#, "\(glob)")
        #expect(try keys().filter { $0.hasPrefix("athens.quarantine/") } == marks, "the marks stay")
        #expect(try server.get("/example.com/hello/@v/v1.1.0.zip").status == 410)

        let released = try admin(server, "quarantine", #"{"action":"release","module":"example.com/hello","version":"v1.1.0"}"#)
        #expect(released.status == 200, "\(released)")
        #expect(try server.get("/example.com/hello/@v/v1.1.0.mod").status == 200)
        #expect(try server.get("/example.com/hello/@v/v1.1.0.zip").body == altered, "released: served as stored (the operator's call)")
        #expect(!(try keys().contains { $0.hasPrefix("athens.quarantine/") }), "the mark is gone from the bucket")
        #expect(try admin(server, "quarantine", "{}").body == #"{"quarantined":[]}"#)
    }

    @Test("retention on S3: injected download ages evict exactly the old version (dry run first), then a byte budget the least recent")
    func retention() throws {
        // Stored by an athens without retention, so that no download of this run is recorded.
        let plain = try athens()
        for path in ["/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/v1.1.0.zip", "/example.com/dep/@v/v1.0.0.zip"] {
            #expect(try plain.get(path).status == 200, "\(path)")
        }
        plain.stop()
        let all = try keys()
        #expect(all.count == 9)
        // Injected ages: another instance's journal in the shared state folder says when each was last downloaded.
        let state = work + "/state", now = Int64(Date().timeIntervalSince1970)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try "\(now - 40 * 86_400) example.com/hello v1.0.0\n\(now - 86_400) example.com/hello v1.1.0\n"
            .write(toFile: state + "/other.access", atomically: true, encoding: .utf8)

        let byAge = try athens(#", "retention": {"maxAgeDays": 30, "intervalHours": 0, "stateDirectory": "\#(state)", "instance": "s3"}"#)
        let dry = try Self.json(try admin(byAge, "retention", "").body)
        #expect(dry["dryRun"] as? Bool == true && dry["stored"] as? Int == 3 && dry["firstSeen"] as? Int == 1, "\(dry)")
        #expect(Self.items(dry, "evictions") == ["example.com/hello@v1.0.0"], "\(dry)")
        #expect(((dry["evictions"] as? [[String: Any]])?.first?["reason"] as? String) == "age")
        #expect(try keys() == all, "a dry run removes nothing")
        let applied = try admin(byAge, "retention", #"{"dryRun": false}"#)
        #expect(try applied.status == 200 && Self.items(Self.json(applied.body), "deleted") == ["example.com/hello@v1.0.0"], "\(applied)")
        #expect(try keys() == all.subtracting(Self.objects("example.com/hello", "v1.0.0")))
        #expect(metric(try byAge.metrics(), "athens_retention_evicted_total", labels: #"reason="age""#) == 1)
        byAge.stop()

        // A byte budget one byte short of what is left: the least recently downloaded (hello v1.1.0, a day ago) goes;
        // dep was first seen by the run above, so its clock started then.
        func bytes(_ path: String, _ version: String) throws -> Int {
            try Self.objects(path, version).reduce(0) { $0 + (try object($1).count) }
        }
        let budget = try bytes("example.com/hello", "v1.1.0") + bytes("example.com/dep", "v1.0.0") - 1
        let bySize = try athens(#", "retention": {"maxTotalBytes": \#(budget), "intervalHours": 0, "stateDirectory": "\#(state)", "instance": "s3"}"#)
        defer { bySize.stop() }
        let plan = try Self.json(try admin(bySize, "retention", "").body)
        #expect(Self.items(plan, "evictions") == ["example.com/hello@v1.1.0"] && plan["bytesBefore"] as? Int == budget + 1, "\(plan)")
        let evicted = try admin(bySize, "retention", #"{"dryRun": false}"#)
        #expect(try evicted.status == 200 && Self.items(Self.json(evicted.body), "deleted") == ["example.com/hello@v1.1.0"], "\(evicted)")
        #expect(try keys() == Self.objects("example.com/dep", "v1.0.0"), "exactly the planned version went")
        #expect(metric(try bySize.metrics(), "athens_retention_evicted_total", labels: #"reason="lru""#) == 1)
    }
}
