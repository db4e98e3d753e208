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
        var out: [UInt8] = []
        write(to: &out, sortingKeys: sortingKeys)
        return String(decoding: out, as: UTF8.self)
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

    // Written as UTF-8 bytes, one String at the end: appending to a String scalar by scalar cost ~10x more
    // (every stored .info is re-written once, to stamp its ingest record).
    private func write(to out: inout [UInt8], sortingKeys: Bool) {
        switch self {
        case .object(let object):
            let members = sortingKeys
                ? object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } : object.members
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.quote(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out, sortingKeys: sortingKeys)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out, sortingKeys: sortingKeys)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let string): Self.quote(string, to: &out)
        case .number(let number): out.append(contentsOf: number.literal.utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        }
    }

    /// `string` as a JSON string literal (the log's JSON and logfmt values use it too).
    public static func quoted(_ string: String) -> String {
        var out: [UInt8] = []
        quote(string, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string literal: quotes, backslashes, control characters and DEL escaped (U+0000 too, so the text
    /// survives being passed on as a C string; a log line stays one line and prints plainly). Every byte to escape
    /// is ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII: runs between escapes are copied whole.
    private static func quote(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { bytes in
            var runStart = 0
            for (index, byte) in bytes.enumerated() {
                let escape: StaticString
                switch byte {
                case UInt8(ascii: "\""): escape = "\\\""
                case UInt8(ascii: "\\"): escape = "\\\\"
                case UInt8(ascii: "\n"): escape = "\\n"
                case UInt8(ascii: "\r"): escape = "\\r"
                case UInt8(ascii: "\t"): escape = "\\t"
                case 0..<0x20, 0x7F: escape = "\\u00"
                default: continue
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                out.append(contentsOf: UnsafeBufferPointer(start: escape.utf8Start, count: escape.utf8CodeUnitCount))
                if escape.utf8CodeUnitCount == 4 {
                    // \u00XX, lower-case hex as before.
                    out.append(hexDigit(byte >> 4))
                    out.append(hexDigit(byte & 15))
                }
                runStart = index + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? 0x30 + value : 0x57 + value }
}
