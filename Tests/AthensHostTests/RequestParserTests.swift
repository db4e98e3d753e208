import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The HTTP request parser against good and hostile input: a status for everything, never a trap.
@Suite("HTTP request parser")
struct RequestParserTests {
    static let limits = RequestLimits(maxRequestLine: 256, maxHeaderBytes: 512, maxHeaderCount: 8)

    static func parse(_ text: String, limits: RequestLimits = limits) -> ParseResult {
        Array(text.utf8).withUnsafeBytes { RequestParser.parse($0, limits: limits) }
    }

    static func parse(bytes: [UInt8]) -> ParseResult {
        bytes.withUnsafeBytes { RequestParser.parse($0, limits: limits) }
    }

    @Test("a plain GET with CRLF")
    func simpleGet() throws {
        let text = "GET /example.com/m/@v/list HTTP/1.1\r\nHost: x\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"
        guard case let .request(request, consumed) = Self.parse(text) else { Issue.record("not parsed"); return }
        #expect(consumed == text.utf8.count)
        #expect(request.method == .get)
        #expect(request.target == "/example.com/m/@v/list")
        #expect(request.keepAlive)
        #expect(request.header("user-agent") == "Go-http-client/1.1")
    }

    @Test("HEAD, bare LF line ends, query split")
    func headBareLF() throws {
        guard case let .request(request, _) = Self.parse("HEAD /a?token=1&pagesize=2 HTTP/1.1\nHost: x\n\n") else { Issue.record("not parsed"); return }
        #expect(request.method == .head)
        #expect(request.path == "/a")
        #expect(request.query == "token=1&pagesize=2")
    }

    @Test("pipelined requests are consumed one at a time")
    func pipelined() throws {
        let one = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case let .request(first, consumed) = Self.parse(one + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("not parsed"); return }
        #expect(first.target == "/a")
        #expect(consumed == one.utf8.count)
    }

