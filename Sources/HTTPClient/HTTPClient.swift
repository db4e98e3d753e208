// HTTPClient: blocking HTTP/1.1 calls over the system libcurl (OpenSSL for TLS), with hard limits checked
// as bytes arrive. Each call runs curl_easy_perform on the caller's thread, on an easy handle taken from the
// client's pool; a handle keeps its idle connections when it goes back, so calls to the same server reuse
// them. DNS answers and TLS sessions are shared by all handles of one client (a curl share, locked).
import CCurl
import Glibc
import Synchronization

/// A thread-safe HTTP client; one per plugin instance or subsystem, shared by every thread.
///
/// Why curl and not URLSession: URLSession buffers what arrives on its own queue and reports it later,
/// so a body limit or an idle timeout is decided after memory is spent and the connection cannot be
/// dropped at the byte that crosses a limit. Here every byte passes through a callback on the caller's
/// thread that may stop the transfer at once (curl then closes that connection).
///
/// Compression: the client never asks for it (no Accept-Encoding) and refuses a compressed body with
/// `.encodedBody`, so no body ever inflates past the bytes counted against `maxBodyBytes`.
public final class HTTPClient: @unchecked Sendable {
    // @unchecked: `idle` is a Mutex; `share` is only used through curl's own locking (`ShareLocks`).

    /// Tunables of one client.
    public struct Configuration: Sendable {
        /// Easy handles (each with its open connections) kept between calls; more concurrent calls are
        /// served by extra handles that are closed afterwards.
        public var maxIdleHandles: Int
        /// Idle connections one handle keeps open.
        public var connectionsPerHandle: Int
        /// User-Agent header; none when nil.
        public var userAgent: String?
        /// A PEM bundle of trusted CAs instead of the system's (tests with their own CA).
        public var caFile: String?

        public init(maxIdleHandles: Int = 8, connectionsPerHandle: Int = 2, userAgent: String? = nil, caFile: String? = nil) {
            self.maxIdleHandles = maxIdleHandles
            self.connectionsPerHandle = connectionsPerHandle
            self.userAgent = userAgent
            self.caFile = caFile
        }
    }

    /// Thrown by a head or body callback to end the transfer early without an error: `perform` returns
    /// the head normally and the connection is closed.
    public struct Stop: Error {
        public init() {}
    }

    public let configuration: Configuration
    private let idle = Mutex<[EasyHandle]>([])
    private let share: UnsafeMutableRawPointer
    private let locks: ShareLocks

    /// curl_global_init is not thread-safe; a static let runs it exactly once (never undone: other users
    /// of libcurl in the process, Foundation's included, count on it staying).
    private static let globalInit: CURLcode = ccurl_global_init()

