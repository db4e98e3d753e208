// JSONValue: what JSONReader gives back, and the compact text it writes back (for configs handed on to plugins).

/// One JSON value as read: objects keep their members in document order, numbers keep their literal.
public enum JSONValue: Equatable, Sendable {
    case object(JSONObject)
    case array([JSONValue])
    case string(String)
    case number(JSONNumber)
    case bool(Bool)
    case null

    /// The value as compact JSON text (no spaces); `sortingKeys` orders object members by their UTF-8 bytes, so the
    /// text does not depend on the order a document happened to use.
    public func text(sortingKeys: Bool = false) -> String {
        var out = ""
        write(to: &out, sortingKeys: sortingKeys)
        return out
    }

    /// What a value is, for error messages ("must be a string, not an array").
    public var kind: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }

    private func write(to out: inout String, sortingKeys: Bool) {
        switch self {
        case .object(let object):
            let members = sortingKeys
                ? object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } : object.members
            out += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { out += "," }
                Self.quote(member.key, to: &out)
                out += ":"
                member.value.write(to: &out, sortingKeys: sortingKeys)
            }
            out += "}"
        case .array(let elements):
            out += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { out += "," }
                element.write(to: &out, sortingKeys: sortingKeys)
            }
            out += "]"
        case .string(let string): Self.quote(string, to: &out)
        case .number(let number): out += number.literal
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        }
    }

    /// `string` as a JSON string literal (the log's JSON and logfmt values use it too).
    public static func quoted(_ string: String) -> String {
        var out = ""
        quote(string, to: &out)
        return out
    }

    /// A JSON string literal: quotes, backslashes, control characters and DEL escaped (U+0000 too, so the text
    /// survives being passed on as a C string; a log line stays one line and prints plainly).
    private static func quote(_ string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
