/// Where and how to connect: parsed from a URL, with timeouts, pool size and reply limits.
///
/// URLs: `redis://[[user]:password@]host[:port][/db]` (host a name, an IPv4 address or `[IPv6]`; port 6379 by
/// default; db 0 by default) and `unix:///path/to/redis.sock[?db=N][&password=P][&user=U]`. Percent escapes are
/// decoded in the user, password and path. `rediss://` (TLS) is refused: this client speaks plain TCP only.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    /// A TCP host (name or address, resolved with getaddrinfo) and port, or a unix socket path.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: UInt16)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    /// Redis 6 ACL user; nil sends the one-argument `AUTH password`.
    public var username: String?
    public var password: String?
    public var database: Int
    /// Connecting (resolve, TCP/unix connect, AUTH, SELECT) must finish within this.
    public var connectTimeoutMs: Int = 2000
    /// Default deadline of one call (pool wait, connect, write, read), unless the call gives its own.
    public var commandTimeoutMs: Int = 5000
    /// Most open connections; callers beyond it wait for one to come back (within their deadline).
    public var poolSize: Int = 8
    public var limits = RESPLimits()

    public init(endpoint: Endpoint, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// The endpoint and db, without credentials (for logs and error messages).
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port): return "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)"
        }
    }

    public init(url: String) throws(RedisError) {
        func bad(_ why: String) -> RedisError {
            // The URL may hold a password: the message names the problem, not the text.
            .invalidArgument("bad redis URL: \(why)")
        }
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            var query: Substring = ""
            if let mark = rest.firstIndex(of: "?") { query = rest[rest.index(after: mark)...]; rest = rest[..<mark] }
            guard let path = RedisConfiguration.percentDecode(rest), path.hasPrefix("/") else {
                throw bad("unix:// needs an absolute socket path (unix:///path/to/redis.sock)")
            }
            guard path.utf8.count < 108 else { throw bad("unix socket path longer than 107 bytes") }
            self.init(endpoint: .unix(path: path))
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let value = RedisConfiguration.percentDecode(parts[1]) else { throw bad("malformed query") }
                switch parts[0] {
                case "db":
                    guard let db = Int(value), db >= 0, db < 1 << 20 else { throw bad("db must be a non-negative integer") }
                    database = db
                case "password": password = value
                case "user": username = value
                default: throw bad("unknown query parameter (known: db, password, user)")
                }
            }
            return
        }
        if url.hasPrefix("rediss://") { throw bad("rediss:// (TLS) is not supported") }
        guard url.hasPrefix("redis://") else { throw bad("scheme must be redis:// or unix://") }
        var rest = Substring(url.dropFirst("redis://".count))
        var user: String?, pass: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else { throw bad("credentials must be [user]:password@") }
            guard let u = RedisConfiguration.percentDecode(credentials[..<colon]),
                  let p = RedisConfiguration.percentDecode(credentials[credentials.index(after: colon)...]) else {
                throw bad("malformed percent escape in the credentials")
            }
            user = u.isEmpty ? nil : u
            pass = p
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let value = Int(dbText), value >= 0, value < 1 << 20, !dbText.hasPrefix("+") else { throw bad("db must be a non-negative integer") }
                db = value
            }
        }
        guard !rest.contains("?") else { throw bad("redis:// URLs take no query") }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated [IPv6] host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "%") }) else { throw bad("missing or malformed host") }
        var port: UInt16 = 6379
        if let portText {
            guard let value = UInt16(portText), value > 0, portText.allSatisfy(\.isNumber) else { throw bad("port must be 1-65535") }
            port = value
        }
        self.init(endpoint: .tcp(host: String(host), port: port), username: user, password: pass, database: db)
    }

    /// Decodes %XX escapes; nil for a malformed escape or invalid UTF-8.
    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte != UInt8(ascii: "%") { bytes.append(byte); continue }
            guard iterator.count >= 2, iterator.prefix(2).allSatisfy({ UInt8(ascii: "0")...UInt8(ascii: "9") ~= $0 || UInt8(ascii: "a")...UInt8(ascii: "f") ~= $0 | 0x20 }),
                  let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            iterator = iterator.dropFirst(2)
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
