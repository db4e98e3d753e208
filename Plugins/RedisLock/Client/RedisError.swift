/// Why a Redis call failed. Messages name the endpoint, never the password.
public enum RedisError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server cannot be reached or went away: refused, reset, closed, name not resolved.
    case unavailable(String)
    /// The call's deadline passed (connecting, waiting for a pooled connection, writing or reading).
    case timeout(String)
    /// The server sent something that is not canonical RESP2, or more than the reader's limits allow.
    case protocolError(String)
    /// The server answered with an error reply; the text is the server's (`ERR …`, `WRONGPASS …`, `NOSCRIPT …`).
    case server(String)
    /// The URL or an argument is not usable; nothing was sent.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .unavailable(let message): return "redis unavailable: \(message)"
        case .timeout(let message): return "redis timeout: \(message)"
        case .protocolError(let message): return "redis protocol error: \(message)"
        case .server(let message): return "redis error: \(message)"
        case .invalidArgument(let message): return "redis: \(message)"
        }
    }

    /// The error with every occurrence of `secret` replaced, for text a server may have echoed back.
    func redacting(_ secret: String?) -> RedisError {
        guard let secret, !secret.isEmpty else { return self }
        func scrub(_ text: String) -> String { text.replacing(secret, with: "***") }
        switch self {
        case .unavailable(let m): return .unavailable(scrub(m))
        case .timeout(let m): return .timeout(scrub(m))
        case .protocolError(let m): return .protocolError(scrub(m))
        case .server(let m): return .server(scrub(m))
        case .invalidArgument(let m): return .invalidArgument(scrub(m))
        }
    }

    /// True when the connection that saw this error can no longer be trusted (anything but a server error reply).
    var breaksConnection: Bool {
        if case .server = self { return false }
        return true
    }
}
