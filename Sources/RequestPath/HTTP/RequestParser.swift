/// Limits the parser enforces; each maps to the status the client gets when it is exceeded.
import HostSupport
import PluginHost
import Glibc
package struct RequestLimits: Sendable {
    /// Longest request line (method, target, version), CRLF excluded: 414 past it.
    package var maxRequestLine = 8192
    /// Largest header section (all header lines): 431 past it.
    package var maxHeaderBytes = 16384
    /// Most header fields: 431 past it.
    package var maxHeaderCount = 100
    /// Largest POST body read into memory (413 past it); 0 refuses POST (405), as when no endpoint takes a body (admin off).
    package var maxBodyBytes = 0
    /// Largest POST body a handler may take streamed (`BodyPlan.stream`: admin uploads); the parser allows a
    /// Content-Length up to the larger of the two, and the handler's plan decides, from the head, which applies.
    package var maxStreamedBodyBytes = 0
}

/// Outcome of one parse attempt over buffered bytes.
package enum ParseResult {
    /// More bytes are needed.
    case incomplete
    /// A request head of `consumed` bytes.
    case request(Request, consumed: Int)
    /// The bytes are not an acceptable request: answer `status` and close the connection.
    case failure(status: Int, reason: String, allow: Bool = false)
}

extension ParseResult: CustomStringConvertible {
    /// The whole verdict as text (tests and the fuzz target compare two parses with it).
    package var description: String {
        switch self {
        case .incomplete: "incomplete"
        case let .failure(status, reason, allow): "failure \(status) \(reason)\(allow ? " (Allow)" : "")"
        case let .request(r, consumed):
            "request \(r.method) \(r.target) HTTP/1.\(r.minorVersion) keepAlive=\(r.keepAlive) consumed=\(consumed) "
                + r.headers.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
        }
    }
}

