// The values an HTTPClient call takes and gives back. Nothing here talks to curl.

/// The methods the client sends.
public enum HTTPMethod: String, Sendable {
    case get = "GET", head = "HEAD", put = "PUT", post = "POST", delete = "DELETE"
}

/// Header fields in the order received; lookups ignore case, as HTTP requires.
public struct HTTPHeaders: Sendable, Sequence {
    /// Every field as sent, names in their original case.
    public internal(set) var fields: [(name: String, value: String)] = []

    public init(_ fields: [(name: String, value: String)] = []) { self.fields = fields }

    /// The first value of `name` (any case), or nil.
    public subscript(_ name: String) -> String? {
        fields.first { Self.sameName($0.name, name) }?.value
    }

    /// Every value of `name` (any case), in order.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    public mutating func append(_ name: String, _ value: String) { fields.append((name, value)) }

    /// Removes every field called `name` (any case).
    public mutating func remove(_ name: String) {
        fields.removeAll { Self.sameName($0.name, name) }
    }

    /// Field names compared as HTTP does: ASCII letters in any case (names are tokens, RFC 9110 5.1), without
    /// building lower-cased copies (a cold fetch looks up a few fields in each of three responses).
    static func sameName(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for i in 0..<x.count where x[i] != y[i] {
                    // Equal once folded: only letters differ by 0x20 and fold to the same lower-case letter.
                    guard x[i] | 0x20 == y[i] | 0x20, (0x61...0x7A).contains(x[i] | 0x20) else { return false }
                }
                return true
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
}

/// What a request sends after its head.
public enum HTTPRequestBody {
    /// No body (GET, HEAD, DELETE; a PUT or POST of zero bytes).
    case empty
    /// Bytes held by the caller; replayable, so a 307/308 redirect can resend them.
    case bytes([UInt8])
    /// Exactly `length` bytes pulled on demand: `read` fills a prefix of the buffer it gets and returns how
    /// many bytes it wrote (0 only at the end). Nothing is buffered beyond curl's own upload buffer.
    /// Not replayable: a redirect that would resend it is refused.
    case stream(length: Int64, read: (UnsafeMutableRawBufferPointer) throws -> Int)

    var length: Int64 {
        switch self {
        case .empty: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .stream(let length, _): length
        }
    }
}

/// Whether 3xx answers are followed.
public enum HTTPRedirectPolicy: Sendable {
    /// A 3xx is returned to the caller like any other status (the default).
    case none
    /// Up to `max` redirects (301, 302, 303, 307, 308) are followed. Always refused: https → http, any
    /// scheme but http(s), a Location carrying user:password. Credentials (Authorization, Cookie) are
    /// dropped when the target's scheme, host or port differ from the original request's.
    case follow(max: Int)
}

/// One request.
public struct HTTPRequest {
    public var method: HTTPMethod
    /// An absolute http or https URL, already percent-encoded, without user:password (send credentials
    /// in a header: the client never puts a URL in a message, but a URL with secrets is refused outright).
    public var url: String
    /// Sent as given. The client adds none of its own except `Host` and `Content-Length`; it removes
    /// curl's `Expect: 100-continue` and its default POST `Content-Type` unless the caller sets them.
    public var headers: HTTPHeaders
    public var body: HTTPRequestBody
    public var redirects: HTTPRedirectPolicy

    public init(_ method: HTTPMethod = .get, url: String, headers: HTTPHeaders = HTTPHeaders(),
                body: HTTPRequestBody = .empty, redirects: HTTPRedirectPolicy = .none) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.redirects = redirects
    }
}

/// Hard bounds of one call, enforced as bytes arrive (not after the fact).
public struct HTTPLimits: Sendable {
    /// Most response-body bytes accepted; an announced Content-Length above it fails before the body, and
    /// the byte that crosses it aborts the transfer and closes its connection.
    public var maxBodyBytes: Int64
    /// Most bytes of status line plus header fields (all interim responses included).
    public var maxHeaderBytes: Int
    /// The whole call (redirects included) ends by this instant of the monotonic clock.
    public var deadline: ContinuousClock.Instant
    /// Longest time with no byte moving either way (waiting for the answer included).
    public var idleTimeout: Duration
    /// Longest TCP connect plus TLS handshake.
    public var connectTimeout: Duration
    /// Polled during the transfer (at least about once a second); true aborts it with `.cancelled`.
    public var isCancelled: (@Sendable () -> Bool)?

