// S3Storage: module versions in any S3-compatible object store (AWS S3, GCS interoperability, MinIO, Ceph RGW, ...),
// laid out as a GOPROXY tree under a prefix.
//
// Saving: the savers of one version take turns through `<version>.lock` (created with If-None-Match: *, refreshed
// while the zip uploads, taken over when older than its lease by the server's clock), write .mod and .zip (a
// multipart upload above partSizeBytes, aborted on failure), then commit by creating `.info` with If-None-Match: *.
// A version exists exactly when its .info does; every read checks that first, so leftovers of a crashed save
// (.mod, an unfinished upload) are never visible, and the next save overwrites them.
import FoundationEssentials
import Glibc
import GoModule
import HTTPClient
import PluginKit
import S3Core

@_cdecl("ath_plugin_query")
public func ath_plugin_query(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.redirectingStorage(name: "S3Storage", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try S3Storage(settings: S3Settings(config))
    }
}

/// The plugin's config (README "S3Storage" has the table).
struct S3Settings {
    var endpoint: S3Endpoint
    var region: String
    var prefix: S3Layout
    var credentials: S3Credentials
    var timeout: Duration
    var partSize: Int
    var retries: Int
    /// Seconds a presigned GET URL (storage `url`, `"serve": "redirect"`) stays valid.
    var urlSeconds: Int

    static let minPartSize = 5 << 20
    static let maxPartSize = 1 << 30

    init(_ config: PluginConfig) throws(PluginFailure) {
        region = try config.string("region") ?? "us-east-1"
        guard !region.isEmpty, region.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw .invalid("config.region: must be a region name such as us-east-1")
        }
        guard let bucket = try config.string("bucket"), !bucket.isEmpty else { throw .invalid("config.bucket: required") }
        let configuredEndpoint = try config.string("endpoint")
        let addressing: S3Endpoint.Addressing
        switch try config.string("addressing") {
        case nil: addressing = configuredEndpoint == nil ? .virtualHost : .path
        case let text?:
            guard let value = S3Endpoint.Addressing(rawValue: text) else { throw .invalid("config.addressing: must be \"path\" or \"virtual-host\"") }
            addressing = value
        }
        let configuredPrefix = try config.string("prefix") ?? ""
        do {
            endpoint = try S3Endpoint(endpoint: configuredEndpoint ?? "https://s3.\(region).amazonaws.com", bucket: bucket, addressing: addressing)
            prefix = try S3Layout(prefix: configuredPrefix)
        } catch {
            throw .invalid("config: \(error.message)")
        }
        // Keys from the config, else from the environment, as the AWS tools do; never echoed anywhere.
        let environment = ProcessInfo.processInfo.environment
        let accessKey = try config.string("accessKeyId") ?? environment["AWS_ACCESS_KEY_ID"]
        let secretKey = try config.string("secretAccessKey") ?? environment["AWS_SECRET_ACCESS_KEY"]
        let token = try config.string("sessionToken") ?? environment["AWS_SESSION_TOKEN"]
        guard let accessKey, !accessKey.isEmpty, let secretKey, !secretKey.isEmpty else {
            throw .invalid("config: no credentials (set accessKeyId and secretAccessKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        }
        credentials = S3Credentials(accessKeyID: accessKey, secretAccessKey: secretKey, sessionToken: token?.isEmpty == false ? token : nil)
        let seconds = try config.number("timeoutSeconds") ?? 30
        guard seconds >= 1, seconds <= 3600 else { throw .invalid("config.timeoutSeconds: must be between 1 and 3600") }
        timeout = .milliseconds(Int(seconds * 1000))
        let part = try config.number("partSizeBytes") ?? Double(Self.minPartSize)
        guard part >= Double(Self.minPartSize), part <= Double(Self.maxPartSize), part == part.rounded() else {
            throw .invalid("config.partSizeBytes: must be a whole number from \(Self.minPartSize) (S3's minimum part) to \(Self.maxPartSize)")
        }
        partSize = Int(part)
        let retries = try config.number("retries") ?? 3
        guard retries <= 10, retries == retries.rounded() else { throw .invalid("config.retries: must be a whole number from 0 to 10") }
        self.retries = Int(retries)
        let urlSeconds = try config.number("urlSeconds") ?? 300
        guard urlSeconds >= 1, urlSeconds <= 604_800, urlSeconds == urlSeconds.rounded() else {
            throw .invalid("config.urlSeconds: must be a whole number of seconds from 1 to 604800 (S3's limit for presigned URLs)")
        }
        self.urlSeconds = Int(urlSeconds)
        try config.finish()
    }
}

/// The storage backend.
final class S3Storage: RedirectingStorage, @unchecked Sendable {
    // @unchecked: all stored properties are immutable and thread-safe.
    let s3: S3Connection
    let layout: S3Layout
    let partSize: Int
    /// A lock older than this (by the server's clock) belongs to a saver that died; it is refreshed at a third of it.
    let lease: Double
    /// Validity of presigned GET URLs.
    let urlSeconds: Int

