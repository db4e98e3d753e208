import Foundation

/// A plugin's config: the JSON object the manifest gives under `config`, read with typed accessors.
/// Call `finish()` after reading every key you know, so unknown keys are refused by name.
public final class PluginConfig {
    private let object: [String: Any]
    private var read: Set<String> = []
    /// The host's services (its log), when the host handed them over (ABI 1.1); `.absent` otherwise.
    public let host: HostServices

    /// Parses `json`, which must be a JSON object.
    public init(json: String, host: HostServices = .absent) throws(PluginFailure) {
        self.host = host
        guard let data = json.data(using: .utf8),
              let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
              let object = value as? [String: Any] else {
            throw .invalid("config: not a JSON object")
        }
        self.object = object
    }

    /// An optional string.
    public func string(_ key: String) throws(PluginFailure) -> String? {
        read.insert(key)
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let string = value as? String else { throw .invalid("config.\(key): must be a string") }
        return string
    }

    /// An optional number of seconds, or any other non-negative number.
    public func number(_ key: String) throws(PluginFailure) -> Double? {
        read.insert(key)
        guard let value = object[key], !(value is NSNull) else { return nil }
        // JSONSerialization gives NSNumber for both numbers and booleans; refuse booleans.
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
              number.doubleValue.isFinite, number.doubleValue >= 0 else {
            throw .invalid("config.\(key): must be a non-negative number")
        }
        return number.doubleValue
    }

    /// Refuses keys nobody read.
    public func finish() throws(PluginFailure) {
        if let unknown = object.keys.sorted().first(where: { !read.contains($0) }) {
            throw .invalid("config.\(unknown): unknown key")
        }
    }
}
