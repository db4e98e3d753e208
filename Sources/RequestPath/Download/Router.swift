import HostSupport
import PluginHost
import Dispatch
import PluginABI
import Glibc

/// Routes requests: operational endpoints, then the GOPROXY download routes. Runs on the event loop.
package final class Router: RequestHandler {
    package let download: DownloadProtocol
    package let sumdb: SumDBProxy?
    package let version: String
    /// Basic-auth credentials every route but /healthz and /readyz requires; nil for none.
    package let auth: BasicAuth?
    /// What /readyz probes: storage, and the cross-process single-flight's lock when one is configured.
    package let readiness: Readiness
    /// The admin API under /admin/ (its own bearer token); nil: off, those paths are 404.
    package let admin: AdminAPI?

    package init(download: DownloadProtocol, sumdb: SumDBProxy?, version: String, auth: BasicAuth? = nil,
                 readinessLock: Readiness.LockProbe? = nil, admin: AdminAPI? = nil) {
        self.admin = admin
        self.download = download
        self.sumdb = sumdb
        self.version = version
        self.auth = auth
        readiness = Readiness(storage: download.storage, lock: readinessLock)
    }

    /// A body is for the admin API alone: its plan checks the token from the head; any other POST is 405 unread.
    package func plan(_ request: Request) -> BodyPlan {
        if request.path.utf8.starts(with: "/admin/".utf8), let admin { return admin.plan(request) }
        var response = Response.text(request.path.utf8.starts(with: "/admin/".utf8) ? 404 : 405,
                                     request.path.utf8.starts(with: "/admin/".utf8) ? "not found: the admin API is off" : "method not allowed")
        if response.status == 405 { response.headers.append(("Allow", "GET, HEAD")) }
        return .refuse(response)
    }

    package func handle(_ request: Request, responder: Responder) {
        let path = request.path
        // Before basic auth: the admin API has its own token. No module path starts with "admin/" (no dot).
        if Self.hasPrefix(path, "/admin/") {
            guard let admin else { return responder.tagged("admin").respond(.text(404, "not found: the admin API is off")) }
            return admin.handle(request, responder: responder)
        }
        if request.method == .post {
            // Only the admin API takes POST (the parser accepts it only when the admin API is on).
            var response = Response.text(405, "method not allowed")
            response.headers.append(("Allow", "GET, HEAD"))
            return responder.respond(response)
        }
        if let auth, path != "/healthz", path != "/readyz", !auth.accepts(request.header("authorization")) {
            return responder.tagged("unauthorized").respond(Response(status: 401, headers: [
                ("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Basic realm=\"athens\""),
            ], body: .bytes(Array("unauthorized\n".utf8))))
        }
        // The operational endpoints are short; download paths skip these comparisons (hot path: each String
        // comparison with a literal costs ~100 instructions, even against "").
        if path.utf8.count <= 11 { switch path {
        case "/metrics":
            let responder = responder.tagged("metrics")
            return responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                              body: .bytes(Array(Metrics.shared.render().utf8))))
        case "/healthz":
            return responder.tagged("health").respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: .bytes(Array("ok\n".utf8))))
        case "/readyz":
            // Probed off the loop: a stalled storage must not stall the server.
            let responder = responder.tagged("health")
            let readiness = readiness
            DispatchQueue.global().async { responder.respond(readiness.probe()) }
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
        } }
        if Self.hasPrefix(path, "/sumdb/") {
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

    /// Whether `path` starts with the ASCII `prefix`: one memcmp on the contiguous UTF-8 (the generic
    /// `utf8.starts(with:)` cost ~330 instructions per call on the hot path).
    @inline(__always)
    static func hasPrefix(_ path: Substring, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard path.utf8.count >= count else { return false }
        return path.utf8.withContiguousStorageIfAvailable { memcmp($0.baseAddress!, prefix.utf8Start, count) == 0 }
            ?? path.utf8.starts(with: UnsafeBufferPointer(start: prefix.utf8Start, count: count))
    }
}
