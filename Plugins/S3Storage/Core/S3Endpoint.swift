// Where requests go: the endpoint, the bucket and how the bucket is addressed; and presigned GET URLs.

/// One bucket at one endpoint. Builds the `Host` header, the encoded path and the URL of every request.
public struct S3Endpoint: Sendable {
    /// Path style (`http://host/bucket/key`, what MinIO and RGW need by default) or virtual-host style
    /// (`https://bucket.host/key`, what AWS prefers).
    public enum Addressing: String, Sendable {
        case path
        case virtualHost = "virtual-host"
    }

    /// "http" or "https".
    public let scheme: String
    /// `host[:port]` of the endpoint, without the bucket.
    public let authority: String
    public let bucket: String
    public let addressing: Addressing

    /// `endpoint` is `http[s]://host[:port]` (a trailing "/" is allowed; nothing else after the authority).
    public init(endpoint: String, bucket: String, addressing: Addressing) throws(LayoutError) {
        let scheme: String
        if endpoint.hasPrefix("https://") {
            scheme = "https"
        } else if endpoint.hasPrefix("http://") {
            scheme = "http"
        } else {
            throw LayoutError(message: "endpoint must start with http:// or https://")
        }
        var authority = String(endpoint.dropFirst(scheme.count + 3))
        if authority.hasSuffix("/") { authority.removeLast() }
        guard !authority.isEmpty, authority.utf8.allSatisfy({ Self.isAuthorityByte($0) }) else {
            throw LayoutError(message: "endpoint must be scheme://host[:port] with no path, query or user:password")
        }
        let dnsBucket = (3...63).contains(bucket.utf8.count) && bucket.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E
        } && bucket.first != "." && bucket.first != "-" && bucket.last != "." && bucket.last != "-"
        guard dnsBucket || (addressing == .path && (1...255).contains(bucket.utf8.count)
                            && bucket.utf8.allSatisfy { Self.isAuthorityByte($0) && $0 != 0x3A && $0 != 0x5B && $0 != 0x5D }) else {
            throw LayoutError(message: "bucket \(bucket.debugDescription) is not a valid bucket name"
                + (addressing == .virtualHost ? " for virtual-host addressing (3-63 of a-z 0-9 . -)" : ""))
        }
        self.scheme = scheme
        self.authority = authority
        self.bucket = bucket
        self.addressing = addressing
    }

    private static func isAuthorityByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
            || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x3A || b == 0x5B || b == 0x5D
    }

    /// The `Host` header value.
    public var host: String { addressing == .path ? authority : bucket + "." + authority }

    /// The request path: of the bucket when `key` is nil, else of the object; percent-encoded once.
    public func encodedPath(key: String?) -> String {
        let bucketPart = addressing == .path ? "/" + SigV4.encode(bucket) : ""
        guard let key else { return bucketPart.isEmpty ? "/" : bucketPart }
        return bucketPart + "/" + SigV4.encode(key, keepingSlash: true)
    }

    /// The full URL of a request (the query in canonical order, as signed).
    public func url(encodedPath: String, query: [(name: String, value: String)]) -> String {
        let base = scheme + "://" + host + encodedPath
        return query.isEmpty ? base : base + "?" + SigV4.canonicalQuery(query)
    }

    /// A URL anyone can GET `key` with for `expires` seconds (1...604800), without credentials.
    /// The storage `url` entry of ABI 1.1 hands these out for `"serve": "redirect"`.
    public func presignedGetURL(key: String, signer: SigV4Signer, expires: Int, date: SigV4Date) -> String {
        let path = encodedPath(key: key)
        let query = signer.presignedQuery(method: "GET", encodedPath: path, query: [], host: host,
                                          expires: min(max(expires, 1), 604_800), date: date)
        return scheme + "://" + host + path + "?" + query
    }
}
