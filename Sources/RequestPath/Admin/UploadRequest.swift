import GoModule

/// What `POST /admin/upload?module=M&version=V&modBytes=N[&time=T][&force=true]` carries. The body is the go.mod
/// (its first `modBytes` bytes) followed by the module zip: no multipart, one length says where the zip starts. The
/// query is read from the head alone, so a malformed one is refused before any of the body is read (`UploadSpool`).
package struct UploadRequest {
    package var module: String
    package var version: String
    /// RFC 3339 time for the .info; nil: the time of the upload.
    package var time: String?
    /// Allows an upload of a version already stored, and then only if its bytes are the same (a no-op).
    package var force: Bool
    /// Length of the go.mod at the start of the body.
    package var modBytes: Int

    /// Reads the query, for a body of `bodyLength` bytes; every refusal is a `400`.
    package static func parse(query: Substring, bodyLength: Int) throws(AdminError) -> UploadRequest {
        var values: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = DownloadRequest.percentDecode(parts[0]), let value = parts.count > 1 ? DownloadRequest.percentDecode(parts[1]) : "" else {
                throw .badRequest("query: malformed percent-encoding")
            }
            guard ["module", "version", "modBytes", "time", "force"].contains(name) else { throw .badRequest("query.\(name): unknown parameter") }
            guard values.updateValue(value, forKey: name) == nil else { throw .badRequest("query.\(name): given twice") }
        }
        guard let module = values["module"], let version = values["version"] else { throw .badRequest("query: module and version are required") }
        try AdminBody.check(module: module, version: version)
        guard let text = values["modBytes"], let modBytes = Int(text), modBytes > 0, modBytes < bodyLength else {
            throw .badRequest("query.modBytes: the go.mod's length, more than 0 and less than the body's (\(bodyLength))")
        }
        guard modBytes <= ModuleZip.maxGoMod else { throw .badRequest("query.modBytes: a go.mod larger than \(ModuleZip.maxGoMod) bytes") }
        let force: Bool
        switch values["force"] {
        case nil, "false": force = false
        case "true": force = true
        default: throw .badRequest("query.force: true or false")
        }
        return UploadRequest(module: module, version: version, time: values["time"], force: force, modBytes: modBytes)
    }
}
