// A small XML reader for S3's answers: elements, character data, entities, CDATA; comments, processing
// instructions and attributes are skipped; DOCTYPE (and so every user-defined entity) is refused.
// Input comes from the network, so it is bounded (depth, size of the caller's body limit) and never trusted.

/// One element: its local name (any `prefix:` dropped), all its character data concatenated, and its children.
public struct XMLNode: Equatable, Sendable {
    public var name: String
    public var text: String
    public var children: [XMLNode]

    public init(name: String, text: String = "", children: [XMLNode] = []) {
        self.name = name
        self.text = text
        self.children = children
    }

    /// The first child called `name`.
    public func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// Every child called `name`.
    public func children(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }

    /// The text of the first child called `name`.
    public func value(_ name: String) -> String? { child(name)?.text }

    /// `<name>text children</name>`, text escaped; what the reader reads back to an equal node.
    public func serialized() -> String {
        var out = "<\(name)>" + XMLNode.escape(text)
        for child in children { out += child.serialized() }
        return out + "</\(name)>"
    }

    /// Escapes the characters that cannot stand for themselves in character data or attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Why a document was refused, with the byte offset.
public struct XMLError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "XML: \(message) at byte \(offset)" }
}

/// Parses one document into its root element.
public struct XMLReader {
    /// Deepest nesting accepted; S3's answers are at most four levels deep.
    public static let maxDepth = 32

    private let bytes: [UInt8]
    private var at = 0

    /// The root element of `bytes`, or the reason it is not a document this reader accepts.
    public static func parse(_ bytes: [UInt8]) throws(XMLError) -> XMLNode {
        var reader = XMLReader(bytes: bytes)
        return try reader.document()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ message: String) -> XMLError { XMLError(message: message, offset: at) }

    private var atEnd: Bool { at >= bytes.count }

    private func peek(_ literal: String) -> Bool {
        let utf8 = literal.utf8
        guard bytes.count - at >= utf8.count else { return false }
        return bytes[at..<(at + utf8.count)].elementsEqual(utf8)
    }

