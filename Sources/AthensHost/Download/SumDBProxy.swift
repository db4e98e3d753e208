import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GoModule

/// Proxies checksum databases under `/sumdb/<name>/…` (ref/mod#checksum-database).
///
/// `/supported` is answered here (forwarding it would make clients bypass us). `/lookup/<module>@<version>`,
/// `/tile/…` and `/latest` are forwarded to the database's URL. Lookups of private, excluded or
/// `noSumPatterns` modules are refused with 403, so private module names never leave the building.
final class SumDBProxy: @unchecked Sendable {
    /// Configured databases: name → base URL (e.g. "sum.golang.org" → "https://sum.golang.org").
    let databases: [String: String]
    let policy: DownloadPolicy
    let pool: WorkerPool
    let timeout: Double
    /// Largest upstream answer relayed (tiles are at most 8 KiB of hashes; data tiles a few hundred KiB).
    let maxBody = 8 << 20
    private let session: URLSession

    init(databases: [(name: String, url: String)], policy: DownloadPolicy, pool: WorkerPool, timeout: Double = 30) {
        var map: [String: String] = [:]
        for db in databases { map[db.name] = db.url.hasSuffix("/") ? String(db.url.dropLast()) : db.url }
        self.databases = map
        self.policy = policy
        self.pool = pool
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout * 2
        configuration.urlCache = nil
        session = URLSession(configuration: configuration)
    }

    /// Answers a path starting with "/sumdb/" (still percent-encoded).
    func serve(path: Substring, responder: Responder) {
        let rest = path.dropFirst("/sumdb/".count)
        guard let slash = rest.firstIndex(of: "/") else { return responder.respond(.text(404, "not found")) }
        let name = String(rest[..<slash])
        let tail = rest[slash...]
        guard let base = databases[name] else {
            return responder.respond(.text(404, "not found: checksum database \(name) is not proxied here"))
        }
        if tail == "/supported" {
            return responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")]))
        }
        // Only the database's own path shapes, in its own alphabet: nothing else is sent upstream.
        // Checked decoded too: an upstream decodes "%2e%2e" to ".." before routing (fuzzed: sumdb_path).
        guard tail == "/latest" || tail.hasPrefix("/lookup/") || tail.hasPrefix("/tile/"),
              !tail.contains(".."), !tail.contains("//"),
              let decodedTail = DownloadRequest.percentDecode(tail), !decodedTail.contains(".."),
              tail.utf8.allSatisfy({ Self.allowed[Int($0)] }) else {
            return responder.respond(.text(404, "not found"))
        }
        if tail.hasPrefix("/lookup/") {
            let target = tail.dropFirst("/lookup/".count)
            guard let at = target.lastIndex(of: "@"),
                  let decoded = DownloadRequest.percentDecode(target[..<at]),
                  let module = try? ModulePath.unescapePath(decoded) else {
                return responder.respond(.text(400, "bad request: malformed lookup"))
            }
            if policy.refusesSumLookup(module) {
                return responder.respond(.text(403, "forbidden: \(module) is private here; set GONOSUMDB or GOPRIVATE for it"))
            }
        }
        let url = base + tail
        let accepted = pool.submit { responder.respond(self.forward(url)) }
        if !accepted {
            var response = Response.text(503, "service unavailable: too many requests in progress, retry shortly")
            response.headers.append(("Retry-After", "1"))
            responder.respond(response)
        }
    }

    private static let allowed: [Bool] = (0..<256).map { c in
        switch UInt8(c) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "@"),
             UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "%"): true
        default: false
        }
    }

    /// Fetches `url` (blocking; on a pool thread) and relays 200/404/410; anything else is 502.
    private func forward(_ url: String) -> Response {
        guard let target = URL(string: url) else { return .text(404, "not found") }
        final class Box: @unchecked Sendable {
            var data: Data?
            var response: HTTPURLResponse?
            var error: Error?
        }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: target) { data, response, error in
            box.data = data
            box.response = response as? HTTPURLResponse
            box.error = error
            done.signal()
        }
        task.resume()
        guard done.wait(timeout: .now() + timeout * 2) == .success else {
            task.cancel()
            return .text(504, "checksum database timed out: \(Self.redacted(url))")
        }
        guard let response = box.response, box.error == nil else {
            return .text(502, "checksum database unavailable: \(Self.redacted(url)): \(box.error.map { "\($0.localizedDescription)" } ?? "no response")")
        }
        let body = box.data ?? Data()
        guard body.count <= maxBody else { return .text(502, "checksum database answer too large: \(Self.redacted(url))") }
        switch response.statusCode {
        case 200:
            let type = response.value(forHTTPHeaderField: "Content-Type") ?? (url.contains("/tile/") ? "application/octet-stream" : "text/plain; charset=utf-8")
            return Response(status: 200, headers: [("Content-Type", type), ("Cache-Control", url.contains("/tile/") ? "public, max-age=86400" : "no-cache")],
                            body: .bytes(Array(body)))
        case 404, 410:
            return .text(response.statusCode, "not found: " + String(decoding: body.prefix(300), as: UTF8.self))
        default:
            return .text(502, "checksum database answered \(response.statusCode): \(Self.redacted(url))")
        }
    }

    /// The URL without user info, for messages.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(url)" }
        components.user = nil
        components.password = nil
        return components.string ?? "(url)"
    }
}
