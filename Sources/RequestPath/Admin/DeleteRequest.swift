import GoModule
import JSON

/// What `POST /admin/delete` names: one version, every version of a module, or the modules a glob matches.
/// `dryRun` is true unless the body says false: deleting is never the default.
package struct DeleteRequest: Equatable {
    package enum Selection: Equatable {
        case version(module: String, version: String)
        case allVersions(module: String)
        /// GOPRIVATE-style patterns (`ModulePath.matchPrefixPatterns`), matched against stored module paths.
        case glob(String)
    }

    package var selection: Selection
    package var dryRun: Bool

    /// Reads and validates the JSON body; every refusal is a `400` naming the key.
    package static func parse(_ body: [UInt8]) throws(AdminError) -> DeleteRequest {
        let fields = try AdminBody.fields(body)
        let module = try fields.string("module")
        let version = try fields.string("version")
        let versions = try fields.string("versions")
        let glob = try fields.string("glob")
        let dryRun = try fields.bool("dryRun") ?? true
        try fields.finish()
        let selection: Selection
        switch (module, version, versions, glob) {
        case let (module?, version?, nil, nil):
            try AdminBody.check(module: module, version: version)
            selection = .version(module: module, version: version)
        case let (module?, nil, versions?, nil):
            guard versions == "all" else { throw .badRequest("request.versions: must be \"all\"") }
            try AdminBody.check(module: module)
            selection = .allVersions(module: module)
        case let (nil, nil, nil, glob?):
            // Printable ASCII only: a glob names module paths, which are ASCII (ModulePath.check).
            guard !glob.isEmpty, glob.utf8.count <= 1024, glob.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw .badRequest("request.glob: must be 1 to 1024 printable ASCII characters")
            }
            selection = .glob(glob)
        default:
            throw .badRequest("request: give module and version, module and versions \"all\", or glob alone")
        }
        return DeleteRequest(selection: selection, dryRun: dryRun)
    }
}

/// The JSON bodies of admin calls: read with JSONFields, module paths and versions checked by GoModule.
package enum AdminBody {
    package static func fields(_ body: [UInt8]) throws(AdminError) -> JSONFields<AdminError> {
        let value: JSONValue
        do {
            value = try JSONReader.parse(body)
        } catch {
            throw .badRequest("request: not valid JSON (\(error))")
        }
        return try JSONFields(value, path: "request") { AdminError.badRequest($0) }
    }

    package static func check(module: String) throws(AdminError) {
        do { try ModulePath.check(module) } catch { throw .badRequest("request.module: \(error.message)") }
        // Its versions are this proxy's own records (quarantine marks): changed only through their own calls.
        guard !Quarantine.isReserved(module) else {
            throw .badRequest("request.module: \(module) is reserved for this proxy's records (see /admin/quarantine)")
        }
    }

    /// A module path and a canonical version that fits it (a major suffix, +incompatible).
    package static func check(module: String, version: String) throws(AdminError) {
        try check(module: module)
        guard ModulePath.canonicalVersion(version) == version else {
            throw .badRequest("request.version: \"\(version)\" is not a canonical semantic version")
        }
        do { try ModulePath.check(path: module, version: version) } catch { throw .badRequest("request.version: \(error.message)") }
    }
}
