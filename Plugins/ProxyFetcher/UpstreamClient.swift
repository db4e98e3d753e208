// UpstreamClient: blocking GETs to the upstream GOPROXY over the shared HTTPClient (libcurl). Every byte
// passes a callback on the calling (host) thread, so a body over its limit, a compressed body, a stall or
// an overrun deadline ends the transfer at once and closes its connection; a zip reaches the host's sink
// chunk by chunk, never held whole.
import Basics
import FoundationEssentials
import Glibc
import HTTPClient
import PluginKit

/// Blocking HTTP GETs for one plugin instance; one HTTPClient, its connections reused by every call.
/// - Important: Every method may be called from many threads at once.
final class UpstreamClient: Sendable {
    private let http: HTTPClient
    /// Longest silence allowed while connecting or receiving.
    let idleTimeout: Double
    /// A complete Authorization value, sent to `origin` only (HTTPClient drops it when a redirect leaves it).
    private let authorization: String?
    private let origin: Origin
    /// Go's client stops after 10 redirects too.
    private static let maximumRedirects = 10
    /// Most bytes of a non-200 body read for the error message.
    private static let maxErrorBodyBytes = 4096

    /// Makes a client; `authorization` (a complete header value) is sent only to `origin`.
    init(idleTimeout: Double, authorization: String?, origin: Origin) {
        self.idleTimeout = idleTimeout
        self.authorization = authorization
        self.origin = origin
        // One idle handle per concurrent caller the host is likely to have, each keeping its connection.
        http = HTTPClient(configuration: .init(maxIdleHandles: 32, connectionsPerHandle: 2))
    }

    /// GETs `url` and passes its 200 body to `consume` piece by piece, enforcing `limit` bytes, the announced
    /// Content-Length, the idle timeout, and `wholeTimeout` for the whole transfer (redirects included).
    /// Only 404 and 410 are notFound (Go's rule); any other non-200 is unavailable, quoting a short plain-text
    /// body as the go command shows it.
    func get(_ url: URL, subject: String, limit: Int64, wholeTimeout: Double, wholeTimeoutName: String,
             consume: (UnsafeRawBufferPointer) throws(PluginFailure) -> Void) throws(PluginFailure) {
        let shownURL = redacted(url)
        var headers = HTTPHeaders()
        if let authorization, Origin(url) == origin { headers.append("Authorization", authorization) }
        let request = HTTPRequest(.get, url: url.absoluteString, headers: headers, redirects: .follow(max: Self.maximumRedirects))
        let limits = HTTPLimits(maxBodyBytes: limit, timeout: .seconds(wholeTimeout), idleTimeout: .seconds(idleTimeout),
                                connectTimeout: .seconds(idleTimeout))
        var head: HTTPResponseHead?
        var received: Int64 = 0
        var detail: [UInt8] = []
        do {
            try http.perform(request, limits: limits, onHead: { answer in
                head = answer
                // Only a short plain-text error body is worth reading.
                if answer.status != 200, !Self.isPlainText(answer) { throw HTTPClient.Stop() }
            }, onBody: { chunk in
                guard let answer = head, answer.status == 200 else {
                    detail.append(contentsOf: chunk.prefix(Self.maxErrorBodyBytes - detail.count))
                    if detail.count >= Self.maxErrorBodyBytes { throw HTTPClient.Stop() }
                    return
                }
                received += Int64(chunk.count)
                if let announced = answer.contentLength, received > announced {
                    throw PluginFailure.unavailable("\(subject): upstream sent more than its Content-Length \(announced) (\(shownURL))")
                }
                try consume(chunk)
            })
        } catch {
            if case .consumer(let failure as PluginFailure) = error { throw failure }
            // A non-200 head decides even if its error body then stalls or misbehaves.
            if let head, head.status != 200 { throw statusFailure(head, detail: detail, subject: subject) }
            throw failure(error, subject: subject, shownURL: shownURL, head: head, received: received,
                          deadlineName: "\(wholeTimeoutName) (\(seconds(wholeTimeout)))")
        }
        guard let head else { throw .unavailable("\(subject): upstream closed the connection without an answer (\(shownURL))") }
        guard head.status == 200 else { throw statusFailure(head, detail: detail, subject: subject) }
        if let announced = head.contentLength, received != announced {
            throw .unavailable("\(subject): upstream sent \(received) of \(announced) bytes, truncated (\(shownURL))")
        }
    }

