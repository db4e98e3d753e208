// AWS Signature Version 4: the Authorization header of a request, or the query of a presigned URL.
// Written from the published algorithm (docs.aws.amazon.com, "Signature Version 4 signing process") and checked
// against its test suite and S3's worked examples (Tests/AthensHostTests/SigV4Tests.swift).
#if canImport(Glibc)
import Glibc
import Digests
#endif

/// Access keys. Never printed: `description` hides them, so an accidental interpolation leaks nothing.
public struct S3Credentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public let accessKeyID: String
    public let secretAccessKey: String
    /// The temporary credentials' token (`AWS_SESSION_TOKEN`), sent as `x-amz-security-token`.
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "S3Credentials(redacted)" }
    public var debugDescription: String { description }
}

/// A signing time, in the two forms SigV4 uses.
public struct SigV4Date: Sendable, Equatable {
    /// `yyyyMMdd'T'HHmmss'Z'`, the `x-amz-date` value.
    public let stamp: String
    /// `yyyyMMdd`, the credential scope's date.
    public var day: String { String(stamp.prefix(8)) }

    /// The UTC time `seconds` after 1970.
    public init(secondsSince1970 seconds: Int) {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        stamp = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// The current time.
    public static func now() -> SigV4Date { SigV4Date(secondsSince1970: Int(time(nil))) }
}

/// The parts of SigV4 that do not depend on keys: RFC 3986 encoding and canonical forms.
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash of a request whose body is not signed (presigned URLs).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string, the payload hash of every request without a body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    private static let hexUpper = Array("0123456789ABCDEF".utf8)

    /// Percent-encodes every byte of `text`'s UTF-8 except the unreserved `A-Z a-z 0-9 - . _ ~` (and `/` when
    /// `keepingSlash`, for paths). S3 wants paths encoded once, never twice.
    public static func encode(_ text: String, keepingSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepingSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexUpper[Int(byte >> 4)])
                out.append(hexUpper[Int(byte & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `k=v&…` with keys and values encoded, sorted by encoded key then value: both the canonical query and
    /// the query string sent, so the two can never disagree.
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (encode($0.name), encode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) : $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Lower-case names, values trimmed with inner runs of spaces collapsed, duplicates joined with ",", sorted.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var merged: [String: String] = [:]
        var order: [String] = []
        for (name, value) in headers {
            let key = name.lowercased()
            let clean = collapseSpaces(value)
            if let existing = merged[key] {
                merged[key] = existing + "," + clean
            } else {
                merged[key] = clean
                order.append(key)
            }
        }
        return order.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { ($0, merged[$0]!) }
    }

    private static func collapseSpaces(_ value: String) -> String {
        var out: [UInt8] = []
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.append(UInt8(ascii: " ")) }
            pendingSpace = false
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Signs requests for one service in one region with one set of keys.
public struct SigV4Signer: Sendable {
    public let credentials: S3Credentials
    public let region: String
    public let service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to add to a request so it is signed: `X-Amz-Date`, `X-Amz-Security-Token` (with temporary
    /// credentials) and `Authorization`. `headers` are the ones to sign (at least `Host`); `encodedPath` is the path
    /// as sent (`SigV4.encode(path, keepingSlash: true)`); `query` unencoded.
    public func sign(method: String, encodedPath: String, query: [(name: String, value: String)],
                     headers: [(name: String, value: String)], payloadHash: String, date: SigV4Date) -> [(name: String, value: String)] {
        var added: [(name: String, value: String)] = [("X-Amz-Date", date.stamp)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        let canonical = SigV4.canonicalHeaders(headers + added)
        let signedHeaders = canonical.map(\.name).joined(separator: ";")
        let request = [method, encodedPath, SigV4.canonicalQuery(query),
                       canonical.map { "\($0.name):\($0.value)\n" }.joined(), signedHeaders, payloadHash].joined(separator: "\n")
        let signature = self.signature(canonicalRequest: request, date: date)
        added.append(("Authorization", "\(SigV4.algorithm) Credential=\(credentials.accessKeyID)/\(scope(date)), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return added
    }

    /// The query string of a presigned URL (everything after `?`): `query` plus the `X-Amz-*` parameters and the
    /// signature. Only `host` is signed; the payload is not. `expires` is in seconds (S3 allows 1...604800).
    public func presignedQuery(method: String, encodedPath: String, query: [(name: String, value: String)], host: String,
                               expires: Int, date: SigV4Date) -> String {
        var parameters = query + [
            ("X-Amz-Algorithm", SigV4.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(date))"),
            ("X-Amz-Date", date.stamp),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if let token = credentials.sessionToken { parameters.append(("X-Amz-Security-Token", token)) }
        let canonicalQuery = SigV4.canonicalQuery(parameters)
        let request = [method, encodedPath, canonicalQuery, "host:\(host)\n", "host", SigV4.unsignedPayload].joined(separator: "\n")
        return canonicalQuery + "&X-Amz-Signature=" + signature(canonicalRequest: request, date: date)
    }

    /// `<day>/<region>/<service>/aws4_request`.
    func scope(_ date: SigV4Date) -> String { "\(date.day)/\(region)/\(service)/aws4_request" }

    /// The hex signature of a canonical request.
    func signature(canonicalRequest: String, date: SigV4Date) -> String {
        let stringToSign = [SigV4.algorithm, date.stamp, scope(date), SHA256.hexHash(Array(canonicalRequest.utf8))].joined(separator: "\n")
        var key = HMACSHA256.mac(key: Array("AWS4\(credentials.secretAccessKey)".utf8), data: Array(date.day.utf8))
        for part in [region, service, "aws4_request"] { key = HMACSHA256.mac(key: key, data: Array(part.utf8)) }
        return Hex.encode(HMACSHA256.mac(key: key, data: Array(stringToSign.utf8)))
    }
}
