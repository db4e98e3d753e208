// JSONNumber: a number as written, so integers stay exact however long they are.

/// A JSON number, kept as its literal (RFC 8259 grammar, checked by JSONReader).
public struct JSONNumber: Equatable, Sendable {
    /// The number exactly as written, e.g. `-12`, `1.5e3`.
    public let literal: String

    /// `literal` must follow the JSON number grammar (JSONReader guarantees it).
    public init(literal: String) { self.literal = literal }

    public init(_ value: Int) { literal = String(value) }

    /// The nearest Double; ±infinity for literals beyond Double's range (check `isFinite`).
    public var double: Double { Double(literal) ?? .nan }

    /// The value as an Int when it is an integer that fits: exact for integer literals of any length;
    /// `1.0` and `1e2` count too, when the Double they make is an integer below 2^53 (so still exact).
    public var int: Int? {
        if !literal.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            return Int(literal)
        }
        let value = double
        guard value.isFinite, value == value.rounded(), abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }
}
