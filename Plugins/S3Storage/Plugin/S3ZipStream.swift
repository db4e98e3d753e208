// The zip of a stored version as a pull stream: ranged GETs of a few MiB, each pinned to the first answer's ETag.
import Basics
import FoundationEssentials
import Glibc
import PluginKit
import S3Core

/// Reads an object in chunks. The first chunk is fetched by `init` (which also learns the size), so an object
/// that fits in one chunk is held whole and stays readable even if the version is removed meanwhile.
final class S3ZipStream: BlobStream, @unchecked Sendable {
    // @unchecked: the host reads a blob from one thread at a time (ath_blob), so the mutable cursor is never shared.
    /// Bytes per ranged GET: bounds the memory of one open zip.
    static let chunkSize: UInt64 = 1 << 20

    let size: UInt64
    private let storage: S3Storage
    private let key: String
    private let what: String
    private let etag: String?
    private var chunk: [UInt8]
    private var chunkStart: UInt64 = 0
    private var used = 0

    /// `opening` bounds the first ranged GET; later chunks have only the config's timeout (the host pulls them
    /// after `open` returned, when its context is gone).
    init(storage: S3Storage, key: String, what: String, opening: CallContext) throws(PluginFailure) {
        self.storage = storage
        self.key = key
        self.what = what
        let call = S3Call(method: .get, key: key, headers: [("Range", "bytes=0-\(Self.chunkSize - 1)")], idempotent: true,
                          maxBody: Int64(Self.chunkSize))
        let response = try storage.s3.send(call, in: opening)
        switch response.status {
        case 206:
            guard let total = Self.total(response.headers["Content-Range"]), UInt64(response.body.count) == min(total, Self.chunkSize) else {
                throw .unavailable("S3Storage: \(call.what): unusable Content-Range in a 206 answer")
            }
            size = total
        case 200:
            size = UInt64(response.body.count)
        case 416:
            // A range of an empty object cannot be satisfied: the object is empty (or gone, which a HEAD tells).
            guard let head = try storage.head(key, in: opening) else { throw .notFound("\(what): .zip missing") }
            guard head.headers["Content-Length"] == "0" else { throw .unavailable("S3Storage: \(call.what): 416 for a non-empty object") }
            size = 0
        case 404:
            throw .notFound("\(what): .zip missing")
        default:
            throw S3Connection.failure(call, response)
        }
        chunk = response.status == 416 ? [] : response.body
        etag = response.headers["ETag"]
    }

    /// TOTAL of "bytes START-END/TOTAL".
    private static func total(_ contentRange: String?) -> UInt64? {
        guard let contentRange, let slash = contentRange.lastIndex(of: "/") else { return nil }
        return UInt64(contentRange[contentRange.index(after: slash)...].trimmingWhitespace)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        if used == chunk.count {
            let next = chunkStart + UInt64(chunk.count)
            if next >= size { return 0 }
            let last = min(next + Self.chunkSize, size) - 1
            var headers: [(name: String, value: String)] = [("Range", "bytes=\(next)-\(last)")]
            // The object must not change under a reader: a replaced object answers 412 and the read fails.
            if let etag { headers.append(("If-Match", etag)) }
            let call = S3Call(method: .get, key: key, headers: headers, idempotent: true, maxBody: Int64(Self.chunkSize))
            guard let response = try? storage.s3.send(call, in: .none), response.status == 206,
                  UInt64(response.body.count) == last - next + 1 else { return nil }
            chunk = response.body
            chunkStart = next
            used = 0
        }
        let n = min(buffer.count, chunk.count - used)
        chunk.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + used, byteCount: n)
        }
        used += n
        return n
    }
}
