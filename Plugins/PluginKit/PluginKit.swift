// PluginKit: turns a Swift storage, fetcher or lock backend into the C tables of athens_plugin.h (ABI 1.1:
// every table carries both the 1.0 entries and their *_ctx twins, the descriptor both create and
// create_with_host, so one build serves 1.0 and 1.1 hosts). Linked statically into each Swift plugin, so its
// globals are per plugin.
@_exported import PluginABI
import Basics
import FoundationEssentials
import Glibc

/// Makes a backend from its JSON config text (`config.host` holds the host's services, when it gave them).
public typealias BackendFactory<Backend> = @Sendable (PluginConfig) throws(PluginFailure) -> Backend

/// The one registration per plugin image; the C entry points reach it through these globals because a
/// C function pointer cannot capture context.
nonisolated(unsafe) private var storageFactory: BackendFactory<any StorageBackend>?
nonisolated(unsafe) private var redirectingFactory: BackendFactory<any RedirectingStorage>?
nonisolated(unsafe) private var fetcherFactory: BackendFactory<any FetcherBackend>?
nonisolated(unsafe) private var lockFactory: BackendFactory<any LockBackend>?
nonisolated(unsafe) private var descriptor: UnsafeMutablePointer<ath_plugin>?
private let registrationLock = PosixLock()

/// Builds the static descriptors of Swift plugins.
public enum PluginEntry {
    /// The descriptor of a storage plugin; call from the plugin's `ath_plugin_query`.
    public static func storage(name: StaticString, hostABIMajor: UInt32,
                               factory: @escaping BackendFactory<any StorageBackend>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_STORAGE, create: createStorage, createWithHost: createStorageWithHost,
                        storage: storageTable) { storageFactory = factory }
    }

    /// The descriptor of a storage plugin whose table has a `url` entry (a redirecting storage).
    public static func redirectingStorage(name: StaticString, hostABIMajor: UInt32,
                                          factory: @escaping BackendFactory<any RedirectingStorage>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_STORAGE, create: createRedirecting, createWithHost: createRedirectingWithHost,
                        storage: redirectingStorageTable) { redirectingFactory = factory }
    }

    /// The descriptor of a fetcher plugin; call from the plugin's `ath_plugin_query`.
    public static func fetcher(name: StaticString, hostABIMajor: UInt32,
                               factory: @escaping BackendFactory<any FetcherBackend>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_FETCHER, create: createFetcher, createWithHost: createFetcherWithHost,
                        fetcher: fetcherTable) { fetcherFactory = factory }
    }

    /// The descriptor of a lock plugin (ABI 1.1; a 1.0 host refuses the kind); call from `ath_plugin_query`.
    public static func lock(name: StaticString, hostABIMajor: UInt32,
                            factory: @escaping BackendFactory<any LockBackend>) -> UnsafePointer<ath_plugin>? {
        guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
        return register(name: name, kind: ATH_KIND_LOCK, create: createLock, createWithHost: createLockWithHost,
                        lock: lockTable) { lockFactory = factory }
    }

    private static func register(name: StaticString, kind: ath_kind, create: CreateEntry, createWithHost: CreateWithHostEntry,
                                 storage: UnsafeMutablePointer<ath_storage_methods>? = nil,
                                 fetcher: UnsafeMutablePointer<ath_fetcher_methods>? = nil,
                                 lock: UnsafeMutablePointer<ath_lock_methods>? = nil,
                                 setFactory: () -> Void) -> UnsafePointer<ath_plugin> {
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
            create: create,
            destroy: { instance in
                guard let instance else { return }
                Unmanaged<AnyObject>.fromOpaque(instance).release()
            },
            storage: storage.map { UnsafePointer($0) },
            fetcher: fetcher.map { UnsafePointer($0) },
            create_with_host: createWithHost,
            lock: lock.map { UnsafePointer($0) }))
        descriptor = plugin
        return UnsafePointer(plugin)
    }
}

// MARK: - C entry points

/// What the host holds as the instance pointer: the backend and the host services it was created with.
private final class Instance<Backend> {
    let backend: Backend
    let host: HostServices
    init(_ backend: Backend, host: HostServices) {
        self.backend = backend
        self.host = host
    }
}

private func instance<Backend>(_ pointer: UnsafeMutableRawPointer?, _: Backend.Type) -> Instance<Backend> {
    Unmanaged<Instance<Backend>>.fromOpaque(pointer!).takeUnretainedValue()
}

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

