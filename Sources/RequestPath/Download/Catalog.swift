import HostSupport
import JSON
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// `/catalog`: the stored module versions, a page at a time, from the storage's own catalog.
extension DownloadProtocol {
    /// `/catalog?token=…&pagesize=…`: one page of stored module versions as JSON. Parameters are checked on
    /// the event loop (400 at once); the storage is asked on the pool.
    package func catalog(query: Substring, responder: Responder) {
        var token = "", pageSize = 1000
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0], value = parts.count > 1 ? DownloadRequest.percentDecode(parts[1]) : ""
            guard let value else { return responder.respond(.text(400, "bad request: malformed \(name)")) }
            switch name {
            case "token":
                guard value.utf8.count < Int(ATH_CATALOG_TOKEN_CAPACITY) else { return responder.respond(.text(400, "bad request: token too long")) }
                token = value
            case "pagesize":
                guard let n = Int(value), n >= 1, n <= 10_000 else { return responder.respond(.text(400, "bad request: pagesize must be 1…10000")) }
                pageSize = n
            default:
                return responder.respond(.text(400, "bad request: unknown parameter \(name)"))
            }
        }
        guard storage.hasCatalog else { return responder.respond(.text(501, "not implemented: storage \(storage.name) has no catalog")) }
        let (pageToken, size) = (token, pageSize)
        offload(responder) { () throws(DownloadError) in
            let page: (entries: [(module: String, version: String)], next: String)
            do throws(PluginError) {
                page = try self.storage.catalog(token: pageToken, pageSize: size, call: self.requestContext())
            } catch where error.code == .invalid {
                throw DownloadError(status: 400, message: "bad request: \(error.message)")
            } catch {
                throw DownloadError(error, module: "catalog", version: nil)
            }
            // Quarantine marks and deletion tombstones are this proxy's bookkeeping, not modules (a page may come out shorter; `next` still pages on).
            var members: [(String, JSONValue)] = [("modules", .array(page.entries.filter { !ReservedModule.contains($0.module) }.map {
                .object(JSONObject([("module", .string($0.module)), ("version", .string($0.version))]))
            }))]
            if !page.next.isEmpty { members.append(("next", .string(page.next))) }
            return .json(Array(JSONValue.object(JSONObject(members)).text(sortingKeys: true).utf8))
        }
    }
}
