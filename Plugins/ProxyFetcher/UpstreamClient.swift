// UpstreamClient: blocking GETs over one shared URLSession. URLSession delivers events on its delegate queue;
// each GET is a Transfer whose events the calling (host) thread waits for, so timeouts, size limits and sink
// writes are all decided on the caller's thread, and a zip is handed over chunk by chunk, never held whole.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Why a GET failed below the HTTP status level.
enum TransferError: Error {
    /// Nothing arrived within the idle timeout, or the whole transfer overran its limit.
    case timedOut(String)
    /// Connection refused, DNS failure, TLS failure, connection lost, refused redirect...
    case failed(String)
}

/// The status line and headers of a finished-redirecting response.
struct ResponseHead {
    /// The HTTP status code.
    let status: Int
    /// The Content-Length the upstream announced, if any, and if it describes the bytes we will see.
    let contentLength: Int64?
    /// The Content-Type, if any.
    let contentType: String?
    /// The URL that answered (after redirects), without userinfo.
    let url: String
}

/// Blocking HTTP GETs for one plugin instance; one URLSession, kept alive and reused by every call.
/// - Important: Every method may be called from many threads at once.
final class UpstreamClient: @unchecked Sendable {
    // @unchecked: `session` and `delegate` are themselves thread-safe; the rest is immutable.
    private let session: URLSession
    private let delegate: SessionDelegate
    /// Longest silence allowed while connecting or receiving.
    let idleTimeout: Double

    /// Makes a client; `authorization` (a complete header value) is sent only to `origin`.
    init(idleTimeout: Double, authorization: String?, origin: Origin) {
        self.idleTimeout = idleTimeout
        let configuration = URLSessionConfiguration.ephemeral
        // Our own deadlines (idle and whole-transfer) govern; URLSession's are only a backstop.
        configuration.timeoutIntervalForRequest = 7 * 24 * 3600
        configuration.timeoutIntervalForResource = 7 * 24 * 3600
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.httpMaximumConnectionsPerHost = 16
        delegate = SessionDelegate(authorization: authorization, origin: origin)
        let queue = OperationQueue()
        // Serial: events of one task must arrive in order; the callbacks only enqueue, so one thread suffices.
        queue.maxConcurrentOperationCount = 1
        queue.name = "ProxyFetcher.URLSession"
        session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
    }

    deinit {
        // The session holds its delegate strongly until invalidated.
        session.invalidateAndCancel()
    }

    /// Starts a GET of `url`; drive it with the returned transfer and `cancel()` it when done with it.
    func start(_ url: URL) -> Transfer {
        var request = URLRequest(url: url)
        request.httpMethod = "GET"
        if let authorization = delegate.authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let task = session.dataTask(with: request)
        let transfer = Transfer(task: task, idleTimeout: idleTimeout, url: url)
        delegate.register(transfer, for: task)
        task.resume()
        return transfer
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

/// One GET in flight. The delegate queue fills it; the calling thread drains it.
/// Invariant: once `finished`, nothing more is appended.
final class Transfer: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    private let condition = NSCondition()
    private var head: HTTPURLResponse?
    private var chunks: [Data] = []
    private var finished = false
    private var failure: (any Error)?
    private var refusal: String?
    private var lastEvent = Date()
    /// Redirects followed so far; touched only on the delegate queue.
    var redirects = 0
    let task: URLSessionDataTask
    let idleTimeout: Double
    /// The requested URL (never carries userinfo).
    let url: URL

    init(task: URLSessionDataTask, idleTimeout: Double, url: URL) {
        self.task = task
        self.idleTimeout = idleTimeout
        self.url = url
    }

    // MARK: delegate side

    func received(_ response: HTTPURLResponse) { update { head = response } }
    func received(_ data: Data) { update { if !finished { chunks.append(data) } } }
    func refuseRedirect(_ why: String) { update { refusal = why } }
    func completed(_ error: (any Error)?) {
        update {
            finished = true
            failure = error
        }
    }

    private func update(_ change: () -> Void) {
        condition.lock()
        change()
        lastEvent = Date()
        condition.broadcast()
        condition.unlock()
    }

    // MARK: caller side

    /// Waits for the status and headers.
    func response(deadline: Date, deadlineName: String) throws(TransferError) -> ResponseHead {
        condition.lock()
        defer { condition.unlock() }
        while head == nil {
            if finished { throw describe(failure) }
            try wait(deadline: deadline, deadlineName: deadlineName)
        }
        let response = head!
        if let refusal, response.statusCode >= 300, response.statusCode < 400 { throw .failed(refusal) }
        // A decoded (e.g. gzip) body no longer has the announced length.
        let encoding = response.value(forHTTPHeaderField: "Content-Encoding")?.lowercased() ?? "identity"
        let length = response.expectedContentLength
        return ResponseHead(status: response.statusCode,
                            contentLength: encoding == "identity" && length >= 0 ? length : nil,
                            contentType: response.value(forHTTPHeaderField: "Content-Type"),
                            url: redacted(response.url ?? url))
    }

    /// The next piece of the body, or nil at its successful end.
    func nextChunk(deadline: Date, deadlineName: String) throws(TransferError) -> Data? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty {
            if finished {
                if let failure { throw describe(failure) }
                return nil
            }
            try wait(deadline: deadline, deadlineName: deadlineName)
        }
        return chunks.removeFirst()
    }

