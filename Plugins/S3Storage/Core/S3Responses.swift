// The S3 answers S3Storage reads, decoded from their XML; each refuses a document of another kind.

/// One page of ListObjectsV2.
public struct ListObjectsPage: Equatable, Sendable {
    /// The keys of the page, in the server's (bytewise) order.
    public var keys: [String]
    /// With a delimiter: the rolled-up prefixes.
    public var commonPrefixes: [String]
    public var isTruncated: Bool
    /// Present when `isTruncated`.
    public var nextContinuationToken: String?

    /// Decodes a `ListBucketResult`.
    public init(xml bytes: [UInt8]) throws(XMLError) {
        let root = try XMLReader.parse(bytes)
        guard root.name == "ListBucketResult" else { throw XMLError(message: "expected ListBucketResult, got \(root.name)", offset: 0) }
        keys = try root.children("Contents").map { contents throws(XMLError) in
            guard let key = contents.value("Key") else { throw XMLError(message: "Contents without Key", offset: 0) }
            return key
        }
        commonPrefixes = root.children("CommonPrefixes").compactMap { $0.value("Prefix") }
        switch root.value("IsTruncated") {
        case "true": isTruncated = true
        case "false", nil: isTruncated = false
        case let other?: throw XMLError(message: "IsTruncated is \(other.debugDescription)", offset: 0)
        }
        nextContinuationToken = root.value("NextContinuationToken")
        if isTruncated, nextContinuationToken?.isEmpty ?? true {
            throw XMLError(message: "truncated page without NextContinuationToken", offset: 0)
        }
    }
}

/// S3's `<Error>` document.
public struct S3ErrorDocument: Equatable, Sendable {
    /// E.g. "NoSuchKey", "SlowDown", "PreconditionFailed".
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// Decodes an `Error`.
    public init(xml bytes: [UInt8]) throws(XMLError) {
        let root = try XMLReader.parse(bytes)
        guard root.name == "Error" else { throw XMLError(message: "expected Error, got \(root.name)", offset: 0) }
        guard let code = root.value("Code"), !code.isEmpty else { throw XMLError(message: "Error without Code", offset: 0) }
        self.code = code
        message = root.value("Message") ?? ""
    }
}

/// The answer to CreateMultipartUpload.
public struct InitiatedUpload: Equatable, Sendable {
    public var uploadID: String

    public init(xml bytes: [UInt8]) throws(XMLError) {
        let root = try XMLReader.parse(bytes)
        guard root.name == "InitiateMultipartUploadResult" else {
            throw XMLError(message: "expected InitiateMultipartUploadResult, got \(root.name)", offset: 0)
        }
        guard let id = root.value("UploadId"), !id.isEmpty else { throw XMLError(message: "no UploadId", offset: 0) }
        uploadID = id
    }
}

/// The answer to CompleteMultipartUpload, which S3 may send with status 200 and an `<Error>` body.
public enum CompletedUpload: Equatable, Sendable {
    case completed(etag: String)
    case failed(S3ErrorDocument)

    public init(xml bytes: [UInt8]) throws(XMLError) {
        let root = try XMLReader.parse(bytes)
        switch root.name {
        case "CompleteMultipartUploadResult":
            self = .completed(etag: root.value("ETag") ?? "")
        case "Error":
            self = .failed(try S3ErrorDocument(xml: bytes))
        default:
            throw XMLError(message: "expected CompleteMultipartUploadResult, got \(root.name)", offset: 0)
        }
    }

    /// The request body that completes an upload from its parts' ETags (part numbers 1...n in order).
    public static func requestBody(etags: [String]) -> [UInt8] {
        let parts = etags.enumerated().map { index, etag in
            XMLNode(name: "Part", children: [XMLNode(name: "PartNumber", text: String(index + 1)), XMLNode(name: "ETag", text: etag)])
        }
        return Array(XMLNode(name: "CompleteMultipartUpload", children: parts).serialized().utf8)
    }
}
