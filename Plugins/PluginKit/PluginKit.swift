// PluginKit: turns a Swift storage or fetcher backend into the C tables of athens_plugin.h.
// Linked statically into each Swift plugin, so its globals are per plugin.
@_exported import PluginABI
import Foundation

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
    fileprivate let reader: UnsafePointer<ath_reader>

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
    fileprivate let sink: UnsafePointer<ath_sink>

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
public protocol StorageBackend: AnyObject, Sendable {
    func open(module: String, version: String, artifact: Artifact) throws(PluginFailure) -> BlobSource
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure)
    func exists(module: String, version: String) throws(PluginFailure) -> Bool
    func list(module: String) throws(PluginFailure) -> [String]
    func remove(module: String, version: String) throws(PluginFailure)
    /// One page after `token` ("" = first); `next` is "" on the last page.
    func catalog(token: String, pageSize: Int) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String)
}

/// A fetcher backend written in Swift. Every method may be called concurrently.
public protocol FetcherBackend: AnyObject, Sendable {
    func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink) throws(PluginFailure)
    func list(module: String) throws(PluginFailure) -> [String]
    func resolve(module: String, query: String, info: ByteSink) throws(PluginFailure)
}

/// Makes a backend from its JSON config text.
public typealias BackendFactory<Backend> = @Sendable (PluginConfig) throws(PluginFailure) -> Backend

/// The one registration per plugin image; the C entry points reach it through these globals because a
/// C function pointer cannot capture context.
nonisolated(unsafe) private var storageFactory: BackendFactory<any StorageBackend>?
nonisolated(unsafe) private var fetcherFactory: BackendFactory<any FetcherBackend>?
nonisolated(unsafe) private var descriptor: UnsafeMutablePointer<ath_plugin>?
private let registrationLock = NSLock()

/// Builds the static descriptors of Swift plugins.
public enum PluginEntry {
    /// The descriptor of a storage plugin; call from the plugin's `ath_plugin_query`.
    public static func storage(name: StaticString, hostABIMajor: UInt32,
                               factory: @escaping BackendFactory<any StorageBackend>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_STORAGE) { storageFactory = factory }
    }

    /// The descriptor of a fetcher plugin; call from the plugin's `ath_plugin_query`.
    public static func fetcher(name: StaticString, hostABIMajor: UInt32,
                               factory: @escaping BackendFactory<any FetcherBackend>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_FETCHER) { fetcherFactory = factory }
    }

    private static func register(name: StaticString, kind: ath_kind, setFactory: () -> Void) -> UnsafePointer<ath_plugin> {
        registrationLock.lock()
        defer { registrationLock.unlock() }
        if let descriptor { return UnsafePointer(descriptor) }
        setFactory()
        let plugin = UnsafeMutablePointer<ath_plugin>.allocate(capacity: 1)
        plugin.initialize(to: ath_plugin(
            magic: ATH_MAGIC,
            struct_size: UInt32(MemoryLayout<ath_plugin>.size),
            abi_major: ATH_ABI_MAJOR,
            abi_minor: ATH_ABI_MINOR,
            kind: kind,
            reserved: 0,
            name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
            toolchain: ath_swift_toolchain_id(),
            create: kind == ATH_KIND_STORAGE ? createStorage : createFetcher,
            destroy: { instance in
                guard let instance else { return }
                Unmanaged<AnyObject>.fromOpaque(instance).release()
            },
            storage: kind == ATH_KIND_STORAGE ? UnsafePointer(storageTable) : nil,
            fetcher: kind == ATH_KIND_FETCHER ? UnsafePointer(fetcherTable) : nil,
            create_with_host: nil,
            lock: nil))
        descriptor = plugin
        return UnsafePointer(plugin)
    }
}

// MARK: - C entry points

private func report(_ failure: PluginFailure, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    failure.message.withCString { ath_error_set(err, $0) }
    return failure.status == ATH_OK ? ATH_INTERNAL : failure.status
}

private func run(_ err: UnsafeMutablePointer<ath_error>, _ body: () throws(PluginFailure) -> Void) -> ath_status {
    do {
        try body()
        return ATH_OK
    } catch {
        return report(error, err)
    }
}

private let createStorage: @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<ath_error>) -> ath_status = { config, out, err in
    run(err) { () throws(PluginFailure) in
        guard let factory = storageFactory else { throw .internal("plugin not registered") }
        let backend = try factory(try PluginConfig(json: String(cString: config)))
        out.pointee = Unmanaged.passRetained(backend as AnyObject).toOpaque()
    }
}

private let createFetcher: @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<ath_error>) -> ath_status = { config, out, err in
    run(err) { () throws(PluginFailure) in
        guard let factory = fetcherFactory else { throw .internal("plugin not registered") }
        let backend = try factory(try PluginConfig(json: String(cString: config)))
        out.pointee = Unmanaged.passRetained(backend as AnyObject).toOpaque()
    }
}

private func storage(_ instance: UnsafeMutableRawPointer?) -> any StorageBackend {
    Unmanaged<AnyObject>.fromOpaque(instance!).takeUnretainedValue() as! any StorageBackend
}

private func fetcher(_ instance: UnsafeMutableRawPointer?) -> any FetcherBackend {
    Unmanaged<AnyObject>.fromOpaque(instance!).takeUnretainedValue() as! any FetcherBackend
}

