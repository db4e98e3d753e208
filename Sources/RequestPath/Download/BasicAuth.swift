import Digests

/// HTTP Basic credentials, compared in constant time.
package struct BasicAuth: Sendable {
    /// The base64 of "user:password", as the credentials after the scheme carry it.
    private let expected: [UInt8]

    package init(user: String, password: String) {
        expected = Array(Base64.encode(Array((user + ":" + password).utf8)).utf8)
    }

    /// Whether an Authorization header carries these credentials. The scheme is case-insensitive
    /// (RFC 9110 §11.1: `basic`, `BASIC`), then one or more spaces. Time depends only on the lengths.
    package func accepts(_ header: String?) -> Bool {
        let bytes = Array((header ?? "").utf8)
        let scheme = Array("basic".utf8)
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
