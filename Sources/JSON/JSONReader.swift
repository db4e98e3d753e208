// JSONReader: the one JSON reader of the host and the Swift plugins (manifest, plugin configs, plugin-check's
// --config). Strict RFC 8259: one value, no comments, no trailing commas, UTF-8 only (lone surrogates and bad
// sequences refused, not replaced), duplicate keys refused, bounded depth and size; errors give the byte offset.
// (GoModule's .info check keeps its own reader on purpose: it must accept what Go's encoding/json accepts.)

/// Why a text is not acceptable JSON, and where.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, e.g. `expected ',' or '}' after an object member`.
    public var reason: String
    /// Offset of the offending byte from the start of the text (the text's length for an early end).
    public var offset: Int

    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// One line: the reason and the byte offset.
    public var description: String { "\(reason) at byte \(offset)" }
}

/// Parses JSON text into a `JSONValue`.
public struct JSONReader {
    /// Bounds for hostile input.
    public struct Limits: Sendable {
        /// Deepest nesting of arrays and objects; also bounds the reader's recursion (stack use).
        public var maxDepth: Int
        /// Longest text accepted.
        public var maxBytes: Int

        public init(maxDepth: Int = 64, maxBytes: Int = 16 << 20) {
            self.maxDepth = maxDepth
            self.maxBytes = maxBytes
        }
    }

