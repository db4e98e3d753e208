// The admin API against the built athens over FileStorage: POST bodies read by the real connection (split, pipelined,
// oversized, slow), the token, and a delete that makes the next download fetch again.
import Foundation
import Testing
@testable import SumDB

@Suite("admin API end to end over FileStorage", .blockingBodies, .serialized)
final class AdminEndToEndTests {
    static let token = "e2e-admin-token-0123456789"
    let fixture: FixtureUpstream
    var work: String { fixture.work }
    var tree: String { fixture.tree }
    var upstream: FakeUpstream { fixture.upstream }

    init() throws { fixture = try FixtureUpstream("admin") }

    func athens(admin: String = #""admin": {"token": "\#(token)", "maxBodyBytes": 4096}, "#, extra: String = "") throws -> AthensServer {
        try AthensServer(manifest: """
        {\(admin)\(extra)"spoolDirectory": "\(work)", "accessLog": false,
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store"}},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 5}}]}
        """, directory: work)
    }

    static func post(_ path: String, _ body: String, token: String? = AdminEndToEndTests.token) -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\n" + (token.map { "Authorization: Bearer \($0)\r\n" } ?? "")
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    func fetches(_ server: AthensServer) throws -> Double {
        metric(try server.metrics(), "athens_fetches_total", labels: #"fetcher="u",result="ok""#) ?? 0
    }

    @Test("delete through the real server: dry run keeps, real delete removes, the next download fetches again")
    func deleteEndToEnd() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        let fetched = try fetches(server)
        #expect(fetched >= 1)
        let client = try RawClient(port: server.port)
        client.send(Self.post("/admin/delete", #"{"module":"example.com/hello","version":"v1.0.0"}"#))
        let dry = try #require(client.readResponse())
        #expect(dry.status == 200 && String(decoding: dry.body, as: UTF8.self).contains(#""wouldDelete":[{"module":"example.com/hello","version":"v1.0.0"}]"#))
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        #expect(try fetches(server) == fetched, "a dry run leaves the stored version alone")
        client.send(Self.post("/admin/delete", #"{"module":"example.com/hello","version":"v1.0.0","dryRun":false}"#))
        let real = try #require(client.readResponse())
        #expect(real.status == 200, "\(String(decoding: real.body, as: UTF8.self))")
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        #expect(try fetches(server) == fetched + 1, "deleted: served again only after a new fetch")
        let metrics = try server.metrics()
        #expect(metric(metrics, "athens_admin_requests_total", labels: #"action="delete",result="dry-run""#) == 1)
        #expect(metric(metrics, "athens_admin_requests_total", labels: #"action="delete",result="ok""#) == 1)
    }

    @Test("a body sent in pieces is read whole; a request pipelined after it is answered next")
    func splitAndPipelinedBody() throws {
        let server = try athens()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.setNoDelay()
        let request = Self.post("/admin/delete", #"{"module":"example.com/hello","versions":"all"}"#)
        let bytes = Array(request.utf8)
        let cut = bytes.count - 10
        client.send(Array(bytes[..<cut]))
        #expect(!client.isClosed(timeout: 0.3), "the server waits for the rest of the body")
        client.send(Array(bytes[cut...]) + Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let first = try #require(client.readResponse())
        #expect(first.status == 200 && String(decoding: first.body, as: UTF8.self).contains(#""dryRun":true"#))
        let second = try #require(client.readResponse())
        #expect(second.status == 200 && second.body == Array("ok\n".utf8))
    }

    @Test("a wrong token over the wire is 401 and nothing is deleted")
    func wrongTokenOverTheWire() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        let fetched = try fetches(server)
        for token in [nil, "not-the-token-at-all-000000"] {
            let client = try RawClient(port: server.port)
            client.send(Self.post("/admin/delete", #"{"module":"example.com/hello","versions":"all","dryRun":false}"#, token: token))
            #expect(client.readResponse()?.status == 401)
        }
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        #expect(try fetches(server) == fetched, "still stored")
        #expect(waitUntil(timeout: 10) { server.process.stderr.contains("msg=admin who=127.0.0.1 action=delete result=unauthorized status=401") },
                "the refused call is logged with who did it")
    }

    @Test("a body past the limit is 413 before it is read; admin off: POST is 405 and /admin/ is 404")
    func oversizedAndOff() throws {
        let server = try athens()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.send("POST /admin/delete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 4097\r\n\r\n")
        #expect(client.readResponse()?.status == 413)
        #expect(client.isClosed())
        server.stop()

        let off = try athens(admin: "")
        defer { off.stop() }
        let c2 = try RawClient(port: off.port)
        c2.send(Self.post("/admin/delete", "{}"))
        #expect(c2.readResponse()?.status == 405, "no admin: the parser refuses POST as before")
        #expect(try off.get("/admin/delete").status == 404)
    }

    @Test("a body that stops arriving is cut off at the header timeout; the server goes on serving")
    func slowBody() throws {
        let server = try athens(extra: #""server": {"headerTimeoutSeconds": 1}, "#)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.send("POST /admin/delete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 100\r\n\r\n{\"mod")
        #expect(client.isClosed(timeout: 15), "closed, not held open for ever")
        #expect(try server.get("/healthz").status == 200)
    }
}

/// Upload through the real server, then the real go command downloads it.
extension AdminEndToEndTests {
    @Test("an uploaded module is what the go command downloads, with the h1: hash DirHash computes for the zip")
    func uploadThenGoDownloads() throws {
        let server = try athens()
        defer { server.stop() }
        let module = "example.com/uploaded"
        let mod = Array("module \(module)\n\ngo 1.21\n".utf8)
        let zip = FakeZip.stored(["\(module)@v1.4.0/go.mod": mod, "\(module)@v1.4.0/up.go": Array("package uploaded\n\nconst V = 4\n".utf8)])
        let client = try RawClient(port: server.port)
        client.send(Array(("POST /admin/upload?module=\(module)&version=v1.4.0&modBytes=\(mod.count)&time=2024-05-06T07:08:09Z HTTP/1.1\r\n"
            + "Host: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(mod.count + zip.count)\r\n\r\n").utf8) + mod + zip)
        let answer = try #require(client.readResponse())
        #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
        let sums = try GoCommand.sums(["\(module)@v1.4.0"], proxy: server.url)
        #expect(sums["\(module)@v1.4.0"] == (try DirHash.hashZip(bytes: zip)))
        #expect(metric(try server.metrics(), "athens_admin_requests_total", labels: #"action="upload",result="ok""#) == 1)
        // The same upload again: refused, the stored bytes stay.
        let again = try RawClient(port: server.port)
        again.send(Array(("POST /admin/upload?module=\(module)&version=v1.4.0&modBytes=\(mod.count) HTTP/1.1\r\n"
            + "Host: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(mod.count + zip.count)\r\n\r\n").utf8) + mod + zip)
        #expect(again.readResponse()?.status == 409)
    }
}

/// `athens admin` against a running athens.
extension AdminEndToEndTests {
    @Test("athens admin: upload then delete (dry run, then --yes), token from the environment, exit codes")
    func command() throws {
        let server = try athens()
        defer { server.stop() }
        let module = "example.com/cli"
        let mod = Array("module \(module)\n".utf8)
        let zip = FakeZip.stored(["\(module)@v0.3.0/go.mod": mod, "\(module)@v0.3.0/cli.go": Array("package cli\n".utf8)])
        try Data(mod).write(to: URL(fileURLWithPath: work + "/go.mod"))
        try Data(zip).write(to: URL(fileURLWithPath: work + "/m.zip"))
        let env = ["ATHENS_ADMIN_URL": server.url, "ATHENS_ADMIN_TOKEN": Self.token]
        func admin(_ arguments: [String], env: [String: String] = env) throws -> (status: Int32, stdout: String, stderr: String) {
            try TestSupport.run(TestSupport.athens, ["admin"] + arguments, environment: env)
        }
        let upload = try admin(["upload", "\(module)@v0.3.0", "--mod", work + "/go.mod", "--zip", work + "/m.zip"])
        #expect(upload.status == 0 && upload.stdout.contains(#""stored":true"#), "\(upload)")
        #expect(try server.get("/example.com/cli/@v/v0.3.0.zip").body == zip)
        let again = try admin(["upload", "\(module)@v0.3.0", "--mod", work + "/go.mod", "--zip", work + "/m.zip"])
        #expect(again.status == 1 && again.stderr.contains("409"))

        let dry = try admin(["delete", "\(module)@all"])
        #expect(dry.status == 0 && dry.stdout.contains(#""wouldDelete":[{"module":"example.com/cli","version":"v0.3.0"}]"#), "\(dry)")
        #expect(try server.get("/example.com/cli/@v/v0.3.0.mod").status == 200)
        let real = try admin(["--url", server.url, "--token", Self.token, "delete", "\(module)@v0.3.0", "--yes"], env: [:])
        #expect(real.status == 0 && real.stdout.contains(#""deleted":[{"module":"example.com/cli","version":"v0.3.0"}]"#), "\(real)")
        #expect(try server.get("/example.com/cli/@v/v0.3.0.mod").status == 404, "gone: the upstream never had it")

        #expect(try admin(["delete", "\(module)@v0.3.0"], env: ["ATHENS_ADMIN_URL": server.url, "ATHENS_ADMIN_TOKEN": "wrong-token-000000000"]).status == 1)
        #expect(try admin(["delete", "\(module)@v0.3.0"], env: ["ATHENS_ADMIN_URL": server.url]).status == 2, "no token: usage error")
        #expect(try admin(["frobnicate"]).status == 2)
        #expect(try admin(["delete", "no-version"]).status == 2)
    }
}

/// `POST /admin/verify` against a test checksum database on 127.0.0.1 (x/mod's sumdb server, Support/SumDBServer.swift).
extension AdminEndToEndTests {
    func upload(_ server: AthensServer, _ module: String, _ version: String, _ zip: [UInt8], _ mod: [UInt8]) throws {
        let client = try RawClient(port: server.port)
        client.send(Array(("POST /admin/upload?module=\(module)&version=\(version)&modBytes=\(mod.count) HTTP/1.1\r\n"
            + "Host: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(mod.count + zip.count)\r\n\r\n").utf8) + mod + zip)
        #expect(client.readResponse()?.status == 200)
    }

    func verify(_ server: AthensServer, _ module: String, _ version: String) throws -> (status: Int, body: String) {
        let client = try RawClient(port: server.port)
        client.send(Self.post("/admin/verify", #"{"module":"\#(module)","version":"\#(version)"}"#))
        let response = try #require(client.readResponse())
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test("verify matches an intact version and catches a zip altered on disk and one whose upstream tag moved")
    func verifyAgainstChecksumDB() throws {
        func files(_ module: String, _ text: String) -> (zip: [UInt8], mod: [UInt8]) {
            let mod = Array("module \(module)\n".utf8)
            return (FakeZip.stored(["\(module)@v1.0.0/go.mod": mod, "\(module)@v1.0.0/x.go": Array(text.utf8)]), mod)
        }
        let intact = files("example.com/intact", "package intact\n"), moved = files("example.com/moved", "package moved\n")
        // What the checksum database recorded: intact as stored; "moved" as its tag was before it was force-pushed.
        let recordedMoved = files("example.com/moved", "package moved\n\nconst Before = 1\n")
        let gosum = """
        example.com/intact v1.0.0 \(try DirHash.hashZip(bytes: intact.zip))
        example.com/intact v1.0.0/go.mod \(DirHash.hashGoMod(intact.mod))
        example.com/moved v1.0.0 \(try DirHash.hashZip(bytes: recordedMoved.zip))
        example.com/moved v1.0.0/go.mod \(DirHash.hashGoMod(recordedMoved.mod))

        """
        let sumdb = try SumDBServer(gosum: gosum, directory: work)
        defer { sumdb.stop() }
        let server = try athens(admin: #""admin": {"token": "\#(Self.token)", "checksumDB": {"url": "\#(sumdb.url)", "key": "\#(sumdb.verifierKey)"}}, "#)
        defer { server.stop() }
        try upload(server, "example.com/intact", "v1.0.0", intact.zip, intact.mod)
        try upload(server, "example.com/moved", "v1.0.0", moved.zip, moved.mod)

        let ok = try verify(server, "example.com/intact", "v1.0.0")
        #expect(ok.status == 200 && ok.body.contains(#""match":true,"zip""#), "\(ok)")
        let tagMoved = try verify(server, "example.com/moved", "v1.0.0")
        #expect(tagMoved.status == 200 && tagMoved.body.contains(#""match":false,"zip""#), "\(tagMoved)")

        // Altered on disk: FileStorage's root is a GOPROXY tree.
        let zipPath = work + "/store/example.com/intact/@v/v1.0.0.zip"
        #expect(FileManager.default.fileExists(atPath: zipPath))
        // One byte of a file's content (stored, so it is in the zip as is): "package intact" becomes "package Intact".
        var altered = intact.zip
        let content = Array("package intact".utf8)
        let at = try #require((0...(altered.count - content.count)).first { Array(altered[$0..<($0 + content.count)]) == content })
        altered[at + 8] = UInt8(ascii: "I")
        try Data(altered).write(to: URL(fileURLWithPath: zipPath))
        let tampered = try verify(server, "example.com/intact", "v1.0.0")
        #expect(tampered.status == 200 && tampered.body.contains(#""match":false,"zip""#), "\(tampered)")

        #expect(try verify(server, "example.com/absent", "v1.0.0").status == 404)
        let command = try TestSupport.run(TestSupport.athens, ["admin", "--url", server.url, "--token", Self.token, "verify", "example.com/moved@v1.0.0"])
        #expect(command.status == 1 && command.stdout.contains(#""match":false"#), "the command fails on a mismatch: \(command)")
        let good = try TestSupport.run(TestSupport.athens, ["admin", "--url", server.url, "--token", Self.token, "verify", "example.com/absent@v1.0.0"])
        #expect(good.status == 1 && good.stderr.contains("404"))
        let metrics = try server.metrics()
        #expect(metric(metrics, "athens_admin_requests_total", labels: #"action="verify",result="mismatch""#) == 3, "two by the API, one by the command")
        #expect(metric(metrics, "athens_admin_requests_total", labels: #"action="verify",result="ok""#) == 1)
    }

    @Test("verify without a checksum database is 501")
    func verifyWithoutChecksumDB() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try verify(server, "example.com/hello", "v1.0.0").status == 501)
    }
}