    public init(configuration: Configuration = Configuration()) {
        _ = Self.globalInit
        self.configuration = configuration
        share = curl_share_init()!
        locks = ShareLocks()
        _ = ccurl_share_setopt_lock(share, shareLock)
        _ = ccurl_share_setopt_unlock(share, shareUnlock)
        _ = ccurl_share_setopt_pointer(share, CURLSHOPT_USERDATA, Unmanaged.passUnretained(locks).toOpaque())
        _ = ccurl_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_DNS.rawValue))
        _ = ccurl_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue))
    }

    deinit {
        // No call is running (each holds `self`), so every handle is idle; they go before the share.
        for handle in idle.withLock({ $0 }) { curl_easy_cleanup(handle.pointer) }
        curl_share_cleanup(share)
    }

    /// Sends `request` and streams the final response's body to `onBody`, in order, as it arrives.
    /// `onHead` sees the status and headers before any body byte. Either may throw `Stop` to end early.
    /// Returns the head; throws only `HTTPClientError` (a callback's own error comes back as `.consumer`).
    @discardableResult
    public func perform(_ request: HTTPRequest, limits: HTTPLimits,
                        onHead: (HTTPResponseHead) throws -> Void = { _ in },
                        onBody: (UnsafeRawBufferPointer) throws -> Void) throws(HTTPClientError) -> HTTPResponseHead {
        var result: Result<HTTPResponseHead, HTTPClientError> = .failure(.cancelled)
        withoutActuallyEscaping(onHead) { onHead in
            withoutActuallyEscaping(onBody) { onBody in
                result = followingRedirects(request, limits: limits, onHead: onHead, onBody: onBody)
            }
        }
        return try result.get()
    }

    /// Sends `request` and collects the body whole (at most `limits.maxBodyBytes`).
    public func fetch(_ request: HTTPRequest, limits: HTTPLimits) throws(HTTPClientError) -> HTTPResponse {
        var body: [UInt8] = []
        // One allocation of the announced size (at most the limit) instead of a doubling series: with 1 MiB ranged
        // GETs (S3Storage's zip stream) the doubling churn was most of the process's heap.
        let head = try perform(request, limits: limits, onHead: { head in
            if let length = head.contentLength, length <= limits.maxBodyBytes { body.reserveCapacity(Int(length)) }
        }) { chunk in body.append(contentsOf: chunk) }
        return HTTPResponse(head: head, body: body)
    }

    // MARK: - Redirects

    private func followingRedirects(_ original: HTTPRequest, limits: HTTPLimits,
                                    onHead: @escaping (HTTPResponseHead) throws -> Void,
                                    onBody: @escaping (UnsafeRawBufferPointer) throws -> Void) -> Result<HTTPResponseHead, HTTPClientError> {
        let maxRedirects: Int
        switch original.redirects {
        case .none: maxRedirects = 0
        case .follow(let max): maxRedirects = max
        }
        var request = original
        guard let origin = RequestURL(request.url) else { return .failure(.invalidRequest("not an absolute http or https URL")) }
        guard !origin.hasUserinfo else { return .failure(.invalidRequest("the URL carries user:password; send credentials in a header")) }
        var current = origin
        var hops = 0
        while true {
            let transfer = Transfer(method: request.method, url: request.url, body: request.body, limits: limits,
                                    followsRedirects: maxRedirects > 0,
                                    onHead: onHead, onBody: onBody)
            if let failure = attempt(request, transfer) { return .failure(failure) }
            guard case .redirect(let status, let location)? = transfer.stop else {
                guard let head = transfer.head else { return .failure(.transport("closed the connection without an answer")) }
                return .success(head)
            }
            hops += 1
            guard hops <= maxRedirects else { return .failure(.redirectRefused("more than \(maxRedirects) redirects")) }
            guard let next = current.resolve(location) else { return .failure(.redirectRefused("Location is not an http or https URL")) }
            guard !next.hasUserinfo else { return .failure(.redirectRefused("Location carries user:password")) }
            if current.scheme == "https" && next.scheme != "https" {
                return .failure(.redirectRefused("from https to \(next.scheme) (\(next.host))"))
            }
            // As Go's client does: 301/302/303 turn anything but GET and HEAD into a GET without a body;
            // 307/308 resend the same request, which a one-shot stream cannot.
            if [301, 302, 303].contains(status) {
                if request.method != .get && request.method != .head {
                    request.method = .get
                    request.body = .empty
                    request.headers.remove("Content-Type")
                }
            } else if case .stream = request.body {
                return .failure(.redirectRefused("\(status) would resend a streamed request body"))
            }
            if !next.sameOrigin(origin) {
                for name in ["Authorization", "Cookie", "Proxy-Authorization"] { request.headers.remove(name) }
            }
            request.url = next.text
            current = next
        }
    }

    // MARK: - One attempt

    /// Runs one request on a pooled handle; the outcome is in `transfer` unless an error is returned.
    private func attempt(_ request: HTTPRequest, _ transfer: Transfer) -> HTTPClientError? {
        let remaining = transfer.limits.deadline - .now
        guard remaining > .zero else { return .timedOut(.deadline) }
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            guard Self.isToken(name), !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                return .invalidRequest("a header name or value is not valid HTTP")
            }
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // Remove what curl would add on its own (an empty value deletes a curl default).
        if request.headers["Expect"] == nil { headerList = curl_slist_append(headerList, "Expect:") }
        if request.method == .post, request.headers["Content-Type"] == nil { headerList = curl_slist_append(headerList, "Content-Type:") }

        let handle = takeHandle()
        var errorBuffer = [CChar](repeating: 0, count: Int(ccurl_error_size()) + 1)
        let box = Unmanaged.passUnretained(transfer).toOpaque()
        var code = CURLE_OK
        errorBuffer.withUnsafeMutableBufferPointer { errors in
            set(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errors.baseAddress!))
            set(handle, CURLOPT_URL, request.url)
            set(handle, CURLOPT_NOSIGNAL, 1)
            set(handle, CURLOPT_PROTOCOLS_STR, "http,https")
            set(handle, CURLOPT_FOLLOWLOCATION, 0)
            set(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
            set(handle, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
            set(handle, CURLOPT_MAXCONNECTS, max(1, configuration.connectionsPerHandle))
            _ = ccurl_easy_setopt_share(handle, share)
            if let agent = configuration.userAgent { set(handle, CURLOPT_USERAGENT, agent) }
            if let caFile = configuration.caFile { set(handle, CURLOPT_CAINFO, caFile) }
            set(handle, CURLOPT_HTTPHEADER, headerList)
            // Limits: curl's own clocks are the backstop; the callbacks decide first and say which.
            set(handle, CURLOPT_TIMEOUT_MS, max(1, Int(remaining.milliseconds)))
            set(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(transfer.limits.connectTimeout.milliseconds)))
            // curl's speed check averages, so a slow but steady trickle could trip it inside the idle
            // timeout: it gets twice the time, and the progress callback decides the exact idle limit.
            set(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
            set(handle, CURLOPT_LOW_SPEED_TIME, 1 + 2 * Int((transfer.limits.idleTimeout.milliseconds + 999) / 1000))
            _ = ccurl_easy_setopt_write(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback)
            set(handle, CURLOPT_WRITEDATA, box)
            _ = ccurl_easy_setopt_write(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
            set(handle, CURLOPT_HEADERDATA, box)
            _ = ccurl_easy_setopt_xferinfo(handle, curlProgressCallback)
            set(handle, CURLOPT_XFERINFODATA, box)
            set(handle, CURLOPT_NOPROGRESS, 0)
            _ = ccurl_easy_setopt_read(handle, curlReadCallback)
            set(handle, CURLOPT_READDATA, box)
            _ = ccurl_easy_setopt_seek(handle, curlSeekCallback)
            set(handle, CURLOPT_SEEKDATA, box)
            let length = curl_off_t(request.body.length)
            switch request.method {
            case .get:
                set(handle, CURLOPT_HTTPGET, 1)
            case .head:
                set(handle, CURLOPT_NOBODY, 1)
            case .put:
                set(handle, CURLOPT_UPLOAD, 1)
                _ = ccurl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, length)
            case .post:
                set(handle, CURLOPT_POST, 1)
                _ = ccurl_easy_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, length)
            case .delete:
                set(handle, CURLOPT_CUSTOMREQUEST, "DELETE")
                if request.body.length > 0 {
                    set(handle, CURLOPT_UPLOAD, 1)
                    _ = ccurl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, length)
                }
            }
            code = curl_easy_perform(handle)
            // Nothing may point into this frame after it ends.
            set(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer?.none)
        }
        let failure = code == CURLE_OK ? nil : explain(code, transfer: transfer, handle: handle, errors: errorBuffer)
        // A handle whose transfer was aborted has already closed that connection; the rest stay open.
        giveBack(handle)
        return failure
    }

    /// The error for a curl result: the callbacks' own reason first, then curl's code.
    private func explain(_ code: CURLcode, transfer: Transfer, handle: UnsafeMutableRawPointer, errors: [CChar]) -> HTTPClientError? {
        switch transfer.stop {
        case .failed(let error)?: return error
        case .quietly?, .redirect?: return nil
        case nil: break
        }
        let detail = Self.safeDetail(errors)
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            if ContinuousClock.now >= transfer.limits.deadline - .milliseconds(50) { return .timedOut(.deadline) }
            var connected: curl_off_t = 0
            _ = ccurl_easy_getinfo_off(handle, CURLINFO_CONNECT_TIME_T, &connected)
            return connected == 0 ? .timedOut(.connect(transfer.limits.connectTimeout)) : .timedOut(.idle(transfer.limits.idleTimeout))
        case CURLE_COULDNT_RESOLVE_HOST: return .transport("host not found (DNS)")
        case CURLE_COULDNT_CONNECT: return .transport("could not connect" + detail)
        case CURLE_GOT_NOTHING: return .transport("closed the connection without an answer")
        case CURLE_PARTIAL_FILE: return .transport("closed the connection before the end of the body")
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR: return .transport("connection lost" + detail)
        case CURLE_WEIRD_SERVER_REPLY:
            return .transport("answered with something that is not HTTP/1.1" + detail)
        case CURLE_URL_MALFORMAT: return .invalidRequest("malformed URL")
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
             CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS:
            return .transport("TLS failed" + detail)
        case CURLE_SEND_FAIL_REWIND: return .transport("connection lost while uploading a body that cannot be resent")
        default:
            return .transport(String(cString: curl_easy_strerror(code)) + detail)
        }
    }

    /// curl's error-buffer text as ": text", unless it might carry a URL (and so a query or credentials).
    private static func safeDetail(_ errors: [CChar]) -> String {
        let text = errors.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmed
        guard !text.isEmpty, !text.contains("://"), !text.contains("@"), !text.contains("?") else { return "" }
        return ": " + String(text.prefix(200))
    }

    private static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    // MARK: - Handle pool

    private func takeHandle() -> UnsafeMutableRawPointer {
        // LIFO: the most recently used handle most likely holds a live connection to the same server.
        if let handle = idle.withLock({ $0.popLast() }) {
            curl_easy_reset(handle.pointer)  // Options go; connections, DNS and TLS sessions stay.
            return handle.pointer
        }
        return curl_easy_init()!
    }

    private func giveBack(_ handle: UnsafeMutableRawPointer) {
        // Drop references to this call's state before the handle idles.
        curl_easy_reset(handle)
        let kept = idle.withLock { handles -> Bool in
            guard handles.count < configuration.maxIdleHandles else { return false }
            handles.append(EasyHandle(pointer: handle))
            return true
        }
        if !kept { curl_easy_cleanup(handle) }
    }

    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: Int) {
        _ = ccurl_easy_setopt_long(handle, option, value)
    }
    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: String) {
        _ = ccurl_easy_setopt_string(handle, option, value)  // curl copies strings.
    }
    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: UnsafeMutableRawPointer?) {
        _ = ccurl_easy_setopt_pointer(handle, option, value)
    }
    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: UnsafeMutablePointer<curl_slist>?) {
        _ = ccurl_easy_setopt_slist(handle, option, value)
    }
}