/// `run` for an entry with a context: a failure once the host has cancelled the call is reported as
/// ATH_CANCELLED, or ATH_TIMEOUT once its deadline has passed (a sink refusing because of the cancellation is not
/// the backend's fault).
private func run(_ err: UnsafeMutablePointer<ath_error>, _ call: CallContext, _ body: (CallContext) throws(PluginFailure) -> Void) -> ath_status {
    do {
        try body(call)
        return ATH_OK
    } catch {
        if error.status != ATH_CANCELLED, error.status != ATH_TIMEOUT, call.isCancelled {
            // A 1.1 host's `cancelled` answers 1 past the deadline too; that one is ATH_TIMEOUT, as the ABI says.
            if call.remainingNanoseconds == 0 { return report(.timeout(error.message + " (past the call's deadline)"), err) }
            return report(.cancelled(error.message + " (the call was cancelled)"), err)
        }
        return report(error, err)
    }
}

private typealias CreateEntry = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<ath_error>) -> ath_status
private typealias CreateWithHostEntry = @convention(c) (UnsafePointer<ath_host>, UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<ath_error>) -> ath_status

/// Runs `factory` on the config and hands the host an `Instance` of what it made.
private func create<Backend>(_ factory: BackendFactory<Backend>?, _ host: UnsafePointer<ath_host>?, _ config: UnsafePointer<CChar>,
                             _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    run(err) { () throws(PluginFailure) in
        guard let factory else { throw .internal("plugin not registered") }
        let services = HostServices(host)
        let backend = try factory(try PluginConfig(json: String(cString: config), host: services))
        out.pointee = Unmanaged.passRetained(Instance(backend, host: services)).toOpaque()
    }
}

private let createStorage: CreateEntry = { create(storageFactory, nil, $0, $1, $2) }
private let createStorageWithHost: CreateWithHostEntry = { create(storageFactory, $0, $1, $2, $3) }
// A redirecting storage is held as `any StorageBackend` too, so that the shared storage entries find it.
private let createRedirecting: CreateEntry = { create(redirectingFactory.map(asStorage), nil, $0, $1, $2) }
private let createRedirectingWithHost: CreateWithHostEntry = { create(redirectingFactory.map(asStorage), $0, $1, $2, $3) }
private let createFetcher: CreateEntry = { create(fetcherFactory, nil, $0, $1, $2) }
private let createFetcherWithHost: CreateWithHostEntry = { create(fetcherFactory, $0, $1, $2, $3) }
private let createLock: CreateEntry = { create(lockFactory, nil, $0, $1, $2) }
private let createLockWithHost: CreateWithHostEntry = { create(lockFactory, $0, $1, $2, $3) }

private func asStorage(_ factory: @escaping BackendFactory<any RedirectingStorage>) -> BackendFactory<any StorageBackend> {
    { config throws(PluginFailure) in try factory(config) }
}

private func storage(_ pointer: UnsafeMutableRawPointer?) -> Instance<any StorageBackend> { instance(pointer, (any StorageBackend).self) }
private func fetcher(_ pointer: UnsafeMutableRawPointer?) -> Instance<any FetcherBackend> { instance(pointer, (any FetcherBackend).self) }
private func locks(_ pointer: UnsafeMutableRawPointer?) -> Instance<any LockBackend> { instance(pointer, (any LockBackend).self) }

/// The context of a 1.1 entry, or `.none` (with the instance's host services) for a 1.0 entry.
private func context(_ call: UnsafePointer<ath_call>?, _ host: HostServices) -> CallContext { CallContext(call, host: host) }

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

/// The ath_blob of a backend's answer to `open`.
private func blob(_ source: BlobSource) -> ath_blob {
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
    return blob
}

// Each storage entry exists once, taking an optional context: the 1.0 entry passes nil, its twin the host's.
private func storageOpen(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ version: UnsafePointer<CChar>,
                         _ artifact: ath_artifact, _ out: UnsafeMutablePointer<ath_blob>, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        guard let which = Artifact(artifact) else { throw .invalid("unknown artifact \(artifact.rawValue)") }
        out.pointee = blob(try box.backend.open(module: String(cString: module), version: String(cString: version), artifact: which, call: call))
    }
}

