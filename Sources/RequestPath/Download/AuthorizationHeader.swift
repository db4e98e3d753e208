/// Reads an Authorization header of one scheme, comparing its credentials in constant time (basicAuth, the admin token).
package enum AuthorizationHeader {
    /// Whether `header` is `<scheme> <expected>`: the scheme case-insensitive (RFC 9110 §11.1: `basic`, `BASIC`), then
    /// one or more spaces. Time depends only on the lengths, never on where the bytes differ. `scheme` is lower-case.
    package static func carries(_ header: String?, scheme: String, expected: [UInt8]) -> Bool {
        let bytes = Array((header ?? "").utf8)
        let scheme = Array(scheme.utf8)
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