    private mutating func skipSpace() {
        while !atEnd, Self.isSpace(bytes[at]) { at += 1 }
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    private mutating func document() throws(XMLError) -> XMLNode {
        if peek("\u{FEFF}") { at += 3 }
        try misc()
        guard !atEnd, bytes[at] == UInt8(ascii: "<") else { throw fail("expected the root element") }
        let root = try element(depth: 1)
        try misc()
        guard atEnd else { throw fail("content after the root element") }
        return root
    }

    /// Whitespace, comments and processing instructions (outside the root element).
    private mutating func misc() throws(XMLError) {
        while true {
            skipSpace()
            if peek("<?") {
                try skip(past: "?>")
            } else if peek("<!--") {
                try skip(past: "-->")
            } else if peek("<!") {
                throw fail("DOCTYPE and other declarations are not accepted")
            } else {
                return
            }
        }
    }

    private mutating func skip(past terminator: String) throws(XMLError) {
        let start = at
        while !atEnd {
            if peek(terminator) {
                at += terminator.utf8.count
                return
            }
            at += 1
        }
        at = start
        throw fail("unterminated construct (missing \(terminator))")
    }

    private static func isNameByte(_ b: UInt8, first: Bool) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), UInt8(ascii: ":"), 0x80...0xFF:
            return true
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
            return !first
        default:
            return false
        }
    }

    private mutating func name() throws(XMLError) -> String {
        let start = at
        guard !atEnd, Self.isNameByte(bytes[at], first: true) else { throw fail("expected a name") }
        while !atEnd, Self.isNameByte(bytes[at], first: false) { at += 1 }
        guard let name = String(validating: bytes[start..<at], as: UTF8.self) else { throw fail("name is not UTF-8") }
        return name
    }

    /// The local part of a qualified name (the whole name when nothing name-like follows its last colon).
    private static func local(_ name: String) -> String {
        guard let colon = name.lastIndex(of: ":") else { return name }
        let rest = name[name.index(after: colon)...]
        guard let first = rest.utf8.first, isNameByte(first, first: true), first != UInt8(ascii: ":") else { return name }
        return String(rest)
    }

    private mutating func element(depth: Int) throws(XMLError) -> XMLNode {
        guard depth <= Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
        at += 1 // "<"
        let qualified = try name()
        try attributes()
        if peek("/>") {
            at += 2
            return XMLNode(name: Self.local(qualified))
        }
        guard !atEnd, bytes[at] == UInt8(ascii: ">") else { throw fail("expected > after the start tag of \(qualified)") }
        at += 1
        var node = XMLNode(name: Self.local(qualified))
        var text: [UInt8] = []
        while true {
            guard !atEnd else { throw fail("unterminated element \(qualified)") }
            let b = bytes[at]
            if b == UInt8(ascii: "<") {
                if peek("</") {
                    at += 2
                    let closing = try name()
                    guard closing == qualified else { throw fail("</\(closing)> closes <\(qualified)>") }
                    skipSpace()
                    guard !atEnd, bytes[at] == UInt8(ascii: ">") else { throw fail("expected > after </\(closing)") }
                    at += 1
                    break
                } else if peek("<![CDATA[") {
                    at += 9
                    let start = at
                    try skip(past: "]]>")
                    text += bytes[start..<(at - 3)]
                } else if peek("<!--") {
                    try skip(past: "-->")
                } else if peek("<?") {
                    try skip(past: "?>")
                } else if peek("<!") {
                    throw fail("declarations are not accepted inside elements")
                } else {
                    node.children.append(try element(depth: depth + 1))
                }
            } else if b == UInt8(ascii: "&") {
                try reference(into: &text)
            } else {
                text.append(b)
                at += 1
            }
        }
        guard let decoded = String(validating: text, as: UTF8.self) else { throw fail("text of \(qualified) is not UTF-8") }
        node.text = decoded
        return node
    }

    /// Skips `name="value"` pairs (S3 only sends xmlns); checks their shape and references.
    private mutating func attributes() throws(XMLError) {
        while true {
            let hadSpace = !atEnd && Self.isSpace(bytes[at])
            skipSpace()
            guard !atEnd else { throw fail("unterminated start tag") }
            if bytes[at] == UInt8(ascii: ">") || peek("/>") { return }
            guard hadSpace else { throw fail("expected space before an attribute") }
            _ = try name()
            skipSpace()
            guard !atEnd, bytes[at] == UInt8(ascii: "=") else { throw fail("expected = in an attribute") }
            at += 1
            skipSpace()
            guard !atEnd, bytes[at] == UInt8(ascii: "\"") || bytes[at] == UInt8(ascii: "'") else {
                throw fail("expected a quoted attribute value")
            }
            let quote = bytes[at]
            at += 1
            var ignored: [UInt8] = []
            while true {
                guard !atEnd else { throw fail("unterminated attribute value") }
                let b = bytes[at]
                if b == quote { at += 1; break }
                if b == UInt8(ascii: "<") { throw fail("< in an attribute value") }
                if b == UInt8(ascii: "&") { try reference(into: &ignored) } else { at += 1 }
            }
        }
    }

    /// `&lt;` and the other four predefined entities, `&#NN;`, `&#xHH;`.
    private mutating func reference(into text: inout [UInt8]) throws(XMLError) {
        let start = at
        at += 1
        var body: [UInt8] = []
        while !atEnd, bytes[at] != UInt8(ascii: ";"), body.count < 12 {
            body.append(bytes[at])
            at += 1
        }
        guard !atEnd, bytes[at] == UInt8(ascii: ";") else {
            at = start
            throw fail("unterminated or overlong reference")
        }
        at += 1
        let scalar: Unicode.Scalar?
        switch String(decoding: body, as: UTF8.self) {
        case "lt": scalar = "<"
        case "gt": scalar = ">"
        case "amp": scalar = "&"
        case "quot": scalar = "\""
        case "apos": scalar = "'"
        case let other where other.hasPrefix("#x"):
            scalar = Self.number(other.dropFirst(2), radix: 16).flatMap(Self.character)
        case let other where other.hasPrefix("#"):
            scalar = Self.number(other.dropFirst(), radix: 10).flatMap(Self.character)
        default:
            scalar = nil
        }
        guard let scalar else {
            at = start
            throw fail("unknown or invalid reference")
        }
        text += Array(String(Character(scalar)).utf8)
    }

    /// Digits only (no sign, no spaces), at most 8 of them.
    private static func number(_ digits: Substring, radix: Int) -> UInt32? {
        guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy({ $0.isASCII && $0.isHexDigit && (radix == 16 || $0.isNumber) }) else {
            return nil
        }
        return UInt32(digits, radix: radix)
    }

    /// A character XML allows: a Unicode scalar that is not NUL (nor other C0 controls but tab, LF, CR).
    private static func character(_ value: UInt32) -> Unicode.Scalar? {
        guard value >= 0x20 || value == 0x09 || value == 0x0A || value == 0x0D else { return nil }
        return Unicode.Scalar(value)
    }
}