    /// Largest .info or .mod read whole (the host refuses bigger ones anyway).
    static let maxSmallFile: Int64 = 16 << 20

    init(settings: S3Settings) throws(PluginFailure) {
        s3 = S3Connection(endpoint: settings.endpoint, signer: SigV4Signer(credentials: settings.credentials, region: settings.region),
                          timeout: settings.timeout, retries: settings.retries)
        layout = settings.prefix
        partSize = settings.partSize
        lease = max(10, 2 * Double(settings.timeout.components.seconds))
        urlSeconds = settings.urlSeconds
        try checkBucket()
    }

    /// HEAD of the bucket: a missing bucket or wrong keys stop start-up with one line saying which.
    private func checkBucket() throws(PluginFailure) {
        let call = S3Call(method: .head, key: nil, idempotent: true)
        let place = "bucket \(s3.endpoint.bucket) at \(s3.endpoint.scheme)://\(s3.endpoint.authority)"
        let response: HTTPResponse
        do {
            response = try s3.send(call, in: .none)
        } catch {
            throw PluginFailure(error.status, "\(error.message) (cannot reach \(place))")
        }
        switch response.status {
        case 200: return
        case 404: throw .invalid("S3Storage: \(place) does not exist")
        case 403: throw .invalid("S3Storage: access to \(place) denied (wrong credentials, or no permission)")
        case 301, 307, 400: throw .invalid("S3Storage: \(place) answered HTTP \(response.status) (is the region right?)")
        default: throw .unavailable("S3Storage: HEAD \(place): HTTP \(response.status)")
        }
    }

    func keys(_ module: String, _ version: String) throws(PluginFailure) -> VersionKeys {
        do {
            return try layout.keys(module: module, version: version)
        } catch {
            throw .invalid(error.message)
        }
    }

    // MARK: - Reading

    /// The object's bytes, or nil if it does not exist.
    func get(_ key: String, maxBody: Int64 = S3Storage.maxSmallFile, in context: CallContext) throws(PluginFailure) -> [UInt8]? {
        let call = S3Call(method: .get, key: key, idempotent: true, maxBody: maxBody)
        let response = try s3.send(call, in: context)
        switch response.status {
        case 200: return response.body
        case 404: return nil
        default: throw S3Connection.failure(call, response)
        }
    }

    /// The object's head (status 200 or 404), throwing for anything else.
    func head(_ key: String, in context: CallContext) throws(PluginFailure) -> HTTPResponse? {
        let call = S3Call(method: .head, key: key, idempotent: true)
        let response = try s3.send(call, in: context)
        switch response.status {
        case 200: return response
        case 404: return nil
        default: throw S3Connection.failure(call, response)
        }
    }

