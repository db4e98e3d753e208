/// The admin API's bearer token, compared in constant time (it is separate from `basicAuth`).
package struct AdminToken: Sendable {
    private let expected: [UInt8]

    package init(_ token: String) { expected = Array(token.utf8) }

    /// Whether an Authorization header is `Bearer <token>` (scheme in any case; constant-time compare).
    package func accepts(_ header: String?) -> Bool {
        AuthorizationHeader.carries(header, scheme: "bearer", expected: expected)
    }
}