    private func statusFailure(_ head: HTTPResponseHead, detail: [UInt8], subject: String) -> PluginFailure {
        let quoted = Self.errorDetail(detail)
        let text = "upstream answered \(head.status) for \(head.url)" + (quoted.isEmpty ? "" : ": \(quoted)")
        if head.status == 404 || head.status == 410 { return .notFound("\(subject): not found: \(text)") }
        return .unavailable("\(subject): \(text)")
    }

    private func failure(_ error: HTTPClientError, subject: String, shownURL: String, head: HTTPResponseHead?,
                         received: Int64, deadlineName: String) -> PluginFailure {
        let announced = head?.contentLength
        let partial = announced.map { " after \(received) of \($0) bytes" } ?? (received > 0 ? " after \(received) bytes" : "")
        let at = "\(partial) (\(shownURL))"
        switch error {
        case .tooLarge(let limit):
            if let announced, announced > limit {
                return .unavailable("\(subject): upstream announced \(announced) bytes, over the \(limit)-byte limit (\(shownURL))")
            }
            return .unavailable("\(subject): upstream sent more than the \(limit)-byte limit (\(shownURL))")
        case .timedOut(.deadline):
            return .timeout("\(subject): upstream did not finish within \(deadlineName)\(at)")
        case .timedOut(.idle), .timedOut(.connect):
            let why = head == nil ? "did not answer within \(seconds(idleTimeout))" : "sent nothing for \(seconds(idleTimeout))"
            return .timeout("\(subject): upstream \(why)\(at)")
        case .encodedBody(let encoding):
            return .unavailable("\(subject): upstream sent a compressed body (Content-Encoding: \(encoding)) although none was asked for (\(shownURL))")
        case .invalidRequest(let why):
            return .internal("\(subject): cannot send the request: \(why) (\(shownURL))")
        case .consumer(let inner):
            return .internal("\(subject): \(inner) (\(shownURL))")
        case .headersTooLarge, .redirectRefused, .transport, .cancelled:
            return .unavailable("\(subject): upstream \(error)\(at)")
        }
    }

    private static func isPlainText(_ head: HTTPResponseHead) -> Bool {
        let type = (head.headers["Content-Type"] ?? "").lowercased().replacingAll(" ", with: "")
        return type == "text/plain" || type == "text/plain;charset=utf-8" || type == "text/plain;charset=us-ascii"
    }

    /// The start of an error body as the go command shows it: up to the first blank line, lines joined,
    /// only if every character is printable; "" otherwise.
    private static func errorDetail(_ bytes: [UInt8]) -> String {
        guard !bytes.isEmpty, let text = String(validating: bytes, as: UTF8.self) else { return "" }
        var lines: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingWhitespace
            if trimmed.isEmpty { if lines.isEmpty { continue } else { break } }
            lines.append(Substring(trimmed))
        }
        let joined = lines.joined(separator: " / ")
        guard joined.unicodeScalars.allSatisfy({ $0.properties.generalCategory != .control && $0.properties.generalCategory != .format }) else { return "" }
        return joined.count > ProxyFetcher.maxDetailBytes ? String(joined.prefix(ProxyFetcher.maxDetailBytes)) + "…" : joined
    }
}

/// Scheme, host and port of the configured upstream: credentials go nowhere else.
struct Origin: Equatable {
    let scheme: String
    let host: String
    let port: Int?

    init?(_ url: URL?) {
        guard let url, let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return nil }
        self.scheme = scheme
        self.host = host
        port = url.port ?? (scheme == "https" ? 443 : scheme == "http" ? 80 : nil)
    }
}

/// `url` as text with any user:password removed, for messages.
func redacted(_ url: URL) -> String {
    guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return "<unprintable URL>" }
    if components.user == nil && components.password == nil { return url.absoluteString }
    components.user = nil
    components.password = nil
    return components.string ?? "<unprintable URL>"
}

/// "2.5 s", "30 s".
func seconds(_ value: Double) -> String {
    value == value.rounded() && value < 1e15 ? "\(Int(value)) s" : "\(value) s"
}
