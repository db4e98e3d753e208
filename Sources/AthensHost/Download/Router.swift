import Dispatch

/// Routes requests: operational endpoints, then the GOPROXY download routes. Runs on the event loop.
final class Router: RequestHandler {
    let download: DownloadProtocol
    let sumdb: SumDBProxy?
    let version: String

    init(download: DownloadProtocol, sumdb: SumDBProxy?, version: String) {
        self.download = download
        self.sumdb = sumdb
        self.version = version
    }

    func handle(_ request: Request, responder: Responder) {
        let path = request.path
        switch path {
        case "/healthz":
            return responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: .bytes(Array("ok\n".utf8))))
        case "/readyz":
            // Probed off the loop: a stalled storage must not stall the server.
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
            return responder.respond(.json(Array(#"{"version":"\#(version)","pluginABI":"\#(ATH_ABI_MAJOR).\#(ATH_ABI_MINOR)"}"#.utf8)))
        case "/catalog":
            return download.catalog(query: request.query, responder: responder)
        case "/", "/index.html":
            return responder.respond(Response(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                              body: .bytes(Array("athens Go module proxy\nUse: GOPROXY=http://<this host>[:port]\n".utf8))))
        default:
            break
        }
        if path.hasPrefix("/sumdb/") {
            guard let sumdb else { return responder.respond(.text(404, "not found: no checksum database is proxied here")) }
            return sumdb.serve(path: path, responder: responder)
        }
        switch DownloadRequest.parse(path) {
        case let .success(parsed):
            download.serve(parsed, responder: responder)
        case .failure(.notARoute):
            responder.respond(.text(404, "not found"))
        case let .failure(.malformed(status, message)):
            responder.respond(.text(status, message))
        }
    }
}

import PluginABI
