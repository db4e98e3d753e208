// An in-memory storage and a scripted fetcher behind the plugin C ABI, for the router fuzz target: no files,
// no network, so each input runs in microseconds. Their tables live in the fuzz binary; fuzz/glue/plugin_shim.c
// (built as two tiny .so files by run.sh) only forwards `ath_plugin_query` to `athens_fuzz_plugin`, so the host
// loads them through its real PluginLibrary checks without the host knowing about fuzzing.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PluginABI

/// Bytes kept alive while a blob handed out by `open` is held.
private final class Stored {
    let bytes: UnsafeMutableRawBufferPointer
    init(_ data: [UInt8]) {
        bytes = .allocate(byteCount: max(data.count, 1), alignment: 16)
        bytes.copyBytes(from: data)
        count = data.count
    }
    let count: Int
    deinit { bytes.deallocate() }
}

/// What the in-memory storage holds: module → version → (info, mod, zip). Reset before every input.
final class FuzzStorageState: @unchecked Sendable {
    struct Version { var info: [UInt8]; var mod: [UInt8]; var zip: [UInt8] }
    private let lock = NSLock()
    private var modules: [String: [String: Version]] = [:]

    func reset() { lock.withLock { modules = [:] } }
    func put(_ module: String, _ version: String, _ files: Version) { lock.withLock { modules[module, default: [:]][version] = files } }
    func get(_ module: String, _ version: String) -> Version? { lock.withLock { modules[module]?[version] } }
    func versions(_ module: String) -> [String] { lock.withLock { modules[module].map { Array($0.keys) } ?? [] } }
    func remove(_ module: String, _ version: String) -> Bool { lock.withLock { modules[module]?.removeValue(forKey: version) != nil } }
    /// Every stored (module, version), sorted as the catalog pages them.
    func all() -> [(module: String, version: String, files: Version)] {
        lock.withLock {
            modules.flatMap { module, versions in versions.map { (module, $0.key, $0.value) } }
                .sorted { ($0.module, $0.version) < ($1.module, $1.version) }
        }
    }
}

/// What the scripted fetcher answers; set before every input (only the request's own threads read it).
struct FetcherScript: Sendable {
    enum Fetch: Sendable {
        /// Valid files for the asked module@version (what an honest upstream sends).
        case honest
        /// ATH_NOT_FOUND / ATH_UNAVAILABLE / ATH_TIMEOUT.
        case status(ath_status)
        /// These bytes, whatever was asked (a lying or broken upstream).
        case bytes(info: [UInt8], mod: [UInt8], zip: [UInt8])
    }
    var fetch: Fetch = .honest
    /// What `list` emits; nil: ATH_NOT_FOUND.
    var list: [String]? = []
    /// The .info `resolve` writes; nil: ATH_NOT_FOUND.
    var resolve: [UInt8]?
}

let fuzzStorage = FuzzStorageState()
private let scriptLock = NSLock()
nonisolated(unsafe) private var currentScript = FetcherScript()
/// The fetcher's script for the next input.
func setFetcherScript(_ script: FetcherScript) { scriptLock.withLock { currentScript = script } }
private func script() -> FetcherScript { scriptLock.withLock { currentScript } }

/// The files an honest upstream sends for module@version: a .info, a go.mod, a one-file stored zip.
func honestFiles(module: String, version: String) -> FuzzStorageState.Version {
    let info = Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"}"#.utf8)
    let mod = Array("module \(module)\n".utf8)
    return .init(info: info, mod: mod, zip: storedZip(name: "\(module)@\(version)/go.mod", content: mod))
}