private func storageSave(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ version: UnsafePointer<CChar>,
                         _ info: UnsafePointer<UInt8>, _ infoSize: UInt64, _ mod: UnsafePointer<UInt8>, _ modSize: UInt64,
                         _ zip: UnsafePointer<ath_reader>, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        try box.backend.save(module: String(cString: module), version: String(cString: version),
                             info: Array(UnsafeBufferPointer(start: info, count: Int(infoSize))),
                             mod: Array(UnsafeBufferPointer(start: mod, count: Int(modSize))),
                             zip: ByteReader(size: zip.pointee.size, reader: zip), call: call)
    }
}

private func storageExists(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ version: UnsafePointer<CChar>,
                           _ out: UnsafeMutablePointer<Int32>, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        out.pointee = try box.backend.exists(module: String(cString: module), version: String(cString: version), call: call) ? 1 : 0
    }
}

private func storageList(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>,
                         _ emit: ath_emit_version_fn, _ ctx: UnsafeMutableRawPointer?, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        for version in try box.backend.list(module: String(cString: module), call: call) {
            if version.withCString({ emit(ctx, $0) }) != 0 { break }
        }
    }
}

private func storageRemove(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ version: UnsafePointer<CChar>,
                           _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        try box.backend.remove(module: String(cString: module), version: String(cString: version), call: call)
    }
}

private func storageCatalog(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ token: UnsafePointer<CChar>, _ pageSize: UInt32,
                            _ emit: ath_emit_module_version_fn, _ ctx: UnsafeMutableRawPointer?, _ nextToken: UnsafeMutablePointer<CChar>,
                            _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = storage(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        let page = try box.backend.catalog(token: String(cString: token), pageSize: Int(max(pageSize, 1)), call: call)
        guard page.next.utf8.count < ATH_CATALOG_TOKEN_CAPACITY else { throw .internal("catalog token too long") }
        for entry in page.entries {
            let stop = entry.module.withCString { m in entry.version.withCString { v in emit(ctx, m, v) } }
            if stop != 0 { break }  // next_token is then ignored by the host (the header's catalog rule)
        }
        _ = page.next.withCString { strcpy(nextToken, $0) }
    }
}

/// The storage table: 1.0 entries and their 1.1 twins; `url` only for redirecting storages.
private func makeStorageTable(redirecting: Bool) -> UnsafeMutablePointer<ath_storage_methods> {
    let table = UnsafeMutablePointer<ath_storage_methods>.allocate(capacity: 1)
    table.initialize(to: ath_storage_methods(
        struct_size: UInt32(MemoryLayout<ath_storage_methods>.size),
        reserved: 0,
        open: { storageOpen($0, nil, $1, $2, $3, $4, $5) },
        save: { storageSave($0, nil, $1, $2, $3, $4, $5, $6, $7, $8) },
        exists: { storageExists($0, nil, $1, $2, $3, $4) },
        list: { storageList($0, nil, $1, $2, $3, $4) },
        remove: { storageRemove($0, nil, $1, $2, $3) },
        catalog: { storageCatalog($0, nil, $1, $2, $3, $4, $5, $6) },
        open_ctx: { storageOpen($0, $1, $2, $3, $4, $5, $6) },
        save_ctx: { storageSave($0, $1, $2, $3, $4, $5, $6, $7, $8, $9) },
        exists_ctx: { storageExists($0, $1, $2, $3, $4, $5) },
        list_ctx: { storageList($0, $1, $2, $3, $4, $5) },
        remove_ctx: { storageRemove($0, $1, $2, $3, $4) },
        catalog_ctx: { storageCatalog($0, $1, $2, $3, $4, $5, $6, $7) },
        url: redirecting ? storageURL : nil))
    return table
}

nonisolated(unsafe) private let storageTable = makeStorageTable(redirecting: false)
nonisolated(unsafe) private let redirectingStorageTable = makeStorageTable(redirecting: true)

private let storageURL: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<ath_call>, UnsafePointer<CChar>, UnsafePointer<CChar>, ath_artifact,
                                        UnsafeMutablePointer<CChar>, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<ath_error>) -> ath_status = {
    pointer, call, module, version, artifact, out, valid, err in
    let box = storage(pointer)
    var declined = false
    let status = run(err, context(call, box.host)) { call throws(PluginFailure) in
        guard let which = Artifact(artifact) else { throw .invalid("unknown artifact \(artifact.rawValue)") }
        guard let backend = box.backend as? any RedirectingStorage else { throw .internal("not a redirecting storage") }
        guard let answer = try backend.url(module: String(cString: module), version: String(cString: version), artifact: which, call: call) else {
            declined = true
            return
        }
        let bytes = Array(answer.url.utf8)
        guard bytes.count < Int(ATH_URL_CAPACITY), answer.validSeconds >= 1,
              answer.url.hasPrefix("http://") || answer.url.hasPrefix("https://"),
              bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw .internal("url for \(String(cString: module))@\(String(cString: version)): not a printable absolute http(s) URL under \(ATH_URL_CAPACITY) bytes with a validity")
        }
        _ = answer.url.withCString { strcpy(out, $0) }
        valid.pointee = answer.validSeconds
    }
    if status == ATH_OK, declined {
        ath_error_set(err, "no URL for this artifact")
        return ATH_DECLINED
    }
    return status
}