    // The plain entries are what a 1.0 host calls: no deadline but the config's, never cancelled.
    func exists(module: String, version: String) throws(PluginFailure) -> Bool { try exists(module: module, version: version, call: .none) }
    func open(module: String, version: String, artifact: Artifact) throws(PluginFailure) -> BlobSource {
        try open(module: module, version: version, artifact: artifact, call: .none)
    }
    func list(module: String) throws(PluginFailure) -> [String] { try list(module: module, call: .none) }
    func remove(module: String, version: String) throws(PluginFailure) { try remove(module: module, version: version, call: .none) }
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure) {
        try save(module: module, version: version, info: info, mod: mod, zip: zip, call: .none)
    }
    func catalog(token: String, pageSize: Int) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String) {
        try catalog(token: token, pageSize: pageSize, call: .none)
    }

    func exists(module: String, version: String, call: CallContext) throws(PluginFailure) -> Bool {
        try head(try keys(module, version).info, in: call) != nil
    }

    func open(module: String, version: String, artifact: Artifact, call: CallContext) throws(PluginFailure) -> BlobSource {
        let keys = try keys(module, version)
        switch artifact {
        case .info:
            guard let bytes = try get(keys.info, in: call) else { throw .notFound("\(keys.description): not stored") }
            return .memory(SharedBytes(copying: bytes), count: bytes.count)
        case .mod:
            guard try head(keys.info, in: call) != nil, let bytes = try get(keys.mod, in: call) else { throw .notFound("\(keys.description): not stored") }
            return .memory(SharedBytes(copying: bytes), count: bytes.count)
        case .zip:
            guard try head(keys.info, in: call) != nil else { throw .notFound("\(keys.description): not stored") }
            let stream = try S3ZipStream(storage: self, key: keys.zip, what: keys.description, opening: call)
            return .stream(stream, size: stream.size)
        }
    }

    /// A presigned GET URL of the object, once the version's `.info` (its commit marker) exists: a URL for a
    /// version not (completely) stored would send the client to a 404 instead of letting the host fetch it.
    /// One HEAD, cheaper than `open`'s HEAD + GET; the signature itself is computed here, with no round trip.
    func url(module: String, version: String, artifact: Artifact, call: CallContext) throws(PluginFailure) -> RedirectURL? {
        let keys = try keys(module, version)
        guard try head(keys.info, in: call) != nil else { throw .notFound("\(keys.description): not stored") }
        let key = artifact == .info ? keys.info : artifact == .mod ? keys.mod : keys.zip
        let url = s3.endpoint.presignedGetURL(key: key, signer: s3.signer, expires: urlSeconds, date: .now())
        // The URL is valid from its signing time, which may be up to a second behind the server's.
        return RedirectURL(url, validSeconds: UInt32(max(1, urlSeconds - 1)))
    }

    func list(module: String, call: CallContext) throws(PluginFailure) -> [String] {
        let directory: String
        do {
            directory = try layout.directory(module: module)
        } catch {
            throw .invalid(error.message)
        }
        var versions: [String] = []
        var token: String?
        repeat {
            let page = try listPage(prefix: directory, delimiter: "/", continuation: token, startAfter: nil, maxKeys: 1000, in: call)
            versions += page.keys.compactMap { layout.version(ofInfoKey: $0, in: directory) }
            token = page.isTruncated ? page.nextContinuationToken : nil
        } while token != nil
        return versions
    }

    /// One ListObjectsV2 page.
    func listPage(prefix: String, delimiter: String?, continuation: String?, startAfter: String?, maxKeys: Int,
                  in context: CallContext) throws(PluginFailure) -> ListObjectsPage {
        var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(maxKeys))]
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let continuation { query.append(("continuation-token", continuation)) }
        if let startAfter { query.append(("start-after", startAfter)) }
        let call = S3Call(method: .get, key: nil, query: query, idempotent: true, maxBody: 8 << 20)
        let response = try s3.send(call, in: context)
        guard response.status == 200 else { throw S3Connection.failure(call, response) }
        do {
            return try ListObjectsPage(xml: response.body)
        } catch {
            throw .unavailable("S3Storage: list \(prefix): unreadable answer: \(error)")
        }
    }

    // MARK: - Removing

    func remove(module: String, version: String, call: CallContext) throws(PluginFailure) {
        let keys = try keys(module, version)
        guard try head(keys.info, in: call) != nil else { throw .notFound("\(keys.description): not stored") }
        // The commit marker first: the version disappears at once, whatever happens to the rest.
        for key in [keys.info, keys.mod, keys.zip] { try delete(key, in: call) }
    }

    func delete(_ key: String, in context: CallContext) throws(PluginFailure) {
        let call = S3Call(method: .delete, key: key, idempotent: true)
        let response = try s3.send(call, in: context)
        guard response.status == 204 || response.status == 200 || response.status == 404 else { throw S3Connection.failure(call, response) }
    }
}