/// An idle curl easy handle; only the thread that takes it from the pool touches it.
private struct EasyHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
}

// MARK: - Share locking

/// One mutex per kind of shared data, as curl's share interface requires when threads share it.
final class ShareLocks {
    let mutexes: UnsafeMutablePointer<pthread_mutex_t>
    static let count = Int(CURL_LOCK_DATA_LAST.rawValue)

    init() {
        mutexes = .allocate(capacity: Self.count)
        for index in 0..<Self.count { pthread_mutex_init(mutexes + index, nil) }
    }

    deinit {
        for index in 0..<Self.count { pthread_mutex_destroy(mutexes + index) }
        mutexes.deallocate()
    }
}

private let shareLock: curl_lock_function = { _, data, _, userdata in
    let locks = Unmanaged<ShareLocks>.fromOpaque(userdata!).takeUnretainedValue()
    pthread_mutex_lock(locks.mutexes + Int(data.rawValue))
}

private let shareUnlock: curl_unlock_function = { _, data, userdata in
    let locks = Unmanaged<ShareLocks>.fromOpaque(userdata!).takeUnretainedValue()
    pthread_mutex_unlock(locks.mutexes + Int(data.rawValue))
}

// MARK: - URLs

/// A parsed absolute URL (curl's parser, so the client and curl agree on what it means).
struct RequestURL {
    let text: String
    let scheme: String
    let host: String
    let port: String
    let hasUserinfo: Bool