    /// Parses `text`, which must hold exactly one JSON value (whitespace around it allowed; a leading UTF-8
    /// byte order mark is skipped, as RFC 8259 permits).
    public static func parse(_ text: some Collection<UInt8>, limits: Limits = Limits()) throws(JSONError) -> JSONValue {
        guard text.count <= limits.maxBytes else {
            throw JSONError("text of \(text.count) bytes is larger than the limit of \(limits.maxBytes)", at: limits.maxBytes)
        }
        var reader = JSONReader(bytes: Array(text), maxDepth: limits.maxDepth)
        if reader.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.at = 3 }
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.at == reader.bytes.count else { throw reader.fail("data after the JSON value") }
        return value
    }

    /// `parse` of a String's UTF-8.
    public static func parse(_ text: String, limits: Limits = Limits()) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), limits: limits)
    }

    private let bytes: [UInt8]
    private let maxDepth: Int
    private var at = 0

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    /// An error at `offset` (default: here); an empty reason means the text ended too early.
    private func fail(_ reason: String, at offset: Int? = nil) -> JSONError {
        JSONError(reason.isEmpty ? "unexpected end of text" : reason, at: offset ?? at)
    }

    private func unexpected(_ expected: String) -> JSONError {
        guard let byte = peek else { return fail("") }
        return fail("expected \(expected), found \(Self.shown(byte))")
    }

    /// A byte as an error message shows it: a visible ASCII character quoted, anything else in hex (one line).
    private static func shown(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    private mutating func skipSpace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { at += 1 }
    }

    private mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        switch peek {
        case UInt8(ascii: "{")?: return .object(try object(depth: depth + 1))
        case UInt8(ascii: "[")?: return .array(try array(depth: depth + 1))
        case UInt8(ascii: "\"")?: return .string(try string())
        case UInt8(ascii: "t")?: try literal("true"); return .bool(true)
        case UInt8(ascii: "f")?: try literal("false"); return .bool(false)
        case UInt8(ascii: "n")?: try literal("null"); return .null
        case UInt8(ascii: "-")?, (UInt8(ascii: "0")...UInt8(ascii: "9"))?: return .number(try number())
        default: throw unexpected("a value")
        }
    }

    private mutating func object(depth: Int) throws(JSONError) -> JSONObject {
        guard depth <= maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
        at += 1
        var object = JSONObject()
        skipSpace()
        if peek == UInt8(ascii: "}") { at += 1; return object }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw unexpected("a string key") }
            let keyOffset = at
            let key = try string()
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw unexpected("':' after an object key") }
            at += 1
            skipSpace()
            guard object.insertNew(key, try value(depth: depth)) else {
                throw fail("duplicate key \(JSONValue.string(String(key.prefix(64))).text())", at: keyOffset)
            }
            skipSpace()
            switch peek {
            case UInt8(ascii: ",")?: at += 1
            case UInt8(ascii: "}")?: at += 1; return object
            default: throw unexpected("',' or '}' after an object member")
            }
        }
    }

    private mutating func array(depth: Int) throws(JSONError) -> [JSONValue] {
        guard depth <= maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
        at += 1
        var elements: [JSONValue] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { at += 1; return elements }
        while true {
            skipSpace()
            elements.append(try value(depth: depth))
            skipSpace()
            switch peek {
            case UInt8(ascii: ",")?: at += 1
            case UInt8(ascii: "]")?: at += 1; return elements
            default: throw unexpected("',' or ']' after an array element")
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - at >= text.count, bytes[at..<at + text.count].elementsEqual(text) else {
            throw fail("invalid literal (expected \(word))")
        }
        at += text.count
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    private mutating func number() throws(JSONError) -> JSONNumber {
        let start = at
        func digits(_ reader: inout JSONReader) -> Int {
            let first = reader.at
            while let byte = reader.peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { reader.at += 1 }
            return reader.at - first
        }
        if peek == UInt8(ascii: "-") { at += 1 }
        if peek == UInt8(ascii: "0") {
            at += 1
            if let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { throw fail("number with a leading zero", at: start) }
        } else {
            guard digits(&self) > 0 else { throw unexpected("a digit") }
        }
        if peek == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw unexpected("a digit after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw unexpected("a digit in the exponent") }
        }
        return JSONNumber(literal: String(decoding: bytes[start..<at], as: UTF8.self))
    }

    /// A string token, decoded; raw bytes must be well-formed UTF-8 and escapes must make whole scalars.
    private mutating func string() throws(JSONError) -> String {
        at += 1
        var decoded: [UInt8] = []
        var plainFrom = at
        while true {
            guard let byte = peek else { throw fail("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                decoded += bytes[plainFrom..<at]
                at += 1
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                decoded += bytes[plainFrom..<at]
                try escape(into: &decoded)
                plainFrom = at
            case 0..<0x20:
                throw fail("control character U+00\(byte < 0x10 ? "0" : "")\(String(byte, radix: 16, uppercase: true)) in a string (it must be escaped)")
            case 0x80...:
                guard let length = utf8SequenceLength() else { throw fail("invalid UTF-8") }
                at += length
            default:
                at += 1
            }
        }
    }

    /// The well-formed UTF-8 sequence starting at `at` (Unicode table 3-7: no overlong forms, no surrogates,
    /// nothing above U+10FFFF): its length, or nil.
    private func utf8SequenceLength() -> Int? {
        let lead = bytes[at]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; second = 0x80...0x9F
        case 0xF0: length = 4; second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; second = 0x80...0x8F
        default: return nil
        }
        guard bytes.count - at >= length, second.contains(bytes[at + 1]) else { return nil }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[at + offset]) { return nil }
        return length
    }

    private mutating func escape(into decoded: inout [UInt8]) throws(JSONError) {
        let start = at
        at += 1
        guard let letter = peek else { throw fail("unterminated escape") }
        at += 1
        switch letter {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(letter)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xDC00...0xDFFF).contains(scalar) { throw fail("lone low surrogate \\u\(String(scalar, radix: 16))", at: start) }
            if (0xD800...0xDBFF).contains(scalar) {
                guard bytes.count - at >= 2, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                    throw fail("high surrogate \\u\(String(scalar, radix: 16)) without a low surrogate after it", at: start)
                }
                at += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw fail("high surrogate \\u\(String(scalar, radix: 16)) followed by \\u\(String(low, radix: 16)), not a low surrogate", at: start)
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            // Every value left is a valid scalar (surrogates are handled above).
            decoded += Array(String(Unicode.Scalar(scalar)!).utf8)
        default:
            throw fail("invalid escape: backslash followed by \(Self.shown(letter))", at: start)
        }
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek else { throw fail("") }
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("\\u escape needs four hex digits")
            }
            value = value << 4 | digit
            at += 1
        }
        return value
    }
}