    @Test("keep-alive rules of HTTP/1.0 and 1.1")
    func keepAlive() {
        if case let .request(r, _) = Self.parse("GET / HTTP/1.0\r\n\r\n") { #expect(!r.keepAlive) } else { Issue.record("1.0") }
        if case let .request(r, _) = Self.parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") { #expect(r.keepAlive) } else { Issue.record("1.0 ka") }
        if case let .request(r, _) = Self.parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n") { #expect(!r.keepAlive) } else { Issue.record("1.1 close") }
    }

    @Test("incomplete heads wait for more bytes", arguments: [
        "", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r",
    ])
    func incomplete(text: String) {
        guard case .incomplete = Self.parse(text) else { Issue.record("\(text.debugDescription) was not incomplete"); return }
    }

    @Test("hostile input gets the right status", arguments: [
        ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("DELETE /m/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("get / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
        ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /\r\n\r\n", 400),
        ("GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /a\u{7F} HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /é HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: a\u{01}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
        ("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ])
    func hostile(text: String, status: Int) {
        guard case let .failure(got, _, _) = Self.parse(text) else { Issue.record("\(text.debugDescription) was accepted"); return }
        #expect(got == status, "\(text.debugDescription)")
    }

    @Test("405 asks for Allow")
    func allow() {
        guard case let .failure(_, _, allow) = Self.parse("PUT / HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("accepted"); return }
        #expect(allow)
    }

    @Test("a NUL byte in the target or a header is refused")
    func nulBytes() {
        var bytes = Array("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        guard case .failure(400, _, _) = Self.parse(bytes: bytes) else { Issue.record("NUL in target accepted"); return }
        bytes = Array("GET / HTTP/1.1\r\nHost: x\0\r\n\r\n".utf8)
        guard case .failure(400, _, _) = Self.parse(bytes: bytes) else { Issue.record("NUL in header accepted"); return }
    }

    @Test("an over-long request line is 414, even before it ends")
    func longLine() {
        let long = "GET /" + String(repeating: "a", count: 300) + " HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case .failure(414, _, _) = Self.parse(long) else { Issue.record("not 414"); return }
        let unfinished = "GET /" + String(repeating: "a", count: 300)
        guard case .failure(414, _, _) = Self.parse(unfinished) else { Issue.record("unfinished not 414"); return }
    }

    @Test("too many or too large headers are 431, even before the head ends")
    func largeHeaders() {
        let many = "GET / HTTP/1.1\r\nHost: x\r\n" + (0..<9).map { "X-\($0): y\r\n" }.joined() + "\r\n"
        guard case .failure(431, _, _) = Self.parse(many) else { Issue.record("many not 431"); return }
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "v", count: 600) + "\r\n\r\n"
        guard case .failure(431, _, _) = Self.parse(big) else { Issue.record("big not 431"); return }
        let unfinished = "GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "v", count: 600)
        guard case .failure(431, _, _) = Self.parse(unfinished) else { Issue.record("unfinished not 431"); return }
    }

    @Test("random bytes never trap and always get a verdict")
    func randomBytes() {
        var state: UInt64 = 0x1234_5678
        for _ in 0..<3000 {
            let count = Int(state % 700)
            var bytes: [UInt8] = []
            for _ in 0..<count {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                // Bias toward HTTP-ish bytes so deeper paths get exercised.
                let alphabet: [UInt8] = Array("GET /HTTP1.:\r\n \t\0Hostx%!@v".utf8)
                bytes.append(state % 4 == 0 ? UInt8(truncatingIfNeeded: state >> 8) : alphabet[Int(state >> 16) % alphabet.count])
            }
            switch Self.parse(bytes: bytes) {
            case .incomplete, .failure: break
            case let .request(_, consumed): #expect(consumed <= bytes.count)
            }
        }
    }
}

/// The parser is incremental: fed the same bytes in pieces, it gives the one-shot verdict, and it never
/// scans what it has already scanned.
@Suite("HTTP request parser, incremental")
struct IncrementalParserTests {
    /// Feeds `bytes` to one parser in pieces of the sizes `next` gives, as a connection does; stops at the
    /// first verdict that is not `.incomplete`.
    static func fed(_ bytes: [UInt8], limits: RequestLimits, parser: inout RequestParser, next: () -> Int) -> ParseResult {
        var given = 0
        repeat {
            given = min(bytes.count, given + max(1, next()))
            let result = bytes.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[0..<given]), limits: limits) }
            if case .incomplete = result { continue }
            return result
        } while given < bytes.count
        return .incomplete
    }

    /// A head at the default limits: a request line of `maxRequestLine` bytes and a header section just under
    /// `maxHeaderBytes` (about 23 KiB in all), as in the quadratic-cost report.
    static func maximalHead(_ limits: RequestLimits) -> [UInt8] {
        let line = "GET /" + String(repeating: "a", count: limits.maxRequestLine - "GET / HTTP/1.1".count) + " HTTP/1.1\r\n"
        var fields = "Host: x\r\n"
        let field = "X-Filler: " + String(repeating: "b", count: 200) + "\r\n"
        while fields.utf8.count + field.utf8.count < limits.maxHeaderBytes - 2 && fields.utf8.filter({ $0 == 0x0A }).count < limits.maxHeaderCount {
            fields += field
        }
        return Array((line + fields + "\r\n").utf8)
    }

    @Test("a maximal head fed a byte at a time parses as in one go, scanning each byte a bounded number of times")
    func byteAtATimeIsLinear() throws {
        let limits = RequestLimits()
        let head = Self.maximalHead(limits)
        #expect(head.count > 20_000)
        var parser = RequestParser()
        let result = Self.fed(head, limits: limits, parser: &parser) { 1 }
        let oneShot = head.withUnsafeBytes { RequestParser.parse($0, limits: limits) }
        guard case .request(_, let consumed) = result else { Issue.record("not parsed: \("\(result)")"); return }
        #expect(consumed == head.count)
        #expect("\(result)" == "\(oneShot)")
        // Restarting the scan on every byte would be ~head² / 2 (≈ 270 M) bytes; the scan and the parsing pass are 2×.
        #expect(parser.scannedBytes <= 3 * head.count, "\(parser.scannedBytes) bytes scanned for a \(head.count)-byte head")
        // It starts afresh for the next request on the connection.
        let next = Array("GET /next HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        guard case let .request(again, _) = Self.fed(next, limits: limits, parser: &parser, next: { 1 }) else { Issue.record("second request"); return }
        #expect(again.target == "/next")
    }

    @Test("random inputs in random pieces get the one-shot verdict")
    func randomPieces() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        let alphabet = Array("GET /HTTP1.:\r\n \t\0Hostx%!@vConnection,close".utf8)
        let tiny = RequestLimits(maxRequestLine: 32, maxHeaderBytes: 64, maxHeaderCount: 3)
        var requests = 0
        for round in 0..<3000 {
            let limits = round % 2 == 0 ? RequestParserTests.limits : tiny
            var bytes: [UInt8]
            if round % 3 == 0 {
                // Mostly well-formed, so successes are common too.
                bytes = Array("\r\nGET /m/@v/v1.0.0.info?x=\(round) HTTP/1.\(round % 2)\r\nHost: x\r\nConnection: keep-alive\r\nX: \(round)\r\n\r\nGET".utf8)
                if round % 5 == 0 { bytes[Int(random() % UInt64(bytes.count))] = alphabet[Int(random() % UInt64(alphabet.count))] }
            } else {
                bytes = (0..<Int(random() % 400)).map { _ in
                    let r = random()
                    return r % 4 == 0 ? UInt8(truncatingIfNeeded: r >> 8) : alphabet[Int(r >> 16) % alphabet.count]
                }
            }
            var parser = RequestParser()
            let pieces = Self.fed(bytes, limits: limits, parser: &parser) { Int(random() % 9) }
            let oneShot = bytes.withUnsafeBytes { RequestParser.parse($0, limits: limits) }
            #expect("\(pieces)" == "\(oneShot)", "\(bytes)")
            #expect(parser.scannedBytes <= 2 * bytes.count + 8, "\(parser.scannedBytes) bytes scanned for \(bytes.count)")
            if case .request = pieces { requests += 1 }
        }
        #expect(requests > 300, "the inputs reach the request case")
    }
}