/// A zip with one stored (uncompressed) entry.
func storedZip(name: String, content: [UInt8]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
    let nameBytes = Array(name.utf8), crc = crc32(content), size = UInt32(content.count)
    let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc) + le32(size) + le32(size) + le16(nameBytes.count) + le16(0)
    let local = le32(0x0403_4B50) + common + nameBytes + content
    let central = le32(0x0201_4B50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + nameBytes
    let end = le32(0x0605_4B50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(UInt32(central.count)) + le32(UInt32(local.count)) + le16(0)
    return local + central + end
}

private let crcTable: [UInt32] = (0..<256).map { n in
    (0..<8).reduce(UInt32(n)) { c, _ in c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
}

func crc32(_ bytes: [UInt8]) -> UInt32 {
    ~bytes.reduce(~UInt32(0)) { crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
}

// MARK: - C tables

/// A table at a stable address for the rest of the process.
private func table<T>(_ value: T) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
    pointer.initialize(to: value)
    return pointer
}

private func fail(_ err: UnsafeMutablePointer<ath_error>, _ status: ath_status, _ message: String) -> ath_status {
    message.withCString { ath_error_set(err, $0) }
    return status
}

private func write(_ sink: UnsafePointer<ath_sink>, _ bytes: [UInt8]) -> Bool {
    bytes.isEmpty || bytes.withUnsafeBufferPointer { sink.pointee.write(sink.pointee.ctx, $0.baseAddress!, UInt64($0.count)) == 0 }
}

nonisolated(unsafe) private let storageTable = table(ath_storage_methods(
    struct_size: UInt32(MemoryLayout<ath_storage_methods>.size), reserved: 0,
    open: { _, module, version, artifact, out, err in
        guard let files = fuzzStorage.get(String(cString: module), String(cString: version)) else {
            return fail(err, ATH_NOT_FOUND, "not stored")
        }
        let data = artifact == ATH_ARTIFACT_INFO ? files.info : artifact == ATH_ARTIFACT_MOD ? files.mod : files.zip
        let stored = Stored(data)
        var blob = ath_blob()
        blob.fd = -1
        blob.size = UInt64(stored.count)
        blob.data = UnsafePointer(stored.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
        blob.private_data = Unmanaged.passRetained(stored).toOpaque()
        blob.release = { Unmanaged<Stored>.fromOpaque($0!).release() }
        out.pointee = blob
        return ATH_OK
    },
    save: { _, module, version, info, infoSize, mod, modSize, zip, err in
        let module = String(cString: module), version = String(cString: version)
        if fuzzStorage.get(module, version) != nil { return fail(err, ATH_ALREADY_EXISTS, "already stored") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBufferPointer { zip.pointee.read(zip.pointee.ctx, $0.baseAddress!, UInt64($0.count)) }
            if n < 0 { return fail(err, ATH_UNAVAILABLE, "the host failed while streaming the zip") }
            if n == 0 { break }
            bytes += buffer[0..<Int(n)]
        }
        guard UInt64(bytes.count) == zip.pointee.size else { return fail(err, ATH_INVALID, "zip length differs from its size") }
        fuzzStorage.put(module, version, .init(info: Array(UnsafeBufferPointer(start: info, count: Int(infoSize))),
                                               mod: Array(UnsafeBufferPointer(start: mod, count: Int(modSize))), zip: bytes))
        return ATH_OK
    },
    exists: { _, module, version, out, _ in
        out.pointee = fuzzStorage.get(String(cString: module), String(cString: version)) == nil ? 0 : 1
        return ATH_OK
    },
    list: { _, module, emit, ctx, _ in
        for version in fuzzStorage.versions(String(cString: module)) where version.withCString({ emit(ctx, $0) }) != 0 { break }
        return ATH_OK
    },
    remove: { _, module, version, err in
        fuzzStorage.remove(String(cString: module), String(cString: version)) ? ATH_OK : fail(err, ATH_NOT_FOUND, "not stored")
    },
    catalog: { _, token, pageSize, emit, ctx, next, err in
        // The token is "<index>" into the sorted entries.
        let token = String(cString: token)
        guard token.isEmpty || Int(token) != nil, let start = token.isEmpty ? 0 : Int(token), start >= 0 else {
            return fail(err, ATH_INVALID, "bad token")
        }
        let all = fuzzStorage.all()
        let end = start >= all.count ? start : min(all.count, start + Int(pageSize))
        if start < end {
            for entry in all[start..<end] where entry.module.withCString({ m in entry.version.withCString { emit(ctx, m, $0) } }) != 0 { break }
        }
        let nextToken = end < all.count ? String(end) : ""
        _ = nextToken.withCString { strcpy(next, $0) }
        return ATH_OK
    },
    // 1.0 entries only: the host calls them when the 1.1 twins are absent.
    open_ctx: nil, save_ctx: nil, exists_ctx: nil, list_ctx: nil, remove_ctx: nil, catalog_ctx: nil, url: nil))

nonisolated(unsafe) private let fetcherTable = table(ath_fetcher_methods(
    struct_size: UInt32(MemoryLayout<ath_fetcher_methods>.size), reserved: 0,
    fetch: { _, module, version, info, mod, zip, err in
        let files: FuzzStorageState.Version
        switch script().fetch {
        case .honest: files = honestFiles(module: String(cString: module), version: String(cString: version))
        case let .status(status): return fail(err, status, "scripted failure")
        case let .bytes(i, m, z): files = .init(info: i, mod: m, zip: z)
        }
        guard write(info, files.info), write(mod, files.mod), write(zip, files.zip) else { return fail(err, ATH_INVALID, "sink refused") }
        return ATH_OK
    },
    list: { _, _, emit, ctx, err in
        guard let versions = script().list else { return fail(err, ATH_NOT_FOUND, "unknown module") }
        for version in versions where version.withCString({ emit(ctx, $0) }) != 0 { break }
        return ATH_OK
    },
    resolve: { _, _, _, info, err in
        guard let bytes = script().resolve else { return fail(err, ATH_NOT_FOUND, "no such query") }
        return write(info, bytes) ? ATH_OK : fail(err, ATH_INVALID, "sink refused")
    },
    fetch_ctx: nil, list_ctx: nil, resolve_ctx: nil))

nonisolated(unsafe) private let instanceToken = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

private func descriptor(kind: ath_kind) -> UnsafeMutablePointer<ath_plugin> {
    let plugin = UnsafeMutablePointer<ath_plugin>.allocate(capacity: 1)
    let name: StaticString = kind == ATH_KIND_STORAGE ? "FuzzStorage" : "FuzzFetcher"
    plugin.initialize(to: ath_plugin(
        magic: ATH_MAGIC, struct_size: UInt32(MemoryLayout<ath_plugin>.size), abi_major: ATH_ABI_MAJOR, abi_minor: ATH_ABI_MINOR,
        kind: kind, reserved: 0, name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
        toolchain: ath_swift_toolchain_id(),
        create: { _, out, _ in out.pointee = instanceToken; return ATH_OK },
        destroy: { _ in },
        storage: kind == ATH_KIND_STORAGE ? UnsafePointer(storageTable) : nil,
        fetcher: kind == ATH_KIND_FETCHER ? UnsafePointer(fetcherTable) : nil,
        create_with_host: nil, lock: nil))
    return plugin
}

nonisolated(unsafe) private let storageDescriptor = descriptor(kind: ATH_KIND_STORAGE)
nonisolated(unsafe) private let fetcherDescriptor = descriptor(kind: ATH_KIND_FETCHER)

/// Called by plugin_shim.c's `ath_plugin_query`: 1 = the storage, 2 = the fetcher.
@_cdecl("athens_fuzz_plugin")
public func athensFuzzPlugin(_ hostABIMajor: UInt32, _ kind: Int32) -> UnsafeRawPointer? {
    guard hostABIMajor == ATH_ABI_MAJOR else { return nil }
    return UnsafeRawPointer(kind == 1 ? storageDescriptor : fetcherDescriptor)
}