/// Owns what a blob points at until the host releases it.
private final class BlobOwner {
    let fd: Int32
    let bytes: SharedBytes?
    let stream: (any BlobStream)?
    init(fd: Int32, bytes: SharedBytes?, stream: (any BlobStream)? = nil) {
        self.fd = fd
        self.bytes = bytes
        self.stream = stream
    }
    deinit { if fd >= 0 { close(fd) } }
}

nonisolated(unsafe) private let storageTable: UnsafeMutablePointer<ath_storage_methods> = {
    let table = UnsafeMutablePointer<ath_storage_methods>.allocate(capacity: 1)
    table.initialize(to: ath_storage_methods(
        struct_size: UInt32(MemoryLayout<ath_storage_methods>.size),
        reserved: 0,
        open: { instance, module, version, artifact, out, err in
            run(err) { () throws(PluginFailure) in
                guard let which = Artifact(artifact) else { throw .invalid("unknown artifact \(artifact.rawValue)") }
                let source = try storage(instance).open(module: String(cString: module), version: String(cString: version), artifact: which)
                var blob = ath_blob()
                blob.fd = -1
                switch source {
                case let .file(fd, offset, size):
                    blob.fd = fd
                    blob.offset = offset
                    blob.size = size
                    blob.private_data = Unmanaged.passRetained(BlobOwner(fd: fd, bytes: nil)).toOpaque()
                case let .memory(bytes, count):
                    blob.data = UnsafePointer(bytes.buffer.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    blob.size = UInt64(count)
                    blob.private_data = Unmanaged.passRetained(BlobOwner(fd: -1, bytes: bytes)).toOpaque()
                case let .stream(stream, size):
                    blob.size = size
                    blob.read = { owner, buffer, capacity in
                        let source = Unmanaged<BlobOwner>.fromOpaque(owner!).takeUnretainedValue().stream!
                        guard let n = source.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: Int(min(capacity, 1 << 30)))) else { return -1 }
                        return Int64(n)
                    }
                    blob.private_data = Unmanaged.passRetained(BlobOwner(fd: -1, bytes: nil, stream: stream)).toOpaque()
                }
                blob.release = { owner in Unmanaged<BlobOwner>.fromOpaque(owner!).release() }
                out.pointee = blob
            }
        },
        save: { instance, module, version, info, infoSize, mod, modSize, zip, err in
            run(err) { () throws(PluginFailure) in
                try storage(instance).save(
                    module: String(cString: module), version: String(cString: version),
                    info: Array(UnsafeBufferPointer(start: info, count: Int(infoSize))),
                    mod: Array(UnsafeBufferPointer(start: mod, count: Int(modSize))),
                    zip: ByteReader(size: zip.pointee.size, reader: zip))
            }
        },
        exists: { instance, module, version, out, err in
            run(err) { () throws(PluginFailure) in
                out.pointee = try storage(instance).exists(module: String(cString: module), version: String(cString: version)) ? 1 : 0
            }
        },
        list: { instance, module, emit, ctx, err in
            run(err) { () throws(PluginFailure) in
                for version in try storage(instance).list(module: String(cString: module)) {
                    if version.withCString({ emit(ctx, $0) }) != 0 { break }
                }
            }
        },
        remove: { instance, module, version, err in
            run(err) { () throws(PluginFailure) in
                try storage(instance).remove(module: String(cString: module), version: String(cString: version))
            }
        },
        catalog: { instance, token, pageSize, emit, ctx, nextToken, err in
            run(err) { () throws(PluginFailure) in
                let page = try storage(instance).catalog(token: String(cString: token), pageSize: Int(max(pageSize, 1)))
                guard page.next.utf8.count < ATH_CATALOG_TOKEN_CAPACITY else { throw .internal("catalog token too long") }
                for entry in page.entries {
                    let stop = entry.module.withCString { m in entry.version.withCString { v in emit(ctx, m, v) } }
                    if stop != 0 { break }
                }
                _ = page.next.withCString { strcpy(nextToken, $0) }
            }
        },
        open_ctx: nil, save_ctx: nil, exists_ctx: nil, list_ctx: nil, remove_ctx: nil, catalog_ctx: nil, url: nil))
    return table
}()

nonisolated(unsafe) private let fetcherTable: UnsafeMutablePointer<ath_fetcher_methods> = {
    let table = UnsafeMutablePointer<ath_fetcher_methods>.allocate(capacity: 1)
    table.initialize(to: ath_fetcher_methods(
        struct_size: UInt32(MemoryLayout<ath_fetcher_methods>.size),
        reserved: 0,
        fetch: { instance, module, version, info, mod, zip, err in
            run(err) { () throws(PluginFailure) in
                try fetcher(instance).fetch(module: String(cString: module), version: String(cString: version),
                                            info: ByteSink(sink: info), mod: ByteSink(sink: mod), zip: ByteSink(sink: zip))
            }
        },
        list: { instance, module, emit, ctx, err in
            run(err) { () throws(PluginFailure) in
                for version in try fetcher(instance).list(module: String(cString: module)) {
                    if version.withCString({ emit(ctx, $0) }) != 0 { break }
                }
            }
        },
        resolve: { instance, module, query, info, err in
            run(err) { () throws(PluginFailure) in
                try fetcher(instance).resolve(module: String(cString: module), query: String(cString: query), info: ByteSink(sink: info))
            }
        },
        fetch_ctx: nil, list_ctx: nil, resolve_ctx: nil))
    return table
}()
