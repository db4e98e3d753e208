import HostSupport
import PluginHost
import Dispatch

/// Routes requests: operational endpoints, then the GOPROXY download routes. Runs on the event loop.
package final class Router: RequestHandler {
    package let download: DownloadProtocol
    package let sumdb: SumDBProxy?
    package let version: String
    /// Basic-auth credentials every route but /healthz and /readyz requires; nil for none.
    package let auth: BasicAuth?

    package init(download: DownloadProtocol, sumdb: SumDBProxy?, version: String, auth: BasicAuth? = nil) {
        self.download = download
        self.sumdb = sumdb
        self.version = version
        self.auth = auth
    }

    package func handle(_ request: Request, responder: Responder) {
        let path = request.path
        if let auth, path != "/healthz", path != "/readyz", !auth.accepts(request.header("authorization")) {
            return responder.tagged("unauthorized").respond(Response(status: 401, headers: [
                ("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Basic realm=\"athens\""),
            ], body: .bytes(Array("unauthorized\n".utf8))))
        }
        // The operational endpoints are short; download paths skip these comparisons (hot path).
        switch path.utf8.count <= 11 ? path : "" {
        case "/metrics":
            let responder = responder.tagged("metrics")
            return responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                              body: .bytes(Array(Metrics.shared.render().utf8))))
        case "/healthz":
            return responder.tagged("health").respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: .bytes(Array("ok\n".utf8))))
        case "/readyz":
            // Probed off the loop: a stalled storage must not stall the server.
            let responder = responder.tagged("health")
            let storage = download.storage
            DispatchQueue.global().async {
                do {
                    _ = try storage.exists(module: "athens.invalid/readyz", version: "v0.0.0")
                    responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: .bytes(Array("ready\n".utf8))))
                } catch {
                    responder.respond(.text(503, "not ready: \(error)"))
                }
            }
            return
        case "/version":
            return responder.tagged("info-page").respond(.json(Array(#"{"version":"\#(version)","pluginABI":"\#(ATH_ABI_MAJOR).\#(ATH_ABI_MINOR)"}"#.utf8)))
        case "/catalog":
            return download.catalog(query: request.query, responder: responder.tagged("catalog"))
        case "/", "/index.html":
            return responder.tagged("info-page").respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                              body: .bytes(Array("athens Go module proxy\nUse: GOPROXY=http://<this host>[:port]\n".utf8))))
        default:
            break
        }
        if path.utf8.starts(with: "/sumdb/".utf8) {
            guard let sumdb else { return responder.respond(.text(404, "not found: no checksum database is proxied here")) }
            return sumdb.serve(path: path, responder: responder.tagged("sumdb"))
        }
        switch DownloadRequest.parse(path) {
        case let .success(parsed):
            download.serve(parsed, responder: responder.tagged(parsed.endpoint))
        case .failure(.notARoute):
            responder.respond(.text(404, "not found"))
        case let .failure(.malformed(status, message)):
            responder.respond(.text(status, message))
        }
    }
}

import PluginABI

/// HTTP Basic credentials, compared in constant time.
package struct BasicAuth: Sendable {
    /// The base64 of "user:password", as the credentials after the scheme carry it.
    private let expected: [UInt8]

    package init(user: String, password: String) {
        expected = Array(Base64.encode(Array((user + ":" + password).utf8)).utf8)
    }

    /// Whether an Authorization header carries these credentials. The scheme is case-insensitive
    /// (RFC 9110 §11.1: `basic`, `BASIC`), then one or more spaces. Time depends only on the lengths.
    package func accepts(_ header: String?) -> Bool {
        let bytes = Array((header ?? "").utf8)
        let scheme = Array("basic".utf8)
        guard bytes.count > scheme.count, bytes[scheme.count] == 0x20,
              zip(bytes, scheme).allSatisfy({ $0 | 0x20 == $1 }) else { return false }
        var start = scheme.count
        while start < bytes.count && bytes[start] == 0x20 { start += 1 }
        let given = bytes[start...]
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for i in 0..<expected.count {
            difference |= expected[i] ^ (i < given.count ? given[given.startIndex + i] : 0)
        }
        return difference == 0
    }
}

/// Standard base64 with padding (RFC 4648 §4).
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
