import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import GoModule
import HTTPClient

/// Proxies checksum databases under `/sumdb/<name>/…` (ref/mod#checksum-database).
///
/// `/supported` is answered here (forwarding it would make clients bypass us). `/lookup/<module>@<version>`,
/// `/tile/…` and `/latest` are forwarded to the database's URL, and nothing else: the path is decoded and
/// checked against those shapes first, so no traversal (`..`, `%2e%2e`, double encoding) ever goes out.
/// Lookups of private, excluded or `noSumPatterns` modules are refused with 403, so private module names
/// never leave the building.
///
/// Lookups run on this proxy's own small pool with its own HTTP client and timeouts: a database that
/// stalls fills that pool (further lookups get 503 at once) and never the download pool.
package final class SumDBProxy: Sendable {
    /// Configured databases: name → base URL without user:password (e.g. "sum.golang.org" → "https://sum.golang.org").
    package let databases: [String: (base: String, authorization: String?)]
    package let policy: DownloadPolicy
    private let pool: WorkerPool
    private let client = HTTPClient(configuration: .init(maxIdleHandles: 4, connectionsPerHandle: 2))
    /// Whole-lookup limit, and the longest silence, in seconds.
    package let timeout: Double
    package let idleTimeout: Double
    /// Largest upstream answer relayed (tiles are at most 8 KiB of hashes; data tiles a few hundred KiB).
    package static let maxBody: Int64 = 8 << 20

    /// `workers` lookups run at once and `queue` more wait; beyond that a lookup is answered 503.
    package init(databases: [(name: String, url: String)], policy: DownloadPolicy, workers: Int = 4, queue: Int = 16,
         timeout: Double = 30, idleTimeout: Double = 10) {
        var map: [String: (base: String, authorization: String?)] = [:]
        for db in databases { map[db.name] = Self.splitCredentials(db.url) }
        self.databases = map
        self.policy = policy
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        pool = WorkerPool(name: "sumdb", threads: workers, capacity: queue)
    }

    /// Stops taking lookups once a reload has replaced this proxy; running ones finish.
    package func retire() { pool.retire() }

    /// Lookups waiting plus lookups running.
    package var load: (waiting: Int, running: Int) { pool.load }

    /// Answers a path starting with "/sumdb/" (still percent-encoded).
    package func serve(path: Substring, responder: Responder) {
        handle(path) { responder.respond($0) }
    }

    /// Answers `path` through `respond`, at once or later from the lookup pool.
    package func handle(_ path: Substring, respond: @escaping @Sendable (Response) -> Void) {
        let rest = path.dropFirst("/sumdb/".count)
        guard let slash = rest.firstIndex(of: "/") else { return respond(.text(404, "not found")) }
        let name = String(rest[..<slash])
        guard let database = databases[name] else {
            return respond(.text(404, "not found: checksum database \(name.prefix(100)) is not proxied here"))
        }
        let tail: String
        switch Self.forwardable(rest[slash...], policy: policy) {
        case .refuse(let refusal): return respond(refusal)
        case .forward(let checked): tail = checked
        }
        if tail == "/supported" {
            return respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")]))
        }
        let accepted = pool.submit { respond(self.forward(base: database.base, tail: tail, authorization: database.authorization)) }
        if !accepted {
            var response = Response.text(503, "service unavailable: too many checksum lookups in progress, retry shortly")
            response.headers.append(("Retry-After", "1"))
            respond(response)
        }
    }

    // MARK: - Path checks

    /// What a path check decided.
    package enum PathCheck {
        case forward(String)
        case refuse(Response)
    }

    /// The decoded tail to forward ("/latest", "/lookup/m@v", "/tile/…", or "/supported"), or the refusal.
    /// Decoding first means `%2e%2e` is seen as the `..` it is; the checked text needs no encoding.
    package static func forwardable(_ encoded: Substring, policy: DownloadPolicy) -> PathCheck {
        guard let tail = DownloadRequest.percentDecode(encoded) else {
            return .refuse(.text(400, "bad request: malformed percent-encoding in path"))
        }
        let notFound = Response.text(404, "not found")
        // Only the database's own alphabet (no '%': an encoded '%' is double encoding) and no empty,
        // "." or ".." segments.
        guard tail.utf8.allSatisfy({ allowed[Int($0)] }) else { return .refuse(notFound) }
        let segments = tail.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return .refuse(notFound) }
        guard let kind = segments.first else { return .refuse(notFound) }
        switch kind {
        case "supported", "latest":
            return segments.count == 1 ? .forward(tail) : .refuse(notFound)
        case "tile":
            return isTilePath(Array(segments.dropFirst())) ? .forward(tail) : .refuse(notFound)
        case "lookup":
            let target = tail.dropFirst("/lookup/".count)
            guard let at = target.lastIndex(of: "@"), !target[target.index(after: at)...].contains("/"),
                  let module = try? ModulePath.unescapePath(String(target[..<at])),
                  (try? ModulePath.unescapeVersion(String(target[target.index(after: at)...]))) != nil else {
                return .refuse(.text(400, "bad request: malformed lookup"))
            }
            if policy.refusesSumLookup(module) {
                return .refuse(.text(403, "forbidden: \(module) is private here; set GONOSUMDB or GOPRIVATE for it"))
            }
            return .forward(tail)
        default:
            return .refuse(notFound)
        }
    }

    /// tlog's tile paths after "tile/": H/L/K or H/data/K, K as "xNNN/…/NNN", optionally ".p/W".
    private static func isTilePath(_ parts: [Substring]) -> Bool {
        func number(_ s: Substring, digits: ClosedRange<Int>) -> Int? {
            guard digits.contains(s.utf8.count), s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(s)
        }
        guard parts.count >= 3, let height = number(parts[0], digits: 1...2), (1...30).contains(height),
              parts[1] == "data" || number(parts[1], digits: 1...2) != nil else { return false }
        var index = Array(parts.dropFirst(2))
        if index.count >= 2, index[index.count - 2].hasSuffix(".p") {
            guard let width = number(index[index.count - 1], digits: 1...10), width >= 1, width < 1 << height else { return false }
            index.removeLast()
            index[index.count - 1] = index[index.count - 1].dropLast(2)
        }
        for (position, element) in index.enumerated() {
            let digits = position == index.count - 1 ? element : (element.first == "x" ? element.dropFirst() : "")
            guard number(digits, digits: 3...3) != nil else { return false }
        }
        return true
    }

    private static let allowed: [Bool] = (0..<256).map { c in
        switch UInt8(c) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "@"),
             UInt8(ascii: "+"), UInt8(ascii: "/"): true
        default: false
        }
    }

    // MARK: - Forwarding

    /// Fetches `base + tail` (blocking; on a lookup-pool thread) and relays 200/404/410; anything else is 502,
    /// a timeout 504. The body is bounded as it arrives.
    private func forward(base: String, tail: String, authorization: String?) -> Response {
        var headers = HTTPHeaders()
        if let authorization { headers.append("Authorization", authorization) }
        let shown = Self.redacted(base) + tail
        let limits = HTTPLimits(maxBodyBytes: Self.maxBody, timeout: .seconds(timeout), idleTimeout: .seconds(idleTimeout),
                                connectTimeout: .seconds(idleTimeout))
        let response: HTTPResponse
        do {
            response = try client.fetch(HTTPRequest(.get, url: base + tail, headers: headers), limits: limits)
        } catch {
            if case .timedOut = error { return .text(504, "checksum database timed out: \(shown): \(error)") }
            return .text(502, "checksum database unavailable: \(shown): \(error)")
        }
        switch response.status {
        case 200:
            let isTile = tail.hasPrefix("/tile/")
            let type = response.headers["Content-Type"] ?? (isTile ? "application/octet-stream" : "text/plain; charset=utf-8")
            return Response(status: 200, headers: [("Content-Type", type), ("Cache-Control", isTile ? "public, max-age=86400" : "no-cache")],
                            body: .bytes(response.body))
        case 404, 410:
            return .text(response.status, "not found: " + String(decoding: response.body.prefix(300), as: UTF8.self))
        default:
            return .text(502, "checksum database answered \(response.status): \(shown)")
        }
    }

    /// A base URL without user:password, and the Basic credentials it carried.
    private static func splitCredentials(_ url: String) -> (base: String, authorization: String?) {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        guard var components = URLComponents(string: trimmed), let user = components.user else { return (trimmed, nil) }
        let pair = user + ":" + (components.password ?? "")
        components.user = nil
        components.password = nil
        return (components.string ?? trimmed, "Basic " + Data(pair.utf8).base64EncodedString())
    }

    /// The URL without user info, for messages.
    package static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(url)" }
        components.user = nil
        components.password = nil
        return components.string ?? "(url)"
    }
}
