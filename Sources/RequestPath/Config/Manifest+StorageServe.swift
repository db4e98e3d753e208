import JSON
import PluginHost

extension Manifest {
    /// The files answered with `302` to the storage's `url`, from `storage.serve` ("bytes", the default, or
    /// "redirect") and `storage.redirect` (which files; default ["zip"]). `path` names the object in errors.
    static func storageRedirects(serve: String?, redirect: [JSONValue]?, path: String) throws(ManifestError) -> Set<Artifact> {
        let serve = serve ?? "bytes"
        guard serve == "bytes" || serve == "redirect" else { throw ManifestError("\(path).serve: must be \"bytes\" or \"redirect\"") }
        guard let names = redirect else { return serve == "redirect" ? [.zip] : [] }
        guard serve == "redirect" else { throw ManifestError("\(path).redirect: only with \"serve\": \"redirect\"") }
        let known: [String: Artifact] = ["zip": .zip, "info": .info, "mod": .mod]
        var artifacts = Set<Artifact>()
        for (index, name) in names.enumerated() {
            guard case let .string(name) = name, let artifact = known[name] else {
                throw ManifestError("\(path).redirect[\(index)]: must be \"zip\", \"info\" or \"mod\"")
            }
            artifacts.insert(artifact)
        }
        guard !artifacts.isEmpty else { throw ManifestError("\(path).redirect: names no file (use \"serve\": \"bytes\")") }
        return artifacts
    }
}
