// Uploads against the built athens: the token, action and size are judged from the head before any body byte is
// read (an unauthenticated 100 MiB Content-Length is 401 at once, RSS unchanged), bodies are streamed to the spool
// (16 concurrent uploads leave RSS bounded; a 128 MiB upload is stored and served), and zip bombs are refused
// with nothing stored and no spool file left open.
import Foundation
import Glibc
import Testing

@Suite("admin uploads streamed to the spool, judged from the head", .blockingBodies, .serialized)
final class AdminUploadStreamTests {
    static let token = "e2e-upload-token-0123456789"
    let work = TestSupport.makeTemporaryDirectory("upstream-admin")

    deinit { TestSupport.removeDirectory(work) }

    func athens(_ admin: String = "") throws -> AthensServer {
        try AthensServer(manifest: """
        {"admin": {"token": "\(Self.token)"\(admin)}, "spoolDirectory": "\(work)", "accessLog": false,
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store-\(UUID().uuidString)"}}, "fetchers": []}
        """, directory: work)
    }

    /// VmRSS or VmHWM of a process, in KiB.
    static func memory(_ server: AthensServer, _ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(server.process.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix(field + ":") }.flatMap { Int($0.split(separator: " ")[1]) } ?? -1
    }

    /// Open descriptors of the server that are spool files (unlinked: "(deleted)").
    static func openSpools(_ server: AthensServer) -> Int {
        let directory = "/proc/\(server.process.process.processIdentifier)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0)) ?? "").contains("athens-spool") }.count
    }

    static func head(_ query: String, length: Int, token: String? = AdminUploadStreamTests.token) -> String {
        "POST /admin/upload?\(query) HTTP/1.1\r\nHost: x\r\n" + (token.map { "Authorization: Bearer \($0)\r\n" } ?? "")
            + "Content-Length: \(length)\r\n\r\n"
    }

