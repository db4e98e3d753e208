import Digests

/// HTTP Basic credentials, compared in constant time.
package struct BasicAuth: Sendable {
    /// The base64 of "user:password", as the credentials after the scheme carry it.
    private let expected: [UInt8]

    package init(user: String, password: String) {
        expected = Array(Base64.encode(Array((user + ":" + password).utf8)).utf8)
    }

    /// Whether an Authorization header carries these credentials (scheme `Basic`, any case; constant-time compare).
    package func accepts(_ header: String?) -> Bool {
        AuthorizationHeader.carries(header, scheme: "basic", expected: expected)
    }
}