    /// Stops the download; later events are ignored.
    func cancel() {
        condition.lock()
        let wasFinished = finished
        finished = true
        chunks.removeAll()
        condition.unlock()
        if !wasFinished { task.cancel() }
    }

    /// Waits for the next event. Call with the lock held.
    private func wait(deadline: Date, deadlineName: String) throws(TransferError) {
        let idleDeadline = lastEvent.addingTimeInterval(idleTimeout)
        let until = min(idleDeadline, deadline)
        if condition.wait(until: until) { return }
        // Woken by the clock: a late event may still have slipped in.
        if Date() < until { return }
        if !chunks.isEmpty || finished { return }
        if until == deadline && deadline < idleDeadline { throw .timedOut("did not finish within \(deadlineName)") }
        throw .timedOut(head == nil ? "did not answer within \(seconds(idleTimeout))" : "sent nothing for \(seconds(idleTimeout))")
    }

    private func describe(_ error: (any Error)?) -> TransferError {
        guard let error else { return .failed("closed the connection without an answer") }
        if let refusal { return .failed(refusal) }
        if let urlError = error as? URLError {
            switch urlError.code {
            case .timedOut: return .timedOut("timed out")
            case .cannotConnectToHost: return .failed("refused the connection")
            case .cannotFindHost, .dnsLookupFailed: return .failed("host not found (DNS)")
            case .networkConnectionLost: return .failed("closed the connection early")
            case .httpTooManyRedirects: return .failed("redirected too many times")
            case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
                 .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot, .clientCertificateRejected:
                return .failed("failed the TLS handshake (URLError \(urlError.code.rawValue))")
            case .cancelled: return .failed("transfer cancelled")
            default: return .failed("failed (URLError \(urlError.code.rawValue))")
            }
        }
        return .failed("failed (\(type(of: error)))")
    }
}

/// Routes URLSession events to their transfers.
final class SessionDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // @unchecked: `transfers` is guarded by `lock`; the rest is immutable.
    private let lock = NSLock()
    private var transfers: [Int: Transfer] = [:]
    /// Go's client stops after 10 redirects too.
    private static let maximumRedirects = 10
    let authorization: String?
    let origin: Origin

    init(authorization: String?, origin: Origin) {
        self.authorization = authorization
        self.origin = origin
    }

    func register(_ transfer: Transfer, for task: URLSessionTask) {
        lock.withLock { transfers[task.taskIdentifier] = transfer }
    }

    private func transfer(_ task: URLSessionTask) -> Transfer? {
        lock.withLock { transfers[task.taskIdentifier] }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        if let response = response as? HTTPURLResponse {
            transfer(dataTask)?.received(response)
            completionHandler(.allow)
        } else {
            transfer(dataTask)?.refuseRedirect("answered with something that is not HTTP")
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        transfer(dataTask)?.received(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let done = lock.withLock { transfers.removeValue(forKey: task.taskIdentifier) }
        done?.completed(error)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        guard let transfer = transfer(task) else { return completionHandler(nil) }
        let from = response.url ?? transfer.url
        let target = request.url.map(redacted) ?? "?"
        // Like the go command: never downgrade from https to http.
        if from.scheme?.lowercased() == "https", request.url?.scheme?.lowercased() != "https" {
            transfer.refuseRedirect("redirected from secure URL \(redacted(from)) to insecure URL \(target)")
            return completionHandler(nil)
        }
        transfer.redirects += 1
        if transfer.redirects > Self.maximumRedirects {
            transfer.refuseRedirect("stopped after \(Self.maximumRedirects) redirects")
            return completionHandler(nil)
        }
        var next = request
        // Credentials are for the configured upstream only, never for wherever it points us.
        if Origin(request.url) != origin {
            next.setValue(nil, forHTTPHeaderField: "Authorization")
        } else if let authorization {
            next.setValue(authorization, forHTTPHeaderField: "Authorization")
        }
        completionHandler(next)
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
