@_exported import JSON

/// A plugin's config: the JSON object the manifest gives under `config`, read with typed accessors.
/// Call `finish()` after reading every key you know, so unknown keys are refused by name (in nested objects
/// read with `object(_:)` or `objects(_:)` too). Absent keys and `null` read as nil. Errors are `.invalid`
/// and name the key by its path: `config.repositories[0].url: ...`.
public final class PluginConfig {
    private let fields: JSONFields<PluginFailure>
    /// The host's services (its log), when the host handed them over (ABI 1.1); `.absent` otherwise.
    public let host: HostServices

    /// Parses `json`, which must be a JSON object (JSONReader: strict RFC 8259, duplicate keys refused).
    public init(json: String, host: HostServices = .absent) throws(PluginFailure) {
        self.host = host
        let value: JSONValue
        do {
            value = try JSONReader.parse(json)
        } catch {
            throw .invalid("config: not a JSON object (\(error))")
        }
        guard case .object = value else { throw .invalid("config: not a JSON object") }
        fields = try JSONFields(value, path: "config") { .invalid($0) }
    }

    private init(_ fields: JSONFields<PluginFailure>, host: HostServices) {
        self.fields = fields
        self.host = host
    }

    /// The keys, in document order (for objects used as maps, e.g. host → address).
    public var keys: [String] { fields.keys }

    /// An error about `key`, named by its path, for checks the plugin makes on a value it read.
    public func error(_ key: String, _ message: String) -> PluginFailure { fields.error(key, message) }

    /// The raw value of `key`, for shapes the typed accessors do not cover (nil when absent or null).
    public func value(_ key: String) -> JSONValue? { fields.value(key) }

    /// An optional string without NUL characters (they would cut a path or a URL short at the C boundary).
    public func string(_ key: String, expected: String = "a string") throws(PluginFailure) -> String? {
        guard let string = try fields.string(key, expected: expected) else { return nil }
        guard !string.utf8.contains(0) else { throw fields.error(key, "must not contain a NUL character") }
        return string
    }

    /// An optional number of seconds, or any other non-negative number.
    public func number(_ key: String) throws(PluginFailure) -> Double? {
        let expected = "a non-negative number"
        guard let number = try fields.number(key, expected: expected) else { return nil }
        guard number.double.isFinite, number.double >= 0 else { throw fields.error(key, "must be \(expected)") }
        return number.double
    }

    /// An optional integer in `range`, exact.
    public func integer(_ key: String, in range: ClosedRange<Int>) throws(PluginFailure) -> Int? {
        try fields.integer(key, in: range)
    }

    /// An optional `true` or `false`.
    public func bool(_ key: String) throws(PluginFailure) -> Bool? { try fields.bool(key) }

    /// An optional array of strings.
    public func strings(_ key: String, expected: String = "a list of strings") throws(PluginFailure) -> [String]? {
        guard let strings = try fields.strings(key, expected: expected) else { return nil }
        guard !strings.contains(where: { $0.utf8.contains(0) }) else { throw fields.error(key, "must not contain a NUL character") }
        return strings
    }

    /// An optional array of any values.
    public func array(_ key: String, expected: String = "an array") throws(PluginFailure) -> [JSONValue]? {
        try fields.array(key, expected: expected)
    }

    /// An optional nested object, read the same way; this config's `finish()` finishes it too.
    public func object(_ key: String, expected: String = "an object") throws(PluginFailure) -> PluginConfig? {
        try fields.object(key, expected: expected).map { PluginConfig($0, host: host) }
    }

    /// An optional array of objects, each read the same way and finished with this config.
    public func objects(_ key: String, expected: String = "an array of objects",
                        expectedEach: String = "an object") throws(PluginFailure) -> [PluginConfig]? {
        try fields.objects(key, expected: expected, expectedEach: expectedEach)?.map { PluginConfig($0, host: host) }
    }

    /// Refuses keys nobody read, here and in the nested objects handed out.
    public func finish() throws(PluginFailure) { try fields.finish() }
}
