/// A parsed HTTP/1.x request head. GET and HEAD; POST (with a Content-Length body) only when
/// `RequestLimits.maxBodyBytes` allows it (the admin API).
package struct Request: Sendable {
    package enum Method: Sendable { case get, head, post }

    package var method: Method
    /// The request target as sent, e.g. "/github.com/%21burnt/@v/list?x=1".
    package var target: String
    /// HTTP minor version: 0 or 1.
    package var minorVersion: Int
    /// Header fields in order, names lower-cased.
    package var headers: [(name: String, value: String)]
    /// Whether the connection stays open after the response.
    package var keepAlive: Bool
    /// Body length from Content-Length (POST only; the connection reads it before handling).
    package var contentLength = 0
    /// The body, read in full before the handler sees the request (unless it was streamed to `bodySink`).
    package var body: [UInt8] = []
    /// Where the body went when the handler's `plan` streamed it (all `contentLength` bytes have arrived).
    package var bodySink: (any BodySink)?
    /// The peer's address as text, filled for POST requests only (the admin log names who acted).
    package var peer = ""

    /// The target's path part, still percent-encoded.
    package var path: Substring {
        guard let q = queryMark else { return target[...] }
        return target[..<q]
    }

    /// The target's query part without "?", or "".
    package var query: Substring {
        guard let q = queryMark else { return "" }
        return target[target.utf8.index(after: q)...]
    }

    /// Where the "?" is. A scan of the contiguous bytes: the generic UTF8View search cost ~1k instructions a request.
    private var queryMark: String.Index? {
        var t = target
        guard let offset = t.withUTF8({ $0.firstIndex(of: UInt8(ascii: "?")) }) else { return nil }
        return target.utf8.index(target.utf8.startIndex, offsetBy: offset)
    }

    /// First value of a header (name lower-case).
    package func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
}
