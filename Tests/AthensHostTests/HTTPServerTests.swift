import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Answers from a fixed table; "/slow" answers later from another thread; "/blob" a file blob.
private final class TableHandler: RequestHandler {
    let blobPath: String
    init(blobPath: String) { self.blobPath = blobPath }

    func handle(_ request: Request, responder: Responder) {
        switch request.path {
        case "/hello":
            responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain")], body: .bytes(Array("hello".utf8))))
        case "/slow":
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                responder.respond(Response(status: 200, body: .bytes(Array("slow".utf8))))
            }
        case "/echo":
            responder.respond(Response(status: 200, body: .bytes(Array(request.target.utf8))))
        default:
            responder.respond(.text(404, "not found"))
        }
    }
}

@Suite("HTTP server", .blockingBodies, .serialized)
struct HTTPServerTests {
    static let server: HTTPServer = {
        var settings = ServerSettings()
        settings.listen = "127.0.0.1:0"
        settings.threads = 2
        settings.headerTimeout = 1
        settings.idleTimeout = 2
        settings.limits = RequestLimits(maxRequestLine: 1024, maxHeaderBytes: 2048, maxHeaderCount: 20)
        let server = HTTPServer(settings: settings, handler: TableHandler(blobPath: ""))
        try! server.bind()
        server.start()
        return server
    }()

    func client() throws -> RawClient { try RawClient(port: Self.server.port) }

    @Test("GET answers with Content-Length and keeps the connection")
    func keepAlive() throws {
        let c = try client()
        for _ in 0..<3 {
            c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.status == 200)
            #expect(r.headers["content-length"] == "5")
            #expect(r.body == Array("hello".utf8))
            #expect(r.headers["connection"] == nil)
        }
    }

    @Test("HEAD sends the headers of GET and no body")
    func head() throws {
        let c = try client()
        c.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let h = try #require(c.readResponse(head: true))
        #expect(h.status == 200)
        #expect(h.headers["content-length"] == "5")
        let g = try #require(c.readResponse())
        #expect(g.body == Array("hello".utf8))
    }

    @Test("pipelined requests are answered in order, even when the first is slow")
    func pipelining() throws {
        let c = try client()
        c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try #require(c.readResponse()).body == Array("slow".utf8))
        #expect(try #require(c.readResponse()).body == Array("/echo?1".utf8))
        #expect(try #require(c.readResponse()).body == Array("hello".utf8))
    }

    @Test("a request split into single bytes is still parsed")
    func byteAtATime() throws {
        let c = try client()
        // One write and one segment per byte (TCP_NODELAY, paced), so the server reads the head in pieces.
        c.sendByteByByte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try #require(c.readResponse()).status == 200)
    }

    @Test("Connection: close and HTTP/1.0 close after the response")
    func close() throws {
        let c = try client()
        c.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.headers["connection"] == "close")
        #expect(c.isClosed())
        let d = try client()
        d.send("GET /hello HTTP/1.0\r\n\r\n")
        #expect(try #require(d.readResponse()).status == 200)
        #expect(d.isClosed())
    }

    @Test("bad requests get their status, a text body, and a closed connection", arguments: [
        ("POST /hello HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("GET /hello HTTP/1.1\r\n\r\n", 400),
        ("GET /\(String(repeating: "a", count: 2000)) HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "b", count: 3000))\r\n\r\n", 431),
        ("GET / HTTP/3\r\nHost: x\r\n\r\n", 400),
        ("\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\u{01}\u{fc}\u{03}\u{03}\r\n\r\n", 400),
    ])
    func badRequests(text: String, status: Int) throws {
        let c = try client()
        c.send(text)
        let r = try #require(c.readResponse())
        #expect(r.status == status)
        #expect(r.headers["content-type"]?.hasPrefix("text/plain") == true)
        #expect(r.headers["connection"] == "close")
        if status == 405 { #expect(r.headers["allow"] == "GET, HEAD") }
        // A head that does not parse still gets a generated id (from the loop's one RequestIDSource).
        #expect(r.headers["athens-request-id"].map { !$0.isEmpty && $0.contains("-") } == true, "\(r.headers)")
        #expect(c.isClosed())
    }

    @Test("a client that never finishes its head is cut off by the header timeout")
    func headerTimeout() throws {
        let c = try client()
        c.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
        #expect(c.isClosed(timeout: 5))
    }

    @Test("an idle keep-alive connection is closed after the idle timeout")
    func idleTimeout() throws {
        let c = try client()
        c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try #require(c.readResponse()).status == 200)
        #expect(c.isClosed(timeout: 6))
    }

    @Test("slow clients do not stop others from being served")
    func slowClientsDoNotBlock() throws {
        let slow = try (0..<50).map { _ in try client() }
        for c in slow { c.send("GET /hel") }
        let c = try client()
        let start = Date()
        c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try #require(c.readResponse()).status == 200)
        #expect(Date().timeIntervalSince(start) < 1)
        _ = slow
    }

    @Test("listen addresses are parsed strictly")
    func listenParsing() throws {
        #expect(try HTTPServer.parseListen("127.0.0.1:3000") == ("127.0.0.1", 3000))
        #expect(try HTTPServer.parseListen(":8080") == ("0.0.0.0", 8080))
        #expect(try HTTPServer.parseListen("[::1]:9") == ("::1", 9))
        for bad in ["3000", "127.0.0.1", "127.0.0.1:99999", "[::1", "host:port"] {
            #expect(throws: ServerError.self) { _ = try HTTPServer.parseListen(bad) }
        }
    }

    @Test("a port in use is a clear start-up error")
    func portInUse() throws {
        // athens sets no SO_REUSEPORT (Listener.swift): a port another socket listens on is refused.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        Glibc.listen(fd, 1)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        var settings = ServerSettings()
        settings.listen = "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        let server = HTTPServer(settings: settings, handler: TableHandler(blobPath: ""))
        let error = #expect(throws: ServerError.self) { try server.bind() }
        #expect(error?.description.contains("Address already in use") == true)
        // Nor can a second athens server share a running one's port.
        var second = ServerSettings()
        second.listen = "127.0.0.1:\(Self.server.port)"
        let error2 = #expect(throws: ServerError.self) { try HTTPServer(settings: second, handler: TableHandler(blobPath: "")).bind() }
        #expect(error2?.description.contains("Address already in use") == true)
    }

    @Test("request ids: the client's when sane, else generated, one counter for both")
    func requestIDSource() {
        var source = RequestIDSource(prefix: "ab")
        #expect(source.next().description == "ab-1")
        func request(_ id: String?) -> Request {
            Request(method: .get, target: "/", minorVersion: 1, headers: id.map { [("athens-request-id", $0)] } ?? [], keepAlive: true)
        }
        #expect(source.id(for: request("trace-42.a:b_c")).description == "trace-42.a:b_c")
        for bad in ["", "has space", "new\nline", String(repeating: "x", count: 129), "ü"] {
            #expect(source.id(for: request(bad)).given == nil, "\(bad.debugDescription) accepted")
        }
        #expect(source.id(for: request(String(repeating: "x", count: 128))).given != nil)
        #expect(source.id(for: request(nil)).description == "ab-9", "every request advances the counter")
        #expect(RequestIDSource().prefix != RequestIDSource().prefix, "random per source")
    }
}
