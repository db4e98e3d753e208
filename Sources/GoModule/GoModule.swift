// GoModule: Go module rules (paths, versions, zips).
// Pure Swift, no Foundation: linked into the host and into plugins.

/// Failure with a message in the go command's words, e.g.
/// `malformed module path "x": missing dot in first path element`.
public struct ModuleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The whole message, worded as `golang.org/x/mod` words it.
    public var message: String

    /// The message, so that `"\(error)"` prints what the go command would print.
    public var description: String { message }

    /// Creates an error carrying `message` as is.
    public init(message: String) {
        self.message = message
    }

    /// Creates an error carrying `message` as is.
    public init(_ message: String) {
        self.message = message
    }
}

/// Go's `%q` quoting (`strconv.Quote`, `strconv.QuoteRune`), so that messages match the go command's byte for byte.
enum GoQuote {
    /// `strconv.Quote(s)`: double quotes, escapes for `"`, `\` and unprintable scalars.
    static func string(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            appendEscaped(scalar, quote: "\"", to: &out)
        }
        out.append("\"")
        return out
    }

    /// `strconv.QuoteRune(r)`: single quotes, escapes for `'`, `\` and unprintable scalars.
    static func rune(_ scalar: Unicode.Scalar) -> String {
        var out = "'"
        appendEscaped(scalar, quote: "'", to: &out)
        out.append("'")
        return out
    }

    /// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
    static func isPrint(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        // Go decides Latin-1 from a fixed table rather than the category tables: printable
        // ASCII, and U+00A1...U+00FF except the soft hyphen.
        if value <= 0xFF {
            if value >= 0x20 && value <= 0x7E { return true }
            if value >= 0xA1 && value <= 0xFF { return value != 0xAD }
            return false
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark,
             .decimalNumber, .letterNumber, .otherNumber,
             .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation,
             .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        default:
            return false
        }
    }

    /// Go's `unicode.IsLetter`: general category L.
    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return true
        default:
            return false
        }
    }

    private static let lowerHex: [Character] = Array("0123456789abcdef")

    private static func appendEscaped(_ scalar: Unicode.Scalar, quote: Unicode.Scalar, to out: inout String) {
        if scalar == quote || scalar == "\\" {
            out.append("\\")
            out.unicodeScalars.append(scalar)
            return
        }
        if isPrint(scalar) {
            out.unicodeScalars.append(scalar)
            return
        }
        let value = scalar.value
        switch value {
        case 0x07: out.append("\\a")
        case 0x08: out.append("\\b")
        case 0x0C: out.append("\\f")
        case 0x0A: out.append("\\n")
        case 0x0D: out.append("\\r")
        case 0x09: out.append("\\t")
        case 0x0B: out.append("\\v")
        default:
            if value < 0x20 || value == 0x7F {
                out.append("\\x")
                appendHex(value, digits: 2, to: &out)
            } else if value < 0x10000 {
                out.append("\\u")
                appendHex(value, digits: 4, to: &out)
            } else {
                out.append("\\U")
                appendHex(value, digits: 8, to: &out)
            }
        }
    }

    private static func appendHex(_ value: UInt32, digits: Int, to out: inout String) {
        var shift = (digits - 1) * 4
        while shift >= 0 {
            out.append(lowerHex[Int((value >> UInt32(shift)) & 0xF)])
            shift -= 4
        }
    }
}

/// Go's `utf8.DecodeRune` over bytes, so byte-level scanners can read one scalar where Go reads a rune.
enum GoUTF8 {
    /// The scalar starting at `index` and its length in bytes; `(0xFFFD, 1)` for a malformed sequence
    /// and `(0xFFFD, 0)` at the end, as Go answers.
    static func decode<Bytes: RandomAccessCollection>(_ bytes: Bytes, at index: Bytes.Index) -> (value: UInt32, length: Int)
    where Bytes.Element == UInt8 {
        guard index < bytes.endIndex else { return (0xFFFD, 0) }
        let b0 = UInt32(bytes[index])
        if b0 < 0x80 { return (b0, 1) }
        let available = bytes.distance(from: index, to: bytes.endIndex)
        func continuation(_ offset: Int) -> UInt32? {
            guard offset < available else { return nil }
            let byte = UInt32(bytes[bytes.index(index, offsetBy: offset)])
            return byte & 0xC0 == 0x80 ? byte & 0x3F : nil
        }
        if b0 >= 0xC2 && b0 <= 0xDF {
            guard let c1 = continuation(1) else { return (0xFFFD, 1) }
            return ((b0 & 0x1F) << 6 | c1, 2)
        }
        if b0 >= 0xE0 && b0 <= 0xEF {
            guard let c1 = continuation(1), let c2 = continuation(2) else { return (0xFFFD, 1) }
            let value = (b0 & 0x0F) << 12 | c1 << 6 | c2
            // Overlong forms and surrogates are malformed, as in Go.
            guard value >= 0x800, !(0xD800...0xDFFF).contains(value) else { return (0xFFFD, 1) }
            return (value, 3)
        }
        if b0 >= 0xF0 && b0 <= 0xF4 {
            guard let c1 = continuation(1), let c2 = continuation(2), let c3 = continuation(3) else { return (0xFFFD, 1) }
            let value = (b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
            guard value >= 0x10000, value <= 0x10FFFF else { return (0xFFFD, 1) }
            return (value, 4)
        }
        return (0xFFFD, 1)
    }
}
