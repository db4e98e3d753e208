import HostSupport
import PluginHost
import Glibc

/// What the server sends back for one request. The one place responses are shaped.
package struct Response: Sendable {
    /// The body: nothing, bytes, or a storage blob (sendfile'd when it is fd-backed).
    package enum Body: Sendable {
        case empty
        case bytes([UInt8])
        case blob(Blob)

        package var count: UInt64 {
            switch self {
            case .empty: 0
            case let .bytes(b): UInt64(b.count)
            case let .blob(b): b.size
            }
        }
    }

    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: Body
    /// Close the connection after this response.
    package var close = false
    /// Metrics label of the route that answered ("zip", "list", "health", …).
    package var endpoint = "other"
    /// "hit" or "miss" for stored files; nil otherwise.
    package var cacheResult: String?

    package init(status: Int, headers: [(name: String, value: String)] = [], body: Body = .empty, close: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
    }

    /// A short text/plain answer; the go command shows such bodies to the user ("server response: …").
    package static func text(_ status: Int, _ message: String, close: Bool = false) -> Response {
        // One line, printable, bounded: the go command drops details with control characters.
        var line = String(message.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        if line.utf8.count > 600 { line = String(line.utf8.prefix(600)) ?? "error" }
        return Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")],
                        body: .bytes(Array((line + "\n").utf8)), close: close)
    }

    /// JSON bytes.
    package static func json(_ bytes: [UInt8]) -> Response {
        Response(status: 200, headers: [("Content-Type", "application/json")], body: .bytes(bytes))
    }

    /// The reason phrase of a status.
    package static func reason(_ status: Int) -> String {
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
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
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
    package func head(date: String, keepAlive: Bool, requestID: String = "", http10: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var id = requestID
        id.withUTF8 { writeHead(into: &out, date: Array(date.utf8)[...], keepAlive: keepAlive, requestID: $0, http10: http10) }
        return out
    }

    /// Appends the head to `out`. The event loop passes a buffer it reuses and a cached date, so a
    /// response head costs no allocation (no String building, no array per header).
    package func writeHead(into out: inout [UInt8], date: ArraySlice<UInt8>, keepAlive: Bool, requestID: UnsafeBufferPointer<UInt8>,
                   http10: Bool = false) {
        var reason = Self.reason(status)
        // Lengths first: a comparison with this 17-byte literal costs ~80 instructions per header.
        let addID = !requestID.isEmpty && !headers.contains(where: { $0.name.utf8.count == 17 && $0.name == "Athens-Request-ID" })
        // One capacity check, then plain copies: the fixed text is under 128 bytes, the numbers under 24 each.
        var bound = 128 + 48 + reason.utf8.count + date.count + (addID ? requestID.count + 24 : 0)
        for (name, value) in headers { bound += name.utf8.count + value.utf8.count + 4 }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: bound))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int in
            var w = HeadWriter(base: buffer.baseAddress! + start)
            w.put("HTTP/1.1 ")
            w.decimal(UInt64(status))
            w.byte(0x20)
            reason.withUTF8 { w.put($0) }
            w.put("\r\nServer: athens\r\nDate: ")
            date.withUnsafeBufferPointer { w.put($0) }
            w.put("\r\n")
            if addID {
                w.put("Athens-Request-ID: ")
                w.put(requestID)
                w.put("\r\n")
            }
            for (name, value) in headers {
                var name = name, value = value
                name.withUTF8 { w.put($0) }
                w.put(": ")
                value.withUTF8 { w.put($0) }
                w.put("\r\n")
            }
            w.put("Content-Length: ")
            w.decimal(body.count)
            w.put("\r\n")
            if !keepAlive { w.put("Connection: close\r\n") } else if http10 { w.put("Connection: keep-alive\r\n") }
            w.put("\r\n")
            return w.count
        }
        out.removeLast(bound - written)
    }

    /// Copies bytes into memory that `writeHead` sized beforehand.
    private struct HeadWriter {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (base + count).update(from: source, count: bytes.count)
            count += bytes.count
        }

        mutating func put(_ literal: StaticString) {
            put(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }

        mutating func byte(_ b: UInt8) {
            base[count] = b
            count += 1
        }

        mutating func decimal(_ value: UInt64) {
            var digits = 1, v = value
            while v >= 10 { v /= 10; digits += 1 }
            v = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                base[count + i] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
            }
            count += digits
        }
    }
}

/// The IMF-fixdate for now, as HTTP's Date header wants it.
package func httpDate(_ seconds: Int) -> String {
    var t = time_t(seconds)
    var tmValue = tm()
    gmtime_r(&t, &tmValue)
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(days[Int(tmValue.tm_wday)]), \(two(tmValue.tm_mday)) \(months[Int(tmValue.tm_mon)]) \(1900 + tmValue.tm_year) \(two(tmValue.tm_hour)):\(two(tmValue.tm_min)):\(two(tmValue.tm_sec)) GMT"
}
