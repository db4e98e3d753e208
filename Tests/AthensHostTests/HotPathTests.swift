import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The pieces of a warm hit that were rewritten to allocate nothing (issue 15): they must still produce
/// exactly what the string-building versions did. Speed itself is measured in bench/ (profile.sh, run.sh).
@Suite("hot path")
struct HotPathTests {
    private static func head(_ response: Response, keepAlive: Bool, id: String, http10: Bool = false) -> String {
        var out: [UInt8] = [0x58] // a byte already in the buffer must stay in front
        var id = id
        id.withUTF8 { response.writeHead(into: &out, date: Array("Mon, 01 Jan 2024 00:00:00 GMT".utf8)[...], keepAlive: keepAlive,
                                         requestID: $0, http10: http10) }
        #expect(out.first == 0x58)
        return String(decoding: out.dropFirst(), as: UTF8.self)
    }

    @Test("the head writer: status, date, request id, headers, length, connection, byte for byte")
    func headBytes() {
        let json = Response.json(Array(#"{"Version":"v1.0.0"}"#.utf8))
        #expect(Self.head(json, keepAlive: true, id: "abc-1f") ==
            "HTTP/1.1 200 OK\r\nServer: athens\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nAthens-Request-ID: abc-1f\r\n" +
            "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n")
        // Closing, no id, an empty body (Content-Length 0), a status past 500 with its reason.
        #expect(Self.head(Response(status: 503), keepAlive: false, id: "") ==
            "HTTP/1.1 503 Service Unavailable\r\nServer: athens\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
            "Content-Length: 0\r\nConnection: close\r\n\r\n")
        // HTTP/1.0 keep-alive says so; a response that carries its own id does not get a second one.
        let own = Response(status: 404, headers: [("Athens-Request-ID", "given")], body: .bytes(Array(repeating: 0x41, count: 1_234_567)))
        #expect(Self.head(own, keepAlive: true, id: "abc-2", http10: true) ==
            "HTTP/1.1 404 Not Found\r\nServer: athens\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nAthens-Request-ID: given\r\n" +
            "Content-Length: 1234567\r\nConnection: keep-alive\r\n\r\n")
        // The String form (used off the hot path) is the same bytes.
        #expect(String(decoding: json.head(date: "Mon, 01 Jan 2024 00:00:00 GMT", keepAlive: true, requestID: "abc-1f"), as: UTF8.self) ==
            Self.head(json, keepAlive: true, id: "abc-1f"))
    }

    @Test("generated request ids: the stack-built bytes are the id's text", arguments: [UInt64(0), 1, 15, 16, 0xdead_beef, .max])
    func requestIDBytes(number: UInt64) {
        let id = RequestID(given: nil, prefix: "9f3a", number: number)
        #expect(id.description == "9f3a-" + String(number, radix: 16))
        #expect(id.withBytes { String(decoding: $0, as: UTF8.self) } == id.description)
        let given = RequestID(given: "trace-42.a", prefix: "9f3a", number: number)
        #expect(given.withBytes { String(decoding: $0, as: UTF8.self) } == "trace-42.a")
    }

    @Test("the parse memo returns what parsing returns, with the cache key, and stays bounded")
    func parseMemo() throws {
        let path = "/github.com/!burnt!sushi/toml/@v/v1.2.0.zip"
        let first = try DownloadRequest.parse(path[...]).get()
        let again = try DownloadRequest.parse(path[...]).get()
        #expect(first == again)
        #expect(first.module == "github.com/BurntSushi/toml" && first.kind == .file(.zip, version: "v1.2.0"))
        #expect(first.cacheKey == "github.com/BurntSushi/toml@v1.2.0.zip")
        #expect(try DownloadRequest.parse("/example.com/m/@v/list"[...]).get().cacheKey == "")
        // A path with a query is keyed by its path part; the answer is the same.
        let target = "/example.com/m/@v/v1.0.0.info?x=1"
        let request = Request(method: .get, target: target, minorVersion: 1, headers: [], keepAlive: true)
        #expect(request.path == "/example.com/m/@v/v1.0.0.info" && request.query == "x=1")
        #expect(try DownloadRequest.parse(request.path).get().cacheKey == "example.com/m@v1.0.0.info")
        // Failures are never remembered: a bad path stays bad, a good one stays good.
        for _ in 0..<2 {
            guard case .failure(.malformed) = DownloadRequest.parse("/Example.com/m/@v/v1.0.0.info"[...]) else {
                Issue.record("an upper-case path was accepted"); return
            }
        }
        // Many distinct paths: the memo empties itself instead of growing.
        for i in 0..<(DownloadRequest.memoCapacity + 10) {
            _ = DownloadRequest.parse("/example.com/memo/m\(i)/@v/v1.0.0.mod"[...])
            #expect(DownloadRequest.memoCount <= DownloadRequest.memoCapacity)
        }
    }
}