    init?(_ text: String) {
        guard let url = curl_url() else { return nil }
        defer { curl_url_cleanup(url) }
        guard curl_url_set(url, CURLUPART_URL, text, 0) == CURLUE_OK else { return nil }
        self.init(parsed: url)
    }

    private init?(parsed url: OpaquePointer) {
        func part(_ which: CURLUPart, _ flags: UInt32 = 0) -> String? {
            var value: UnsafeMutablePointer<CChar>?
            guard curl_url_get(url, which, &value, flags) == CURLUE_OK, let value else { return nil }
            defer { curl_free(value) }
            return String(cString: value)
        }
        guard let text = part(CURLUPART_URL), let scheme = part(CURLUPART_SCHEME)?.lowercased(),
              scheme == "http" || scheme == "https", let host = part(CURLUPART_HOST)?.lowercased(), !host.isEmpty else { return nil }
        self.text = text
        self.scheme = scheme
        self.host = host
        port = part(CURLUPART_PORT, UInt32(CURLU_DEFAULT_PORT)) ?? ""
        hasUserinfo = part(CURLUPART_USER) != nil || part(CURLUPART_PASSWORD) != nil
    }

    /// `location` (absolute or relative) resolved against this URL.
    func resolve(_ location: String) -> RequestURL? {
        guard let url = curl_url() else { return nil }
        defer { curl_url_cleanup(url) }
        guard curl_url_set(url, CURLUPART_URL, text, 0) == CURLUE_OK,
              curl_url_set(url, CURLUPART_URL, location, 0) == CURLUE_OK else { return nil }
        return RequestURL(parsed: url)
    }

    func sameOrigin(_ other: RequestURL) -> Bool {
        scheme == other.scheme && host == other.host && port == other.port
    }
}
