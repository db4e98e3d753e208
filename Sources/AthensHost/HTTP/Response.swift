import Glibc

/// What the server sends back for one request. The one place responses are shaped.
struct Response: Sendable {
    /// The body: nothing, bytes, or a storage blob (sendfile'd when it is fd-backed).
    enum Body: Sendable {
        case empty
        case bytes([UInt8])
        case blob(Blob)

        var count: UInt64 {
            switch self {
            case .empty: 0
            case let .bytes(b): UInt64(b.count)
            case let .blob(b): b.size
            }
        }
    }

    var status: Int
    var headers: [(name: String, value: String)]
    var body: Body
    /// Close the connection after this response.
    var close = false
    /// Metrics label of the route that answered ("zip", "list", "health", …).
    var endpoint = "other"
    /// "hit" or "miss" for stored files; nil otherwise.
    var cacheResult: String?

    init(status: Int, headers: [(name: String, value: String)] = [], body: Body = .empty, close: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
    }

    /// A short text/plain answer; the go command shows such bodies to the user ("server response: …").
    static func text(_ status: Int, _ message: String, close: Bool = false) -> Response {
        // One line, printable, bounded: the go command drops details with control characters.
        var line = String(message.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        if line.utf8.count > 600 { line = String(line.utf8.prefix(600)) ?? "error" }
        return Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")],
                        body: .bytes(Array((line + "\n").utf8)), close: close)
    }

    /// JSON bytes.
    static func json(_ bytes: [UInt8]) -> Response {
        Response(status: 200, headers: [("Content-Type", "application/json")], body: .bytes(bytes))
    }

    /// The reason phrase of a status.
    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 410: "Gone"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }

    /// Serializes the status line and headers (Content-Length always, Connection: close when closing).
    /// `http10`: the request was HTTP/1.0, whose clients take a connection as closing unless the
    /// response says `Connection: keep-alive`.
    func head(date: String, keepAlive: Bool, requestID: String = "", http10: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var id = requestID
        id.withUTF8 { writeHead(into: &out, date: Array(date.utf8)[...], keepAlive: keepAlive, requestID: $0, http10: http10) }
        return out
    }

    /// Appends the head to `out`. The event loop passes a buffer it reuses and a cached date, so a
    /// response head costs no allocation (no String building, no array per header).
    func writeHead(into out: inout [UInt8], date: ArraySlice<UInt8>, keepAlive: Bool, requestID: UnsafeBufferPointer<UInt8>,
                   http10: Bool = false) {
        Self.append("HTTP/1.1 ", to: &out)
        Self.appendDecimal(UInt64(status), to: &out)
        out.append(0x20)
        var reason = Self.reason(status)
        reason.withUTF8 { out.append(contentsOf: $0) }
        Self.append("\r\nServer: athens\r\nDate: ", to: &out)
        out.append(contentsOf: date)
        Self.append("\r\n", to: &out)
        if !requestID.isEmpty && !headers.contains(where: { $0.name == "Athens-Request-ID" }) {
            Self.append("Athens-Request-ID: ", to: &out)
            out.append(contentsOf: requestID)
            Self.append("\r\n", to: &out)
        }
        for (name, value) in headers {
            var name = name, value = value
            name.withUTF8 { out.append(contentsOf: $0) }
            Self.append(": ", to: &out)
            value.withUTF8 { out.append(contentsOf: $0) }
            Self.append("\r\n", to: &out)
        }
        Self.append("Content-Length: ", to: &out)
        Self.appendDecimal(body.count, to: &out)
        Self.append("\r\n", to: &out)
        if !keepAlive { Self.append("Connection: close\r\n", to: &out) } else if http10 { Self.append("Connection: keep-alive\r\n", to: &out) }
        Self.append("\r\n", to: &out)
    }

    /// Appends a literal's bytes (through a buffer pointer: the fast path of `append(contentsOf:)`).
    @inline(__always)
    static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends `value` in decimal ASCII.
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 20 digits at most, kept on the stack
        var count = 0
        var v = value
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[count] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
                count += 1
            } while v > 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }
}

/// The IMF-fixdate for now, as HTTP's Date header wants it.
func httpDate(_ seconds: Int) -> String {
    var t = time_t(seconds)
    var tmValue = tm()
    gmtime_r(&t, &tmValue)
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(days[Int(tmValue.tm_wday)]), \(two(tmValue.tm_mday)) \(months[Int(tmValue.tm_mon)]) \(1900 + tmValue.tm_year) \(two(tmValue.tm_hour)):\(two(tmValue.tm_min)):\(two(tmValue.tm_sec)) GMT"
}
