// JSONFields: an object read key by key with typed accessors; `finish` refuses the keys nobody read.
// Shared by the manifest and PluginKit's PluginConfig, each with its own error type and key path.

/// A JSON object being read key by key. Every accessor marks its key as read; `finish()` then refuses the first
/// key (in document order) nobody read, and does the same for every nested object handed out by `object(_:)` or
/// `objects(_:)`. Errors name the key by its path (`manifest.server.threads`, `config.repositories[0].url`).
/// Absent keys and `null` read as nil.
public final class JSONFields<Failure: Error> {
    /// The members being read.
    public let members: JSONObject
    /// How errors name this object, e.g. `manifest.storage`.
    public let path: String
    private let makeError: (String) -> Failure
    private var read = Set<String>()
    private var children: [JSONFields] = []

    /// Reads `value`, which must be an object (else "`path`: must be an object"); `makeError` turns a one-line
    /// message into the caller's error.
    public init(_ value: JSONValue, path: String, error makeError: @escaping (String) -> Failure) throws(Failure) {
        guard case .object(let object) = value else { throw makeError("\(path): must be an object") }
        members = object
        self.path = path
        self.makeError = makeError
    }

    /// The keys, in document order.
    public var keys: [String] { members.keys }

    /// An error about `key` ("`path`.`key`: `message`"), for checks the caller makes on a value it read.
    public func error(_ key: String, _ message: String) -> Failure { makeError("\(path).\(Self.named(key)): \(message)") }

    /// A key as paths show it: as is, or JSON-quoted when it holds control characters (an error stays one line).
    private static func named(_ key: String) -> String {
        key.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F } ? key : JSONValue.quoted(key)
    }

    /// The raw value of `key` (nil when absent or null); marks it read. Nested objects read this way are not
    /// checked by `finish()`.
    public func value(_ key: String) -> JSONValue? {
        read.insert(key)
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    /// A string; `expected` words the error ("must be `expected`").
    public func string(_ key: String, expected: String = "a string") throws(Failure) -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let string) = value else { throw error(key, "must be \(expected)") }
        return string
    }

    /// `true` or `false`.
    public func bool(_ key: String, expected: String = "true or false") throws(Failure) -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let bool) = value else { throw error(key, "must be \(expected)") }
        return bool
    }

    /// A number, as written.
    public func number(_ key: String, expected: String = "a number") throws(Failure) -> JSONNumber? {
        guard let value = value(key) else { return nil }
        guard case .number(let number) = value else { throw error(key, "must be \(expected)") }
        return number
    }

    /// An integer in `range` (exact: `9007199254740993` is not rounded); a number that is not one, or is out of
    /// range, is refused with the range in the message.
    public func integer(_ key: String, in range: ClosedRange<Int>) throws(Failure) -> Int? {
        guard let number = try number(key) else { return nil }
        guard let int = number.int, range.contains(int) else {
            throw error(key, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return int
    }

    /// An array of any values.
    public func array(_ key: String, expected: String = "an array") throws(Failure) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let elements) = value else { throw error(key, "must be \(expected)") }
        return elements
    }

    /// An array of strings.
    public func strings(_ key: String, expected: String = "a list of strings") throws(Failure) -> [String]? {
        guard let elements = try array(key, expected: expected) else { return nil }
        var strings: [String] = []
        for element in elements {
            guard case .string(let string) = element else { throw error(key, "must be \(expected)") }
            strings.append(string)
        }
        return strings
    }

    /// A nested object, read the same way (path `path.key`); this object's `finish()` finishes it too.
    public func object(_ key: String, expected: String = "an object") throws(Failure) -> JSONFields? {
        guard let value = value(key) else { return nil }
        guard case .object = value else { throw error(key, "must be \(expected)") }
        return try adopt(value, path: "\(path).\(Self.named(key))")
    }

    /// A nested object taken whole, not read key by key (e.g. a plugin's config, handed on as text).
    public func rawObject(_ key: String, expected: String = "an object") throws(Failure) -> JSONObject? {
        guard let value = value(key) else { return nil }
        guard case .object(let object) = value else { throw error(key, "must be \(expected)") }
        return object
    }

    /// An array of objects (paths `path.key[i]`), each finished with this one. `expected` words the error for
    /// a value that is not an array, `expectedEach` for an element that is not an object.
    public func objects(_ key: String, expected: String = "an array of objects",
                        expectedEach: String = "an object") throws(Failure) -> [JSONFields]? {
        guard let elements = try array(key, expected: expected) else { return nil }
        var objects: [JSONFields] = []
        for (index, element) in elements.enumerated() {
            let elementPath = "\(path).\(Self.named(key))[\(index)]"
            guard case .object = element else { throw makeError("\(elementPath): must be \(expectedEach)") }
            objects.append(try adopt(element, path: elementPath))
        }
        return objects
    }

    /// Refuses the first key nobody read, here and then in each nested object handed out.
    public func finish() throws(Failure) {
        if let unknown = members.keys.first(where: { !read.contains($0) }) {
            throw error(unknown, "unknown key")
        }
        for child in children { try child.finish() }
    }

    private func adopt(_ value: JSONValue, path: String) throws(Failure) -> JSONFields {
        let child = try JSONFields(value, path: path, error: makeError)
        children.append(child)
        return child
    }
}
