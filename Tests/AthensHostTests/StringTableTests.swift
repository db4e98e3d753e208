import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// What lets a warm hit's parse allocate nothing (issue 15): the loop's `StringTable` and the parser's reused header
/// array. Neither may change what a head parses to, nor what an earlier request still holds.
@Suite("hot path: string table and reused header array")
struct StringTableTests {
    private static func string(_ table: StringTable, _ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { table.string($0) } }

    @Test("a repeated string comes from the table, equal to a fresh decode; empty and over-long ones skip it")
    func repeats() {
        let table = StringTable(slotCount: 16)
        let path = Array("/example.com/bench/m0001/@v/v1.0.0.info".utf8)
        #expect(Self.string(table, path) == String(decoding: path, as: UTF8.self))
        #expect(table.insertions == 1 && table.hits == 0)
        #expect(Self.string(table, path) == String(decoding: path, as: UTF8.self))
        #expect(table.hits == 1)
        // Inline strings (up to 15 bytes) too: making one from bytes costs more than a lookup.
        for _ in 0..<2 { #expect(Self.string(table, Array("127.0.0.1:43215".utf8)) == "127.0.0.1:43215") }
        for _ in 0..<2 { #expect(Self.string(table, Array("x".utf8)) == "x") }
        #expect(table.insertions == 3 && table.hits == 3)
        // Nothing past maxLength is kept (the table's bound), nor the empty string.
        let long = [UInt8](repeating: 0x61, count: StringTable.maxLength + 1)
        #expect(Self.string(table, long) == String(decoding: long, as: UTF8.self))
        #expect(Self.string(table, long).utf8.count == StringTable.maxLength + 1)
        #expect(Self.string(table, []) == "")
        #expect(table.insertions == 3 && table.hits == 3)
    }

    @Test("a bucket keeps its `ways` most recently used strings, never confused (same length, one byte apart)")
    func buckets() {
        let table = StringTable(slotCount: StringTable.ways)  // one bucket
        let paths = (0...StringTable.ways).map { "/example.com/m/@v/v1.0.\($0).info" }
        // As many strings as the bucket holds: after the first round, every lookup is a hit, in any order.
        for round in 0..<3 {
            for path in paths.dropLast().shuffled() { #expect(Self.string(table, Array(path.utf8)) == path, "round \(round)") }
        }
        #expect(table.insertions == StringTable.ways && table.hits == 2 * StringTable.ways)
        // One more, cycled through: the first cycle finds the four, then each evicts the least recently used, the next
        // in the cycle; no hit was a wrong string.
        for _ in 0..<3 {
            for path in paths { #expect(Self.string(table, Array(path.utf8)) == path) }
        }
        #expect(table.hits == 3 * StringTable.ways && table.insertions == StringTable.ways + 1 + 2 * paths.count)
        // A string used again moves to the front: the one evicted is the least recently used.
        let hits = table.hits
        _ = Self.string(table, Array(paths[1].utf8))  // in the bucket (the last cycle ended with paths[1...4])
        _ = Self.string(table, Array(paths[0].utf8))  // evicts paths[2], the least recently used
        _ = Self.string(table, Array(paths[1].utf8))
        _ = Self.string(table, Array(paths[3].utf8))
        #expect(table.hits == hits + 3)
        let insertions = table.insertions
        #expect(Self.string(table, Array(paths[2].utf8)) == paths[2])
        #expect(table.insertions == insertions + 1, "paths[2] was the one evicted")
    }

    @Test("ill-formed UTF-8 decodes as String(decoding:) does, and never matches the repaired string's bytes")
    func illFormed() {
        let table = StringTable(slotCount: StringTable.ways)
        let bad = Array("Go-http-client/1.1 ".utf8) + [0xFF, 0xFE]
        let repaired = String(decoding: bad, as: UTF8.self)
        #expect(Self.string(table, bad) == repaired)
        #expect(Self.string(table, bad) == repaired)
        #expect(table.hits == 0 && table.insertions == 2, "ill-formed bytes are decoded each time")
        // The repaired text itself is valid UTF-8: kept, and answered from the slot the second time.
        #expect(Self.string(table, Array(repaired.utf8)) == repaired)
        #expect(Self.string(table, Array(repaired.utf8)) == repaired)
        #expect(table.hits == 1 && table.insertions == 3)
        // Long header names are lower-cased before the lookup.
        #expect(Array("Athens-Request-ID".utf8).withUnsafeBytes { table.lowercased($0) } == "athens-request-id")
        #expect(Array("X-Forwarded-Proto".utf8).withUnsafeBytes { table.lowercased($0) } == "x-forwarded-proto")
        #expect(Array("HOST".utf8).withUnsafeBytes { table.lowercased($0) } == "host")
        #expect(Array("HoSt".utf8).withUnsafeBytes { table.lowercased($0) } == "host")
    }

    @Test("a repeated head gets the earlier strings (target, header values, long names) and, once let go, the header array")
    func repeatedHeadReusesStorage() throws {
        var parser = RequestParser(strings: StringTable())
        let head = Array(("GET /example.com/bench/m0001/@v/v1.0.0.info HTTP/1.1\r\nHost: proxy.internal.example:3000\r\n"
            + "User-Agent: Go-http-client/1.1\r\nAthens-Request-ID: trace-0123456789\r\n\r\n").utf8)
        func parse() -> Request? {
            guard case let .request(request, _) = head.withUnsafeBytes({ parser.parse($0, limits: RequestLimits()) }) else { return nil }
            return request
        }
        /// Where the heap strings of a request live (those over 15 bytes: shorter ones are stored inline).
        func strings(_ request: Request) -> [UnsafeRawPointer?] {
            ([request.target] + request.headers.flatMap { [$0.name, $0.value] }).filter { $0.utf8.count > 15 }.map { string in
                string.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
            }
        }
        func array(_ request: Request) -> UnsafeRawPointer? { request.headers.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        var first = parse(), second = parse()
        // Both alive: the same strings (separate decodes would be two buffers), each its own header array.
        let firstStrings = strings(try #require(first))
        #expect(firstStrings.count == 5 && !firstStrings.contains(nil))
        #expect(strings(try #require(second)) == firstStrings)
        #expect(array(try #require(first)) != array(try #require(second)))
        let secondArray = array(try #require(second))
        first = nil
        second = nil
        // A decoy of the array's size takes the block malloc would hand out next if the array had been freed.
        var decoy: [(name: String, value: String)] = []
        decoy.reserveCapacity(3)
        let third = try #require(parse())
        #expect(array(third) == secondArray, "the header array was refilled in place")
        #expect(strings(third) == firstStrings)
        #expect(third.header("user-agent") == "Go-http-client/1.1" && third.headers.count == 3 && decoy.capacity >= 3)
    }

    @Test("a request kept while the next is parsed keeps its own target and headers")
    func escapedRequestKeepsItsHeaders() throws {
        var parser = RequestParser(strings: StringTable(slotCount: 4))
        func parse(_ text: String) -> Request? {
            let result = Array(text.utf8).withUnsafeBytes { parser.parse($0, limits: RequestLimits()) }
            guard case let .request(request, _) = result else { return nil }
            return request
        }
        // The first is held (as a miss waiting on the pool holds it) while the parser refills its array.
        let first = try #require(parse("GET /example.com/first/@v/v1.0.0.info HTTP/1.1\r\nHost: first.example\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"))
        let second = try #require(parse("GET /example.com/second/@v/v1.0.0.zip HTTP/1.1\r\nHost: second.example\r\nAthens-Request-ID: trace-second-1\r\nX: 1\r\n\r\n"))
        #expect(first.target == "/example.com/first/@v/v1.0.0.info")
        #expect(first.headers.map(\.name) == ["host", "user-agent"] && first.headers.map(\.value) == ["first.example", "Go-http-client/1.1"])
        #expect(second.target == "/example.com/second/@v/v1.0.0.zip")
        #expect(second.headers.map(\.name) == ["host", "athens-request-id", "x"])
        #expect(second.header("athens-request-id") == "trace-second-1")
        // Once nothing holds them, the same heads again give the same requests.
        let again = try #require(parse("GET /example.com/first/@v/v1.0.0.info HTTP/1.1\r\nHost: first.example\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"))
        #expect(again.target == first.target && again.headers.map(\.value) == first.headers.map(\.value))
    }

    @Test("the parser's tchar masks are RFC 9110's token characters, byte for byte")
    func tokenCharacters() {
        let specials = Set("!#$%&'*+-.^_`|~".utf8)
        for c in UInt8.min...UInt8.max {
            let expected = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || specials.contains(c)
            #expect(RequestParser.isTokenChar(c) == expected, "byte \(c)")
        }
    }

    @Test("one parser with a tiny shared table, reused for thousands of random heads, gives the table-less verdicts")
    func randomHeadsThroughTable() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func random() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        let table = StringTable(slotCount: 8)
        var parser = RequestParser(strings: table)
        let paths = (0..<12).map { "/example.com/mod\($0 % 5)/@v/v1.0.\($0).info" }
        let values = ["Go-http-client/1.1", "proxy.internal.example:3000", "x", "gzip", "trace-0000000001", "Go-http-client/1.1\u{FF}"]
        var requests = 0
        for round in 0..<3000 {
            var text = "GET \(paths[Int(random() % UInt64(paths.count))]) HTTP/1.1\r\n"
            text += "Host: \(values[Int(random() % UInt64(values.count))])\r\n"
            for i in 0..<Int(random() % 4) {
                text += "\(i % 2 == 0 ? "User-Agent" : "Athens-Request-ID"): \(values[Int(random() % UInt64(values.count))])\r\n"
            }
            var bytes = Array((text + "\r\n").utf8)
            // Sometimes a stray byte (ill-formed UTF-8, a control, a line end) anywhere.
            if round % 4 == 0 { bytes[Int(random() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random()) }
            let reused = bytes.withUnsafeBytes { parser.parse($0, limits: RequestLimits()) }
            let fresh = bytes.withUnsafeBytes { RequestParser.parse($0, limits: RequestLimits()) }
            #expect("\(reused)" == "\(fresh)", "\(bytes)")
            if case .request = reused { requests += 1 }
            // An unfinished head leaves the parser waiting for more of it: the next head starts on a new one.
            if case .incomplete = reused { parser = RequestParser(strings: table) }
        }
        #expect(requests > 1500, "most heads parse")
        #expect(table.hits > 1000, "the table answered repeats (\(table.hits) hits, \(table.insertions) insertions)")
    }
}