/// Strict HTTP/1.x request-head parser: allocation-light, never traps on any input (fuzzed), incremental.
///
/// Accepts CRLF or bare LF line ends (as nginx and Go do) but never a bare CR; refuses obsolete line
/// folding, bodies (Content-Length > 0 or any Transfer-Encoding), missing or repeated Host on HTTP/1.1,
/// and anything but GET and HEAD.
///
/// A connection keeps one parser and calls `parse` with the bytes of the request so far each time more
/// arrive (the same bytes, extended; moving them in memory is fine). The parser remembers how far it has
/// scanned for the end of the head, so a head sent a byte at a time costs a linear scan, not a quadratic
/// one. Once complete, the head is parsed in one more pass. After a `.request` or a `.failure` the parser
/// starts afresh for the next request.
///
/// A connection's parser allocates nothing for a head that repeats recent ones: its strings come from the loop's
/// `StringTable`, and the header array is the parser's own, emptied and refilled in place once the previous
/// request has let go of it (a request still held elsewhere, such as a miss waiting on the pool, keeps its copy).
package struct RequestParser {
    /// Where the scan for the end of the head stands.
    private enum Phase: UInt8 { case leadingLines, requestLine, headerLines }

    /// Bytes the line searches examined so far, over every request: the end-of-head scan (resumed where it
    /// stopped) and the parsing pass's one search per line. The evidence that the work is linear in the
    /// bytes received however they are split (each later check reads one line once).
    package private(set) var scannedBytes = 0
    private var phase = Phase.leadingLines
    /// First byte of the request line (after tolerated leading empty lines).
    private var lineStart = 0
    /// Where the next search for LF begins.
    private var scanFrom = 0
    /// First CR seen in the line being scanned, or -1: a CR anywhere but just before the LF is refused.
    private var firstCR = -1
    /// The request line without its line end, and the position of its LF.
    private var requestLine = 0..<0
    private var requestLineEnd = 0
    /// Start of the header line being scanned.
    private var fieldStart = 0
    private var fieldCount = 0
    /// Where the strings of the head come from; nil: decoded anew each time.
    private var strings: StringTable?
    /// The header array handed to the last request, refilled for the next one (kept across `restart`).
    private var fields: [(name: String, value: String)] = []

    /// `strings`: the event loop's table (nil for one-shot parses).
    package init(strings: StringTable? = nil) { self.strings = strings }

    /// Parses `buffer` in one go (tests, the router's fuzz target).
    package static func parse(_ buffer: UnsafeRawBufferPointer, limits: RequestLimits) -> ParseResult {
        var parser = RequestParser()
        return parser.parse(buffer, limits: limits)
    }

    /// Continues with `buffer`: the bytes of this request from its first byte, at least those seen before.
    package mutating func parse(_ buffer: UnsafeRawBufferPointer, limits: RequestLimits) -> ParseResult {
        // Not a continuation of what was scanned (the caller started over): scan from the start.
        if buffer.count < scanFrom { restart() }
        let result = scanHead(buffer, limits: limits)
        if case .incomplete = result { return result }
        restart()
        return result
    }

    private mutating func restart() {
        let scanned = scannedBytes, strings = strings, fields = fields
        self = RequestParser(strings: strings)
        scannedBytes = scanned
        self.fields = fields
    }

    /// Finds the end of the head from where the last call stopped, enforcing the limits on the way (so they
    /// apply to unfinished heads too), then parses the complete head. Only counted, not recorded (no array
    /// of field ranges: the hit path allocates nothing here).
    private mutating func scanHead(_ buffer: UnsafeRawBufferPointer, limits: RequestLimits) -> ParseResult {
        let count = buffer.count
        if phase == .leadingLines {
            // Leading empty lines are tolerated (RFC 9112 §2.2).
            var start = scanFrom
            while start < count, buffer[start] == 0x0D || buffer[start] == 0x0A {
                if start >= 8 { return .failure(status: 400, reason: "empty lines before request") }
                start += 1
            }
            scannedBytes += start - scanFrom
            scanFrom = start
            lineStart = start
            if start == count { return .incomplete }
            phase = .requestLine
        }
        if phase == .requestLine {
            guard let line = findLineEnd(buffer, limit: lineStart + limits.maxRequestLine + 2) else {
                return count - lineStart > limits.maxRequestLine + 1
                    ? .failure(status: 414, reason: "request line too long")
                    : .incomplete
            }
            guard let contentEnd = line.contentEnd else { return .failure(status: 400, reason: "bare CR in request line") }
            if contentEnd - lineStart > limits.maxRequestLine {
                return .failure(status: 414, reason: "request line too long")
            }
            requestLine = lineStart..<contentEnd
            requestLineEnd = line.lf
            fieldStart = line.lf + 1
            phase = .headerLines
        }
        let headerStart = requestLineEnd + 1
        while true {
            guard let line = findLineEnd(buffer, limit: headerStart + limits.maxHeaderBytes + 2) else {
                return count - headerStart > limits.maxHeaderBytes + 1
                    ? .failure(status: 431, reason: "header section too large")
                    : .incomplete
            }
            guard let contentEnd = line.contentEnd else { return .failure(status: 400, reason: "bare CR in header") }
            let end = line.lf
            let empty = contentEnd == fieldStart
            fieldStart = end + 1
            if empty { break }
            if end - headerStart > limits.maxHeaderBytes { return .failure(status: 431, reason: "header section too large") }
            fieldCount += 1
            if fieldCount > limits.maxHeaderCount { return .failure(status: 431, reason: "too many header fields") }
        }
        return Self.parseHead(buffer, lineRange: requestLine, lineEnd: requestLineEnd, headEnd: fieldStart, fieldCount: fieldCount,
                              maxBody: limits.maxBodyBytes, maxStreamed: limits.maxStreamedBodyBytes, scannedBytes: &scannedBytes,
                              strings: strings, headers: &fields)
    }

    /// One line found by `findLineEnd`.
    private struct Line {
        /// Position of the LF.
        var lf: Int
        /// The line's content ends here: before a final CR, else at the LF; nil when a CR is anywhere else.
        var contentEnd: Int?
    }

    /// Searches for the LF ending the current line, from `scanFrom` up to `limit`; remembers where it
    /// stopped and the line's first CR, so the next call goes on from there.
    private mutating func findLineEnd(_ buffer: UnsafeRawBufferPointer, limit: Int) -> Line? {
        let end = min(buffer.count, limit)
        guard scanFrom < end, let base = buffer.baseAddress else { return nil }
        // memchr for the LF, then for a CR before it: vectorised, ~5x fewer instructions than a byte loop.
        let from = scanFrom
        let lf = memchr(base + from, 0x0A, end - from).map { UnsafeRawPointer($0) - base } ?? end
        var cr = firstCR
        if cr < 0, lf > from, let found = memchr(base + from, 0x0D, lf - from) { cr = UnsafeRawPointer(found) - base }
        scannedBytes += (lf < end ? lf + 1 : end) - from
        if lf < end {
            scanFrom = lf + 1
            firstCR = -1
            return Line(lf: lf, contentEnd: cr < 0 ? lf : cr == lf - 1 ? cr : nil)
        }
        scanFrom = end
        firstCR = cr
        return nil
    }

    /// The complete head [0, headEnd): the request line's parts and the header fields, in one pass.
    private static func parseHead(_ buffer: UnsafeRawBufferPointer, lineRange: Range<Int>, lineEnd: Int, headEnd cursor: Int,
                                  fieldCount: Int, maxBody: Int, maxStreamed: Int, scannedBytes: inout Int,
                                  strings: StringTable?, headers: inout [(name: String, value: String)]) -> ParseResult {
        // Request line: method SP target SP HTTP/1.x
        let parts = split(buffer, lineRange)
        guard let parts else { return .failure(status: 400, reason: "malformed request line") }
        let (methodRange, targetRange, versionRange) = parts
        let minor: Int
        if equals(buffer, versionRange, "HTTP/1.1") {
            minor = 1
        } else if equals(buffer, versionRange, "HTTP/1.0") {
            minor = 0
        } else {
            let v = versionRange.lowerBound
            if versionRange.count == 8, equals(buffer, v..<(v + 5), "HTTP/"), buffer[v + 6] == UInt8(ascii: "."),
               isDigit(buffer[v + 5]), isDigit(buffer[v + 7]) {
                return .failure(status: 505, reason: "HTTP version not supported")
            }
            return .failure(status: 400, reason: "malformed HTTP version")
        }
        guard all(buffer, methodRange, isTokenChar) else { return .failure(status: 400, reason: "malformed method") }
        let method: Request.Method
        if equals(buffer, methodRange, "GET") {
            method = .get
        } else if equals(buffer, methodRange, "HEAD") {
            method = .head
        } else if maxBody > 0, equals(buffer, methodRange, "POST") {
            method = .post
        } else {
            return .failure(status: 405, reason: "method not allowed", allow: true)
        }
        // Target: origin-form only; visible ASCII, no fragments.
        guard buffer[targetRange.lowerBound] == UInt8(ascii: "/"),
              all(buffer, targetRange, { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }) else {
            return .failure(status: 400, reason: "malformed request target")
        }

        // Header fields: the lines between the request line and the empty line, found again (once: the head
        // is complete, and its line ends and CRs were checked by the scan).
        // In place when the last request let go of the array; a large one is not kept (its strings would stay).
        // (removeLast: removeAll(keepingCapacity:) costs ~200 instructions, a removeLast ~20.)
        if headers.capacity > 64 { headers = [] } else { while !headers.isEmpty { headers.removeLast() } }
        if fieldCount > 0 { headers.reserveCapacity(fieldCount) }
        var hostCount = 0
        var connectionClose = false
        var connectionKeepAlive = false
        var contentLength: UInt64?
        var lineStart = lineEnd + 1
        let base = buffer.baseAddress!  // a complete head is never empty
        while true {
            // memchr, as in the scan: byte loops here cost ~10 instructions a byte of the head.
            let end = memchr(base + lineStart, 0x0A, cursor - lineStart).map { UnsafeRawPointer($0) - base } ?? cursor - 1
            scannedBytes += end + 1 - lineStart
            let field = lineStart..<(end > lineStart && buffer[end - 1] == 0x0D ? end - 1 : end)
            lineStart = end + 1
            if field.isEmpty { break }
            let first = buffer[field.lowerBound]
            if first == 0x20 || first == 0x09 { return .failure(status: 400, reason: "obsolete header line folding") }
            let colon = memchr(base + field.lowerBound, Int32(UInt8(ascii: ":")), field.count).map { UnsafeRawPointer($0) - base }
                ?? field.upperBound
            guard colon < field.upperBound, colon > field.lowerBound else { return .failure(status: 400, reason: "malformed header field") }
            let nameRange = field.lowerBound..<colon
            guard all(buffer, nameRange, isTokenChar) else { return .failure(status: 400, reason: "malformed header name") }
            var valueStart = colon + 1, valueEnd = field.upperBound
            while valueStart < valueEnd, buffer[valueStart] == 0x20 || buffer[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, buffer[valueEnd - 1] == 0x20 || buffer[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            let valueRange = valueStart..<valueEnd
            // Field values: visible characters, space, tab, obs-text; never other controls (NUL, CR, DEL…).
            guard all(buffer, valueRange, { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                return .failure(status: 400, reason: "control character in header value")
            }
            // Lower-cased as they are made (no copy); from the table when the parser has one (no UTF-8 validation).
            let nameBytes = UnsafeRawBufferPointer(rebasing: buffer[nameRange])
            let name = strings?.lowercased(nameBytes) ?? StringTable.lowercased(nameBytes)
            let value = decode(UnsafeRawBufferPointer(rebasing: buffer[valueRange]), strings)
            // On the bytes, length first: String comparisons with these literals cost ~35 instructions each, per field.
            if isName(buffer, nameRange, "host") {
                hostCount += 1
            } else if isName(buffer, nameRange, "content-length") {
                guard !valueRange.isEmpty, valueRange.count <= 18, all(buffer, valueRange, isDigit),
                      let length = UInt64(value), contentLength == nil || contentLength == length else {
                    return .failure(status: 400, reason: "malformed Content-Length")
                }
                contentLength = length
            } else if isName(buffer, nameRange, "transfer-encoding") {
                return .failure(status: 400, reason: "request bodies are not accepted")
            } else if isName(buffer, nameRange, "connection") {
                for token in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    let t = Substring(token).trimmingSpaces
                    if t.utf8.count == 5, t.lowercased() == "close" { connectionClose = true }
                    if t.utf8.count == 10, t.lowercased() == "keep-alive" { connectionKeepAlive = true }
                }
            }
            headers.append((name, value))
        }
        if minor == 1 && hostCount != 1 { return .failure(status: 400, reason: hostCount == 0 ? "missing Host header" : "repeated Host header") }
        if method == .post {
            guard let contentLength else { return .failure(status: 411, reason: "POST needs a Content-Length") }
            let most = max(maxBody, maxStreamed)
            if contentLength > UInt64(most) { return .failure(status: 413, reason: "request body larger than \(most) bytes") }
        } else if let contentLength, contentLength > 0 {
            return .failure(status: 413, reason: "request bodies are not accepted")
        }
        let keepAlive = minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        let request = Request(method: method, target: decode(UnsafeRawBufferPointer(rebasing: buffer[targetRange]), strings),
                              minorVersion: minor, headers: headers, keepAlive: keepAlive,
                              contentLength: method == .post ? Int(contentLength ?? 0) : 0)
        return .request(request, consumed: cursor)
    }

    @inline(__always)
    private static func decode(_ bytes: UnsafeRawBufferPointer, _ strings: StringTable?) -> String {
        strings?.string(bytes) ?? String(decoding: bytes, as: UTF8.self)
    }

    /// Splits the request line on single spaces into exactly three non-empty parts.
    /// memchr: a byte loop cost ~8 instructions a byte of the line.
    private static func split(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> (Range<Int>, Range<Int>, Range<Int>)? {
        guard let base = buffer.baseAddress, !range.isEmpty else { return nil }
        func space(from: Int) -> Int? {
            guard from < range.upperBound, let found = memchr(base + from, 0x20, range.upperBound - from) else { return nil }
            return UnsafeRawPointer(found) - base
        }
        guard let first = space(from: range.lowerBound), let second = space(from: first + 1),
              space(from: second + 1) == nil else { return nil }
        let a = range.lowerBound..<first, b = (first + 1)..<second, c = (second + 1)..<range.upperBound
        guard !a.isEmpty, !b.isEmpty, !c.isEmpty else { return nil }
        return (a, b, c)
    }

    /// Whether buffer[range] holds exactly the ASCII `literal`. Compared in place: no array per call.
    private static func equals(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let bytes = literal.utf8Start
        for i in 0..<range.count where buffer[range.lowerBound + i] != bytes[i] { return false }
        return true
    }

    /// Whether the header name in buffer[range] is `lowercase`, ignoring ASCII case.
    @inline(__always)
    private static func isName(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        let bytes = lowercase.utf8Start
        for i in 0..<range.count {
            let c = buffer[range.lowerBound + i]
            if (c >= 0x41 && c <= 0x5A ? c | 0x20 : c) != bytes[i] { return false }
        }
        return true
    }

    private static func all(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>, _ test: (UInt8) -> Bool) -> Bool {
        for i in range where !test(buffer[i]) { return false }
        return true
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// RFC 9110 tchar: DIGIT, ALPHA and !#$%&'*+-.^_`|~, as bits of two masks (a switch cost ~8 instructions a byte).
    @inline(__always)
    package static func isTokenChar(_ c: UInt8) -> Bool {
        c < 64 ? (tokenBelow64 >> UInt64(c)) & 1 != 0 : c < 128 ? (token64To127 >> UInt64(c - 64)) & 1 != 0 : false
    }

    private static let tokenBelow64: UInt64 = 0x03FF_6CFA_0000_0000
    private static let token64To127: UInt64 = 0x57FF_FFFF_C7FF_FFFE
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    package var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
