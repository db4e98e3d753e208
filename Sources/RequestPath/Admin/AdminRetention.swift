import JSON

/// `POST /admin/retention`: `{"dryRun": true}` (the default; an empty body too) answers what the policy would
/// remove and why; `{"dryRun": false}` removes it. 501 when the manifest has no `retention`.
package enum AdminRetention {
    package static func run(_ retention: Retention?, body: [UInt8]) throws(AdminError) -> (Response, String) {
        var dryRun = true
        if !body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            let fields = try AdminBody.fields(body)
            dryRun = try fields.bool("dryRun") ?? true
            try fields.finish()
        }
        guard let retention else { throw .notSupported("retention is not configured (manifest key \"retention\")") }
        let report = try retention.run(dryRun: dryRun)
        var response = Response.json(Array(report.json.text().utf8))
        if !report.failed.isEmpty { response.status = 500 }
        return (response, dryRun ? "dry-run" : report.failed.isEmpty ? "ok" : "error")
    }
}
