/// The admin API's bearer token, compared in constant time (it is separate from `basicAuth`).
package struct AdminToken: Sendable {
    private let expected: [UInt8]

    package init(_ token: String) { expected = Array(token.utf8) }

    /// Whether an Authorization header is `Bearer <token>`. The scheme is case-insensitive (RFC 9110 §11.1),
    /// then one or more spaces. Time depends only on the lengths, never on where the bytes differ.
    package func accepts(_ header: String?) -> Bool {
        let bytes = Array((header ?? "").utf8)
        let scheme = Array("bearer".utf8)
        guard bytes.count > scheme.count, bytes[scheme.count] == 0x20,
              zip(bytes, scheme).allSatisfy({ $0 | 0x20 == $1 }) else { return false }
        var start = scheme.count
        while start < bytes.count && bytes[start] == 0x20 { start += 1 }
        let given = bytes[start...]
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for i in 0..<expected.count {
            difference |= expected[i] ^ (i < given.count ? given[given.startIndex + i] : 0)
        }
        return difference == 0
    }
}
