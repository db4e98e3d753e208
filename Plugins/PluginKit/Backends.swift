// PluginKit's Swift face: the backend protocols a plugin implements (storage, redirecting storage, fetcher,
// lock) and the values they exchange with the host (failures, blobs, readers, sinks). PluginKit.swift turns
// them into the C tables.
@_exported import PluginABI
import FoundationEssentials
import Glibc


/// A failure a backend reports; crosses the ABI as an `ath_status` plus a message.
public struct PluginFailure: Error, Sendable {
    /// The C status this failure becomes.
    public var status: ath_status
    /// What failed, and for which module@version.
    public var message: String

    public init(_ status: ath_status, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func notFound(_ message: String) -> PluginFailure { .init(ATH_NOT_FOUND, message) }
    public static func alreadyExists(_ message: String) -> PluginFailure { .init(ATH_ALREADY_EXISTS, message) }
    public static func invalid(_ message: String) -> PluginFailure { .init(ATH_INVALID, message) }
    public static func unavailable(_ message: String) -> PluginFailure { .init(ATH_UNAVAILABLE, message) }
    public static func timeout(_ message: String) -> PluginFailure { .init(ATH_TIMEOUT, message) }
    public static func `internal`(_ message: String) -> PluginFailure { .init(ATH_INTERNAL, message) }
    /// The call was cancelled by the host (1.1). The corresponding C value is `ATH_CANCELLED`.
    public static func cancelled(_ message: String) -> PluginFailure { .init(ATH_CANCELLED, message) }
    /// A lock stayed held by another for all of the wait (1.1). The corresponding C value is `ATH_BUSY`.
    public static func busy(_ message: String) -> PluginFailure { .init(ATH_BUSY, message) }
}

/// One of the three stored files of a module version.
public enum Artifact: Sendable {
    case info, mod, zip

    init?(_ raw: ath_artifact) {
        switch raw {
        case ATH_ARTIFACT_INFO: self = .info
        case ATH_ARTIFACT_MOD: self = .mod
        case ATH_ARTIFACT_ZIP: self = .zip
        default: return nil
        }
    }

    /// The file extension the GOPROXY protocol uses for it.
    public var fileExtension: String {
        switch self {
        case .info: ".info"
        case .mod: ".mod"
        case .zip: ".zip"
        }
    }
}

/// Immutable bytes at a stable address, shared by every reader until the last one releases them.
public final class SharedBytes: @unchecked Sendable {
    /// The bytes; never written after `init`.
    public let buffer: UnsafeMutableRawBufferPointer

    public init(copying bytes: some Collection<UInt8>) {
        buffer = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
    }

    /// Takes ownership of `buffer`, which must have been allocated with `.allocate`; `count` bytes are used.
    public init(adopting buffer: UnsafeMutableRawBufferPointer, count: Int) {
        self.buffer = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        precondition(count <= buffer.count)
    }

    deinit { buffer.deallocate() }
}

/// What storage `open` hands back; becomes an `ath_blob`.
public enum BlobSource: Sendable {
    /// `size` bytes at `offset` of `fd`; the fd is closed on release.
    case file(fd: Int32, offset: UInt64, size: UInt64)
    /// Bytes in memory, kept alive until release.
    case memory(SharedBytes, count: Int)
    /// Exactly `size` bytes pulled from `stream` (for backends whose bytes are not in a local file).
    case stream(any BlobStream, size: UInt64)
}

/// The pull side of a stream blob: the host calls `read` from one thread at a time (not always the same one)
/// until it returns 0.
public protocol BlobStream: AnyObject, Sendable {
    /// Writes the next bytes into `buffer` and returns how many (1...buffer.count), 0 at the end, nil on error.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int?
}

/// The zip the host hands to `save`: pull it to the end.
public struct ByteReader {
    /// Exact total length.
    public let size: UInt64
    let reader: UnsafePointer<ath_reader>

    /// Reads up to `buffer.count` bytes; returns 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(PluginFailure) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = reader.pointee.read(reader.pointee.ctx, base.assumingMemoryBound(to: UInt8.self), UInt64(buffer.count))
        guard n >= 0, n <= buffer.count else { throw .unavailable("the host failed while streaming the zip") }
        return Int(n)
    }
}

/// A host-provided sink a fetcher writes into.
public struct ByteSink {
    let sink: UnsafePointer<ath_sink>

    /// Writes all of `bytes`; throws when the host refuses more (e.g. over a size limit).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(PluginFailure) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if sink.pointee.write(sink.pointee.ctx, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count)) != 0 {
            throw .invalid("the host refused the data (size limit?)")
        }
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: some Sequence<UInt8>) throws(PluginFailure) {
        let array = Array(bytes)
        do {
            try array.withUnsafeBytes { raw in try self.write(raw) }
        } catch let failure as PluginFailure {
            throw failure
        } catch {
            throw .internal("\(error)")
        }
    }
}