    /// Sends go.mod + the zip file at `path` as one upload of module@version; the response.
    static func upload(_ server: AthensServer, module: String, version: String, zip path: String) throws -> (status: Int, body: String) {
        let mod = Array("module \(module)\n".utf8)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let client = try RawClient(port: server.port)
        client.send(head("module=\(module)&version=\(version)&modBytes=\(mod.count)", length: mod.count + size) + String(decoding: mod, as: UTF8.self))
        let file = try #require(FileHandle(forReadingAtPath: path))
        while case let chunk = file.readData(ofLength: 1 << 20), !chunk.isEmpty { client.send(Array(chunk)) }
        let response = try #require(client.readResponse(timeout: 120))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func zip(_ name: String, _ module: String, _ version: String, mib: Int, bomb: Bool = false) throws -> String {
        let path = work + "/" + name
        let made = try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_big_zip.py", path, module, version,
                                                        String(mib)] + (bomb ? ["--bomb"] : []))
        guard made.status == 0 else { throw TestFailure("make_big_zip: \(made.stderr)") }
        return path
    }

    @Test("no token, a wrong one, an unknown action, a bad query, or past maxUploadBytes: answered from the head, RSS unchanged")
    func refusedFromTheHead() throws {
        let server = try athens(#", "maxUploadBytes": 209715200"#)
        defer { server.stop() }
        #expect(try server.get("/healthz").status == 200)
        let before = Self.memory(server, "VmHWM")
        let hundredMiB = 100 << 20
        let cases: [(String, Int)] = [
            (Self.head("module=example.com/a&version=v1.0.0&modBytes=10", length: hundredMiB, token: nil), 401),
            (Self.head("module=example.com/a&version=v1.0.0&modBytes=10", length: hundredMiB, token: "wrong-token-wrong-token-0"), 401),
            ("POST /admin/nosuch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(hundredMiB)\r\n\r\n", 404),
            (Self.head("module=example.com/a&version=v1.0&modBytes=10", length: hundredMiB), 400),
            (Self.head("module=example.com/a&version=v1.0.0&modBytes=10", length: 300 << 20), 413),
            ("POST /admin/delete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(hundredMiB)\r\n\r\n", 413),
            ("POST /example.com/a/@v/list HTTP/1.1\r\nHost: x\r\nContent-Length: \(hundredMiB)\r\n\r\n", 405),
        ]
        let chunk = [UInt8](repeating: 0x41, count: 1 << 16)
        for (head, status) in cases {
            let client = try RawClient(port: server.port)
            // The head and the first body bytes, as a client that does not wait for 100-continue sends them.
            client.send(Array(head.utf8) + chunk)
            let response = client.readResponse(timeout: 5)
            #expect(response?.status == status, "\(head.prefix(60)): \(response.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer")")
            #expect(client.isClosed(), "the rest of the body is never read: the connection closes")
        }
        let after = Self.memory(server, "VmHWM")
        #expect(after - before < 8 * 1024, "peak RSS grew by \(after - before) KiB: bodies were read")
        #expect(Self.openSpools(server) == 0)
        #expect(waitUntil(timeout: 10) { server.process.stderr.contains("action=upload result=unauthorized status=401") })
        #expect(try server.get("/catalog").body == Array(#"{"modules":[]}"#.utf8))
    }

    @Test("16 concurrent 16 MiB uploads stream to the spool: server RSS grows by far less than their 256 MiB")
    func concurrentUploadsBounded() throws {
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/healthz").status == 200)
        let before = Self.memory(server, "VmHWM")
        let statuses = Statuses()
        let body = [UInt8](repeating: 0x5A, count: 1 << 20), port = server.port
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let mod = "module example.com/c\(index)\n"
            guard let client = try? RawClient(port: port) else { return }
            // Not a zip: the whole body is received and spooled, then refused by the zip check (400).
            client.send(Self.head("module=example.com/c\(index)&version=v1.0.0&modBytes=\(mod.utf8.count)", length: mod.utf8.count + 16 * body.count) + mod)
            for _ in 0..<16 { client.send(body) }
            statuses.add(client.readResponse(timeout: 120)?.status ?? 0)
        }
        #expect(statuses.values == Array(repeating: 400, count: 16))
        let grown = Self.memory(server, "VmHWM") - before
        #expect(grown < 64 * 1024, "peak RSS grew by \(grown) KiB for 256 MiB of uploads")
        #expect(waitUntil { Self.openSpools(server) == 0 }, "every spool file closed")
    }

    @Test("a client that hangs up halfway through an upload leaves no spool file open and nothing stored")
    func hangUpMidUpload() throws {
        let server = try athens()
        defer { server.stop() }
        let mod = "module example.com/half\n"
        let client = try RawClient(port: server.port)
        client.send(Self.head("module=example.com/half&version=v1.0.0&modBytes=\(mod.utf8.count)", length: mod.utf8.count + (8 << 20)) + mod)
        client.send([UInt8](repeating: 0x41, count: 4 << 20))
        #expect(waitUntil { Self.openSpools(server) == 1 }, "the upload is being spooled")
        shutdown(client.fd, Int32(SHUT_RDWR))
        #expect(waitUntil { Self.openSpools(server) == 0 }, "its spool went with the connection")
        #expect(try server.get("/catalog").body == Array(#"{"modules":[]}"#.utf8))
    }

    @Test("a 128 MiB upload is stored and served whole; RSS stays far below its size")
    func bigUpload() throws {
        let module = "example.com/big", version = "v1.0.0"
        let path = try zip("big.zip", module, version, mib: 128)
        let server = try athens()
        defer { server.stop() }
        #expect(try server.get("/healthz").status == 200)
        let before = Self.memory(server, "VmHWM")
        let answer = try Self.upload(server, module: module, version: version, zip: path)
        #expect(answer.status == 200, "\(answer.body)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let served = try server.get("/\(module)/@v/\(version).zip", timeout: 120)
        #expect(served.status == 200 && served.body.count == size)
        #expect(served.body == Array(try #require(FileManager.default.contents(atPath: path))))
        #expect(Self.memory(server, "VmHWM") - before < 64 * 1024, "the upload was never whole in memory")
        #expect(Self.openSpools(server) == 0)
    }

    @Test("zip bombs: an entry expanding past 500 MiB, and one whose declared size is huge, are 400; nothing stored, no spool left")
    func zipBombs() throws {
        let server = try athens()
        defer { server.stop() }
        let bomb = try zip("bomb.zip", "example.com/bomb", "v1.0.0", mib: 600, bomb: true)
        let answer = try Self.upload(server, module: "example.com/bomb", version: "v1.0.0", zip: bomb)
        #expect(answer.status == 400 && answer.body.contains("too large"), "\(answer.body)")

        // A small stored zip whose central directory claims a ~4 GiB entry.
        let module = "example.com/liar"
        var lying = FakeZip.stored(["\(module)@v1.0.0/go.mod": Array("module \(module)\n".utf8), "\(module)@v1.0.0/a.go": Array("package a\n".utf8)])
        for i in 0..<(lying.count - 4) where lying[i..<(i + 4)] == [0x50, 0x4B, 0x01, 0x02] {
            lying.replaceSubrange((i + 24)..<(i + 28), with: [0x00, 0x00, 0x00, 0xF0])
        }
        let liarPath = work + "/liar.zip"
        FileManager.default.createFile(atPath: liarPath, contents: Data(lying))
        let liar = try Self.upload(server, module: module, version: "v1.0.0", zip: liarPath)
        #expect((400..<500).contains(liar.status), "\(liar.body)")
        #expect(try server.get("/catalog").body == Array(#"{"modules":[]}"#.utf8), "nothing stored")
        #expect(waitUntil { Self.openSpools(server) == 0 }, "the spool files went with the refusals (closed by the handler thread just after the answer)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.hasPrefix("athens-spool") }.isEmpty)
    }
}

/// Statuses collected from concurrent clients.
final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Int] = []
    func add(_ value: Int) { lock.withLock { list.append(value) } }
    var values: [Int] { lock.withLock { list } }
}
