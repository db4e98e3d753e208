// One signed S3 request at a time, with deadlines, retries and the S3-answer → ath_status mapping.
// Messages name the operation and the key, never a URL query, a header or a credential.
import Basics
import FoundationEssentials
import Glibc
import HTTPClient
import PluginKit
import S3Core
import Digests

/// What one call to S3 sends.
struct S3Call {
    var method: HTTPMethod
    /// nil: the bucket itself.
    var key: String?
    var query: [(name: String, value: String)] = []
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    /// Whether sending it twice has the effect of sending it once (so it may be retried).
    var idempotent: Bool
    /// Most response-body bytes accepted.
    var maxBody: Int64 = 1 << 20

    /// "PUT example.com/@v/v1.0.0.zip", for messages.
    var what: String { "\(method.rawValue) \(key ?? "bucket")" }
}

/// Sends signed requests to one bucket.
final class S3Connection: @unchecked Sendable {
    // @unchecked: every stored property is immutable; HTTPClient is thread-safe.
    let endpoint: S3Endpoint
    let signer: SigV4Signer
    private let client: HTTPClient
    /// Deadline of one call, retries included.
    let timeout: Duration
    /// Retries after the first attempt, for idempotent calls.
    let retries: Int

    init(endpoint: S3Endpoint, signer: SigV4Signer, timeout: Duration, retries: Int) {
        self.endpoint = endpoint
        self.signer = signer
        self.timeout = timeout
        self.retries = retries
        client = HTTPClient(configuration: HTTPClient.Configuration(maxIdleHandles: 16, userAgent: "athens-S3Storage"))
    }

    /// Sends `call` (retrying idempotent calls on 5xx and transport failures) and returns the final answer,
    /// whatever its status. Everything, retries and backoff included, ends by the earlier of `timeout` from now and
    /// `context`'s deadline; a cancelled context stops the transfer (curl polls it) and any further retry.
    /// Throws `.timeout` / `.cancelled` / `.unavailable` when no answer came.
    func send(_ call: S3Call, in context: CallContext) throws(PluginFailure) -> HTTPResponse {
        let deadline = Self.deadline(timeout, context)
        var attempt = 0
        while true {
            try context.check("S3Storage: \(call.what)")
            let outcome = once(call, deadline: deadline, context: context)
            let retryAfter: Duration?
            switch outcome {
            case .success(let response):
                guard call.idempotent, [500, 502, 503, 504].contains(response.status), attempt < retries else { return response }
                // 503 SlowDown asks for less traffic: wait longer than for other 5xx.
                retryAfter = backoff(attempt: attempt, slowDown: response.status == 503, hint: response.headers["Retry-After"])
            case .failure(let error):
                guard call.idempotent, attempt < retries, Self.isTransient(error), !context.isCancelled else {
                    throw Self.failure(call, error, context)
                }
                retryAfter = backoff(attempt: attempt, slowDown: false, hint: nil)
            }
            attempt += 1
            guard let pause = retryAfter, ContinuousClock.now + pause < deadline else {
                if case .failure(let error) = outcome { throw Self.failure(call, error, context) }
                if case .success(let response) = outcome { return response }
                throw .internal("\(call.what): unreachable")
            }
            try Self.sleep(pause, call, context)
        }
    }

    /// The earlier of `timeout` from now and the context's deadline, on the clock HTTPClient uses.
    static func deadline(_ timeout: Duration, _ context: CallContext) -> ContinuousClock.Instant {
        let own = ContinuousClock.now + timeout
        guard let left = context.remainingNanoseconds else { return own }
        return min(own, ContinuousClock.now + .nanoseconds(Int64(min(left, UInt64(Int64.max)))))
    }

    /// Backoff in slices, so a cancellation is seen within 100 ms rather than after the whole pause.
    private static func sleep(_ pause: Duration, _ call: S3Call, _ context: CallContext) throws(PluginFailure) {
        let end = ContinuousClock.now + pause
        while true {
            let left = end - ContinuousClock.now
            if left <= .zero { return }
            PosixThread.sleep(seconds: min(0.1, Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18))
            try context.check("S3Storage: \(call.what)")
        }
    }

    /// Exponential backoff with full jitter: 50 ms × 2^attempt (400 ms × 2^attempt after SlowDown), capped at
    /// 5 s, or the server's Retry-After when it gives one (capped at 5 s too).
    private func backoff(attempt: Int, slowDown: Bool, hint: String?) -> Duration {
        if let hint, let seconds = Int(hint.trimmingWhitespace), seconds >= 0 {
            return .seconds(min(seconds, 5))
        }
        let base = (slowDown ? 400.0 : 50.0) * Double(1 << min(attempt, 6))
        return .milliseconds(Int(Double.random(in: 0.5...1.0) * min(base, 5000)))
    }

    private func once(_ call: S3Call, deadline: ContinuousClock.Instant, context: CallContext) -> Result<HTTPResponse, HTTPClientError> {
        let path = endpoint.encodedPath(key: call.key)
        let payloadHash = SHA256.hexHash(call.body)
        var headers: [(name: String, value: String)] = [("Host", endpoint.host), ("X-Amz-Content-SHA256", payloadHash)] + call.headers
        headers += signer.sign(method: call.method.rawValue, encodedPath: path, query: call.query, headers: headers,
                               payloadHash: payloadHash, date: .now())
        // Host goes from the URL; curl sets it.
        let sent = HTTPHeaders(headers.filter { $0.name != "Host" })
        let request = HTTPRequest(call.method, url: endpoint.url(encodedPath: path, query: call.query), headers: sent,
                                  body: call.body.isEmpty ? .empty : .bytes(call.body))
        let limits = HTTPLimits(maxBodyBytes: call.maxBody, deadline: deadline, idleTimeout: timeout,
                                connectTimeout: min(timeout, .seconds(10)), isCancelled: { context.isCancelled })
        do {
            return .success(try client.fetch(request, limits: limits))
        } catch {
            return .failure(error)
        }
    }

    private static func isTransient(_ error: HTTPClientError) -> Bool {
        switch error {
        case .timedOut, .transport: true
        default: false
        }
    }

    /// A transfer that ended with the context's deadline is a TIMEOUT, one the host cancelled is CANCELLED (a
    /// 1.1 host reports a passed deadline as cancelled too, so the deadline is looked at first).
    private static func failure(_ call: S3Call, _ error: HTTPClientError, _ context: CallContext) -> PluginFailure {
        switch error {
        case .timedOut: return .timeout("S3Storage: \(call.what): \(error)")
        case .cancelled where context.remainingNanoseconds == 0: return .timeout("S3Storage: \(call.what): past the call's deadline")
        case .cancelled: return .cancelled("S3Storage: \(call.what): cancelled by the host")
        default: return .unavailable("S3Storage: \(call.what): \(error)")
        }
    }

    /// The failure an unexpected answer stands for: 404 → NOT_FOUND, 5xx → UNAVAILABLE, others INTERNAL; the
    /// message carries S3's error code (never its Message, which may echo request details).
    static func failure(_ call: S3Call, _ response: HTTPResponse) -> PluginFailure {
        let code = (try? S3ErrorDocument(xml: response.body))?.code
        let text = "S3Storage: \(call.what): HTTP \(response.status)" + (code.map { " \($0)" } ?? "")
        switch response.status {
        case 404: return .notFound(text)
        case 403: return .unavailable(text + " (access denied: check the credentials and the bucket policy)")
        case 500...599: return .unavailable(text)
        default: return .internal(text)
        }
    }
}