    public init(maxBodyBytes: Int64, timeout: Duration, idleTimeout: Duration, connectTimeout: Duration = .seconds(10),
                maxHeaderBytes: Int = 64 << 10, isCancelled: (@Sendable () -> Bool)? = nil) {
        self.init(maxBodyBytes: maxBodyBytes, deadline: .now + timeout, idleTimeout: idleTimeout,
                  connectTimeout: connectTimeout, maxHeaderBytes: maxHeaderBytes, isCancelled: isCancelled)
    }

    public init(maxBodyBytes: Int64, deadline: ContinuousClock.Instant, idleTimeout: Duration,
                connectTimeout: Duration = .seconds(10), maxHeaderBytes: Int = 64 << 10,
                isCancelled: (@Sendable () -> Bool)? = nil) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.deadline = deadline
        self.idleTimeout = idleTimeout
        self.connectTimeout = connectTimeout
        self.isCancelled = isCancelled
    }
}

/// The status and header fields of the final (non-1xx, not followed) response.
public struct HTTPResponseHead: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    /// The URL that answered (the request's, or the last redirect's); never carries user:password.
    public let url: String

    /// The announced Content-Length, when present and a plain decimal number.
    public var contentLength: Int64? {
        guard let text = headers["Content-Length"]?.trimmed, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }
}

/// A response whose body was collected whole (up to `HTTPLimits.maxBodyBytes`).
public struct HTTPResponse: Sendable {
    public let head: HTTPResponseHead
    public let body: [UInt8]
    public var status: Int { head.status }
    public var headers: HTTPHeaders { head.headers }
}

/// Which clock ran out.
public enum HTTPTimeout: Sendable, Equatable {
    /// The connection (TCP and TLS) was not up in time.
    case connect(Duration)
    /// No byte moved for this long.
    case idle(Duration)
    /// The call's deadline passed.
    case deadline
}

/// Why a call failed below the HTTP status level. Messages never contain a URL, so never a query string
/// or credentials; callers add the (redacted) URL themselves if they want it.
public enum HTTPClientError: Error, CustomStringConvertible {
    /// The body (or its announced Content-Length) exceeded `maxBodyBytes`.
    case tooLarge(limit: Int64)
    /// The status line and headers exceeded `maxHeaderBytes`.
    case headersTooLarge(limit: Int)
    case timedOut(HTTPTimeout)
    /// `isCancelled` said so.
    case cancelled
    /// The response was compressed (`Content-Encoding` other than identity) although none was asked for;
    /// refused, because decoding would let a small body inflate without bound.
    case encodedBody(String)
    /// A redirect the policy does not allow.
    case redirectRefused(String)
    /// The request itself is unusable (bad URL, header with a line break, ...); nothing was sent.
    case invalidRequest(String)
    /// Connection refused, DNS, TLS, connection lost, truncated body, not HTTP...
    case transport(String)
    /// A body sink, head callback or upload source supplied by the caller threw this.
    case consumer(any Error)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "response body over the \(limit)-byte limit"
        case .headersTooLarge(let limit): "response headers over the \(limit)-byte limit"
        case .timedOut(.connect(let d)): "no connection within \(d.seconds)"
        case .timedOut(.idle(let d)): "nothing received for \(d.seconds)"
        case .timedOut(.deadline): "did not finish before its deadline"
        case .cancelled: "cancelled"
        case .encodedBody(let encoding): "response compressed (Content-Encoding: \(encoding)) although none was asked for"
        case .redirectRefused(let why): "redirect refused: \(why)"
        case .invalidRequest(let why): "invalid request: \(why)"
        case .transport(let why): why
        case .consumer(let error): "\(error)"
        }
    }
}

extension Duration {
    /// "2.5 s", "30 s".
    var seconds: String {
        let (whole, attos) = components
        if attos == 0 { return "\(whole) s" }
        return "\(Double(whole) + Double(attos) / 1e18) s"
    }

    var milliseconds: Int64 {
        let (whole, attos) = components
        return whole * 1000 + attos / 1_000_000_000_000_000
    }
}

extension String {
    /// Without leading and trailing spaces, tabs, CR and LF (byte-wise: "\r\n" is one Character).
    var trimmed: String {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var bytes = Substring(self).utf8[...]
        while let first = bytes.first, isSpace(first) { bytes.removeFirst() }
        while let last = bytes.last, isSpace(last) { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self) // not String(Substring(bytes)): that appends scalar by scalar
    }
}