/// A storage backend written in Swift. Every method may be called concurrently.
///
/// The methods with a `call:` context are what a 1.1 host calls; by default they forward to the ones without,
/// so a backend written for 1.0 keeps working unchanged. A backend that honours deadlines or cancellation
/// implements the `call:` variants (and the plain ones by passing `.none`).
public protocol StorageBackend: AnyObject, Sendable {
    func open(module: String, version: String, artifact: Artifact) throws(PluginFailure) -> BlobSource
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure)
    func exists(module: String, version: String) throws(PluginFailure) -> Bool
    func list(module: String) throws(PluginFailure) -> [String]
    func remove(module: String, version: String) throws(PluginFailure)
    /// One page after `token` ("" = first); `next` is "" on the last page.
    func catalog(token: String, pageSize: Int) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String)

    func open(module: String, version: String, artifact: Artifact, call: CallContext) throws(PluginFailure) -> BlobSource
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader, call: CallContext) throws(PluginFailure)
    func exists(module: String, version: String, call: CallContext) throws(PluginFailure) -> Bool
    func list(module: String, call: CallContext) throws(PluginFailure) -> [String]
    func remove(module: String, version: String, call: CallContext) throws(PluginFailure)
    func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String)
}

extension StorageBackend {
    public func open(module: String, version: String, artifact: Artifact, call: CallContext) throws(PluginFailure) -> BlobSource {
        try open(module: module, version: version, artifact: artifact)
    }
    public func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader, call: CallContext) throws(PluginFailure) {
        try save(module: module, version: version, info: info, mod: mod, zip: zip)
    }
    public func exists(module: String, version: String, call: CallContext) throws(PluginFailure) -> Bool {
        try exists(module: module, version: version)
    }
    public func list(module: String, call: CallContext) throws(PluginFailure) -> [String] { try list(module: module) }
    public func remove(module: String, version: String, call: CallContext) throws(PluginFailure) {
        try remove(module: module, version: version)
    }
    public func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String) {
        try catalog(token: token, pageSize: pageSize)
    }
}

/// A time-limited URL a client can GET an artifact's bytes from (storage `url`).
public struct RedirectURL: Sendable, Equatable {
    /// Absolute http:// or https:// URL, printable ASCII only.
    public var url: String
    /// Seconds from now during which it works (at least 1).
    public var validSeconds: UInt32

    public init(_ url: String, validSeconds: UInt32) {
        self.url = url
        self.validSeconds = validSeconds
    }
}

/// A storage that can send clients to the bytes instead of handing them to the host (ABI 1.1 `url`).
/// Register it with `PluginEntry.redirectingStorage`, so that only such plugins fill the table's `url` entry.
public protocol RedirectingStorage: StorageBackend {
    /// A URL for one stored file, or nil to decline for this artifact (the host then serves it through `open`).
    /// Throws `.notFound` when the version is not stored. Should be quick: the host may call it on its event loop.
    func url(module: String, version: String, artifact: Artifact, call: CallContext) throws(PluginFailure) -> RedirectURL?
}

/// A fetcher backend written in Swift. Every method may be called concurrently. The `call:` variants are what a
/// 1.1 host calls; by default they forward to the ones without (see `StorageBackend`).
public protocol FetcherBackend: AnyObject, Sendable {
    func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink) throws(PluginFailure)
    func list(module: String) throws(PluginFailure) -> [String]
    func resolve(module: String, query: String, info: ByteSink) throws(PluginFailure)

    func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink, call: CallContext) throws(PluginFailure)
    func list(module: String, call: CallContext) throws(PluginFailure) -> [String]
    func resolve(module: String, query: String, info: ByteSink, call: CallContext) throws(PluginFailure)
}

extension FetcherBackend {
    public func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink, call: CallContext) throws(PluginFailure) {
        try fetch(module: module, version: version, info: info, mod: mod, zip: zip)
    }
    public func list(module: String, call: CallContext) throws(PluginFailure) -> [String] { try list(module: module) }
    public func resolve(module: String, query: String, info: ByteSink, call: CallContext) throws(PluginFailure) {
        try resolve(module: module, query: query, info: info)
    }
}

/// A lock backend written in Swift (ABI 1.1, `ATH_KIND_LOCK`); see `ath_lock_methods` for leases, fairness and
/// `waitMs = 0`. Every method may be called concurrently.
public protocol LockBackend: AnyObject, Sendable {
    /// Takes the lock on `key` (1...ATH_LOCK_KEY_MAX bytes, no NUL, opaque) for `leaseMs`, waiting up to `waitMs`
    /// without spinning; returns a non-zero handle. Throws `.busy` when another holder kept it for all of `waitMs`
    /// (at once when 0), `.cancelled` / `.timeout` when `call` ends first.
    func acquire(key: [UInt8], leaseMs: UInt32, waitMs: UInt32, call: CallContext) throws(PluginFailure) -> UInt64
    /// Extends the lease to `leaseMs` from now; throws `.notFound` when the lock was lost.
    func refresh(handle: UInt64, leaseMs: UInt32, call: CallContext) throws(PluginFailure)
    /// Frees the lock and the handle, whatever happens.
    func release(handle: UInt64) throws(PluginFailure)
}