private func fetcherFetch(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ version: UnsafePointer<CChar>,
                          _ info: UnsafePointer<ath_sink>, _ mod: UnsafePointer<ath_sink>, _ zip: UnsafePointer<ath_sink>,
                          _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = fetcher(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        try box.backend.fetch(module: String(cString: module), version: String(cString: version),
                              info: ByteSink(sink: info), mod: ByteSink(sink: mod), zip: ByteSink(sink: zip), call: call)
    }
}

private func fetcherList(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>,
                         _ emit: ath_emit_version_fn, _ ctx: UnsafeMutableRawPointer?, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = fetcher(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        for version in try box.backend.list(module: String(cString: module), call: call) {
            if version.withCString({ emit(ctx, $0) }) != 0 { break }
        }
    }
}

private func fetcherResolve(_ pointer: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?, _ module: UnsafePointer<CChar>, _ query: UnsafePointer<CChar>,
                            _ info: UnsafePointer<ath_sink>, _ err: UnsafeMutablePointer<ath_error>) -> ath_status {
    let box = fetcher(pointer)
    return run(err, context(call, box.host)) { call throws(PluginFailure) in
        try box.backend.resolve(module: String(cString: module), query: String(cString: query), info: ByteSink(sink: info), call: call)
    }
}

nonisolated(unsafe) private let fetcherTable: UnsafeMutablePointer<ath_fetcher_methods> = {
    let table = UnsafeMutablePointer<ath_fetcher_methods>.allocate(capacity: 1)
    table.initialize(to: ath_fetcher_methods(
        struct_size: UInt32(MemoryLayout<ath_fetcher_methods>.size),
        reserved: 0,
        fetch: { fetcherFetch($0, nil, $1, $2, $3, $4, $5, $6) },
        list: { fetcherList($0, nil, $1, $2, $3, $4) },
        resolve: { fetcherResolve($0, nil, $1, $2, $3, $4) },
        fetch_ctx: { fetcherFetch($0, $1, $2, $3, $4, $5, $6, $7) },
        list_ctx: { fetcherList($0, $1, $2, $3, $4, $5) },
        resolve_ctx: { fetcherResolve($0, $1, $2, $3, $4, $5) }))
    return table
}()

nonisolated(unsafe) private let lockTable: UnsafeMutablePointer<ath_lock_methods> = {
    let table = UnsafeMutablePointer<ath_lock_methods>.allocate(capacity: 1)
    table.initialize(to: ath_lock_methods(
        struct_size: UInt32(MemoryLayout<ath_lock_methods>.size),
        reserved: 0,
        acquire: { pointer, call, key, leaseMs, waitMs, out, err in
            let box = locks(pointer)
            return run(err, context(call, box.host)) { call throws(PluginFailure) in
                let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(key).assumingMemoryBound(to: UInt8.self), count: strlen(key)))
                guard !bytes.isEmpty, bytes.count <= Int(ATH_LOCK_KEY_MAX) else {
                    throw .invalid("lock key of \(bytes.count) bytes: must be 1...\(ATH_LOCK_KEY_MAX)")
                }
                guard leaseMs >= 1 else { throw .invalid("lease_ms must be at least 1") }
                let handle = try box.backend.acquire(key: bytes, leaseMs: leaseMs, waitMs: waitMs, call: call)
                guard handle != 0 else { throw .internal("the backend returned handle 0") }
                out.pointee = handle
            }
        },
        refresh: { pointer, call, handle, leaseMs, err in
            let box = locks(pointer)
            return run(err, context(call, box.host)) { call throws(PluginFailure) in
                guard leaseMs >= 1 else { throw .invalid("lease_ms must be at least 1") }
                try box.backend.refresh(handle: handle, leaseMs: leaseMs, call: call)
            }
        },
        release: { pointer, handle, err in
            let box = locks(pointer)
            return run(err) { () throws(PluginFailure) in try box.backend.release(handle: handle) }
        }))
    return table
}()
