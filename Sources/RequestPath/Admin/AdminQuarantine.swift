import JSON
import PluginHost

/// `POST /admin/quarantine`: `{}` or `{"action": "list"}` lists the quarantined versions;
/// `{"action": "add", "module", "version", "reason"}` quarantines one (it answers 410 from then on);
/// `{"action": "release", "module", "version"}` lets it be served again. Marks live in storage (see Quarantine).
/// Blocks on storage: runs on the download pool.
package struct AdminQuarantine {
    package let quarantine: Quarantine
    package let cache: ArtifactCache

    package func run(_ body: [UInt8]) throws(AdminError) -> (response: Response, result: String) {
        let fields = try AdminBody.fields(body)
        let action = try fields.string("action") ?? "list"
        let module = try fields.string("module"), version = try fields.string("version"), reason = try fields.string("reason")
        try fields.finish()
        func mark(_ mark: Quarantine.Mark) -> JSONValue {
            .object(JSONObject([("module", .string(mark.module)), ("version", .string(mark.version)),
                                ("reason", .string(mark.reason)), ("time", .string(mark.time))]))
        }
        func answer(_ object: JSONObject) -> Response { .json(Array(JSONValue.object(object).text().utf8)) }
        if action == "list" {
            guard module == nil, version == nil, reason == nil else { throw .badRequest("request: list takes no module, version or reason") }
            do { try quarantine.refresh() } catch { throw .failed("storage: reading the quarantine marks: \(error)") }
            return (answer(JSONObject([("quarantined", .array(quarantine.all.map(mark)))])), "ok")
        }
        guard action == "add" || action == "release" else { throw .badRequest("request.action: must be list, add or release") }
        guard let module, let version else { throw .badRequest("request: \(action) needs module and version") }
        try AdminBody.check(module: module, version: version)
        do {
            if action == "add" {
                guard let reason, !reason.isEmpty else { throw AdminError.badRequest("request.reason: required to quarantine (clients are shown it)") }
                let added = try quarantine.add(module: module, version: version, reason: String(reason.prefix(1000)))
                cache.forget(module: module, version: version)
                return (answer(JSONObject([("quarantined", mark(added))])), "ok")
            }
            guard reason == nil else { throw AdminError.badRequest("request.reason: release takes none") }
            guard try quarantine.release(module: module, version: version) else {
                throw AdminError.notFound("\(module)@\(version) is not quarantined")
            }
            return (answer(JSONObject([("released", .object(JSONObject([("module", .string(module)), ("version", .string(version))])))])), "ok")
        } catch let error as AdminError {
            throw error
        } catch {
            throw .failed("storage: \(error)")
        }
    }
}
