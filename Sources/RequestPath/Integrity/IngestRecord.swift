import GoModule
import JSON

/// The h1 hashes of a version's zip and go.mod as this proxy computed them when it stored the version, kept inside
/// the stored `.info` as `"Athens": {"Zip": "h1:…", "Mod": "h1:…"}`.
///
/// Why the `.info`: it is saved with the version in one `save` (it is the commit marker), so every storage keeps the
/// record through the existing ABI, atomically, beside the module, and every instance on that storage reads it. The
/// go command decodes `.info` into `RevInfo` with encoding/json, which ignores members it does not know (so does
/// `ArtifactValidator.readInfo`, and so a downstream athens whose upstream is this one).
package struct IngestRecord: Equatable, Sendable {
    /// The member's key in the `.info`.
    package static let key = "Athens"

    /// The zip's h1 hash (the go.sum line without "/go.mod").
    package var zip: String
    /// The go.mod's h1 hash (the "/go.mod" go.sum line).
    package var mod: String

    package init(zip: String, mod: String) {
        self.zip = zip
        self.mod = mod
    }

    /// `info` with this record as its `Athens` member, replacing any there was (one an upstream athens wrote is
    /// that proxy's word, not ours). Other members keep their order and values. An `.info` our JSON reader refuses
    /// although the go command's rules accept it (a repeated key) is rebuilt from what the go command reads of it.
    package func stamped(_ info: [UInt8], version: String) throws(ValidationError) -> [UInt8] {
        var object: JSONObject
        if case .object(let parsed)? = try? JSONReader.parse(info) {
            object = parsed
            // encoding/json matches keys case-insensitively: no other spelling of ours may stay.
            for other in object.keys where other.lowercased() == Self.key.lowercased() { object[other] = nil }
        } else {
            let read = try ArtifactValidator.readInfo(info, version: version)
            object = JSONObject([("Version", .string(read.version))])
            if let time = read.time, case .string(let decoded)? = try? JSONReader.parse("\"" + time + "\"") {
                object["Time"] = .string(decoded)
            }
        }
        object[Self.key] = .object(JSONObject([("Zip", .string(zip)), ("Mod", .string(mod))]))
        return Array(JSONValue.object(object).text().utf8)
    }

    /// The record in a stored `.info`, or nil when it has none (stored before records existed, or by another writer).
    package static func read(_ info: some Collection<UInt8>) -> IngestRecord? {
        guard case .object(let object)? = try? JSONReader.parse(info), case .object(let record)? = object[key],
              case .string(let zip)? = record["Zip"], case .string(let mod)? = record["Mod"]
        else { return nil }
        return IngestRecord(zip: zip, mod: mod)
    }
}
