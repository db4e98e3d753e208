import HostSupport
import Glibc
import PluginABI

/// Why a plugin file could not be used; `description` is one line naming the file and the cause.
package struct PluginLoadError: Error, Equatable, CustomStringConvertible {
    package var path: String
    package var reason: String
    package var description: String { "plugin \(path): \(reason)" }
}

/// Kind of a plugin, from its descriptor.
package enum PluginKind: Sendable, Equatable, CustomStringConvertible {
    case storage, fetcher, lock
    package var description: String {
        switch self {
        case .storage: "storage"
        case .fetcher: "fetcher"
        case .lock: "lock"
        }
    }
}

/// A plugin shared library, loaded once and never unloaded, whose descriptor passed every check.
///
/// Checks run in an order where each step may trust what the previous ones established: the file loads
/// (RTLD_NOW reports unresolved symbols now, not at the first call), the entry symbol exists, the plugin
/// accepts our ABI major, magic, ABI major, struct sizes, toolchain, then the required entries.
package final class PluginLibrary: @unchecked Sendable {
    /// Path as given (what messages name).
    package let path: String
    /// The file dlopen'ed: `path` itself, or the private copy `PluginStore` made of it.
    package let loadedFile: String
    /// The plugin's own name (`ath_plugin.name`).
    package let name: String
    package let kind: PluginKind
    /// ABI minor the plugin was built against.
    package let abiMinor: UInt32
    /// Copy of the descriptor, zero-filled past the plugin's `struct_size`.
    package let descriptor: ath_plugin
    /// Copy of the storage table (zero-filled past its `struct_size`), for storage plugins.
    package let storageMethods: ath_storage_methods?
    /// Copy of the fetcher table (zero-filled past its `struct_size`), for fetcher plugins.
    package let fetcherMethods: ath_fetcher_methods?
    /// Copy of the lock table (zero-filled past its `struct_size`), for lock plugins (ABI 1.1); set only in `init`.
    package private(set) var lockMethods: ath_lock_methods?

    /// Loads the plugin at `path`.
    ///
    /// The server and plugin-check load through `PluginStore.shared.library(at:)` instead, which maps a private
    /// copy (`file`) so that a plugin replaced on disk is loaded anew at a reload; this loads `path` itself.
    package init(path: String, loadingFrom file: String? = nil) throws(PluginLoadError) {
        self.path = path
        let file = file ?? path
        loadedFile = file
        func reject(_ reason: String) -> PluginLoadError { PluginLoadError(path: path, reason: reason) }

        _ = dlerror()
        // NODELETE: unloading a Swift image leaves dangling runtime metadata (its type metadata and conformances stay referenced by the runtime; docs/PLUGINS.md §3).
        let loaded = try GoRuntimeGuard.load(file, shownAs: path) { dlopen(file, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) }.get()
        guard let handle = loaded else {
            throw reject("cannot load: " + Self.lastDLError(stripping: file))
        }
        _ = dlerror()
        guard let symbol = dlsym(handle, ATH_PLUGIN_QUERY_SYMBOL) else {
            throw reject("no entry symbol \(ATH_PLUGIN_QUERY_SYMBOL): not an athens plugin")
        }
        let query = unsafeBitCast(symbol, to: ath_plugin_query_fn.self)
        guard let info = query(ATH_ABI_MAJOR) else {
            throw reject("declined host ABI major \(ATH_ABI_MAJOR)")
        }
        // Magic first: if it is wrong, no other field can be trusted.
        let raw = UnsafeRawPointer(info)
        let magic = raw.loadUnaligned(as: UInt32.self)
        guard magic == ATH_MAGIC else { throw reject("bad magic 0x\(String(magic, radix: 16)): not an athens plugin descriptor") }
        let declaredSize = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let major = raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard major == ATH_ABI_MAJOR else {
            throw reject("built for ABI \(major).x, host speaks ABI \(ATH_ABI_MAJOR).\(ATH_ABI_MINOR)")
        }
        // 1.0's fields are required; later ones (create_with_host, lock) read as absent past struct_size.
        guard declaredSize >= Self.requiredDescriptorSize else {
            throw reject("descriptor struct_size \(declaredSize) is smaller than ABI 1.0's \(Self.requiredDescriptorSize)")
        }
        let descriptor = Self.copy(ath_plugin.self, from: raw, declaredSize: declaredSize)
        // Reserved fields must be zero, so that a later minor can give them a meaning (athens_plugin.h).
        guard descriptor.reserved == 0 else { throw reject("descriptor field reserved is \(descriptor.reserved), must be 0") }
        self.descriptor = descriptor
        self.abiMinor = descriptor.abi_minor
        self.name = String(cString: descriptor.name)

        if let toolchain = descriptor.toolchain {
            let ours = String(cString: ath_swift_toolchain_id())
            let theirs = String(cString: toolchain)
            guard theirs == ours else {
                throw reject("built with toolchain \"\(theirs)\", host built with \"\(ours)\" (Swift plugins must come from the host's toolchain)")
            }
        }
        guard descriptor.create != nil else { throw reject("required entry create is NULL") }
        guard descriptor.destroy != nil else { throw reject("required entry destroy is NULL") }

        switch descriptor.kind {
        case ATH_KIND_STORAGE:
            kind = .storage
            guard let table = descriptor.storage else { throw reject("storage plugin without a storage table") }
            let size = UnsafeRawPointer(table).loadUnaligned(as: UInt32.self)
            // Only the required entries must lie inside the table; optional ones past its end read as absent.
            let needed = Self.requiredStorageSize
            guard size >= needed else {
                throw reject("storage table struct_size \(size) is smaller than the \(needed) bytes that ABI 1.0's required entries need")
            }
            let methods = Self.copy(ath_storage_methods.self, from: UnsafeRawPointer(table), declaredSize: size)
            guard methods.reserved == 0 else { throw reject("storage table field reserved is \(methods.reserved), must be 0") }
            let required: [(String, Bool)] = [("open", methods.open != nil), ("save", methods.save != nil),
                                              ("exists", methods.exists != nil), ("list", methods.list != nil),
                                              ("remove", methods.remove != nil)]
            if let missing = required.first(where: { !$0.1 }) { throw reject("required storage entry \(missing.0) is NULL") }
            storageMethods = methods
            fetcherMethods = nil
        case ATH_KIND_FETCHER:
            kind = .fetcher
            guard let table = descriptor.fetcher else { throw reject("fetcher plugin without a fetcher table") }
            let size = UnsafeRawPointer(table).loadUnaligned(as: UInt32.self)
            let needed = Self.requiredFetcherSize
            guard size >= needed else {
                throw reject("fetcher table struct_size \(size) is smaller than the \(needed) bytes that ABI 1.0's required entries need")
            }
            let methods = Self.copy(ath_fetcher_methods.self, from: UnsafeRawPointer(table), declaredSize: size)
            guard methods.reserved == 0 else { throw reject("fetcher table field reserved is \(methods.reserved), must be 0") }
            let required: [(String, Bool)] = [("fetch", methods.fetch != nil), ("list", methods.list != nil),
                                              ("resolve", methods.resolve != nil)]
            if let missing = required.first(where: { !$0.1 }) { throw reject("required fetcher entry \(missing.0) is NULL") }
            fetcherMethods = methods
            storageMethods = nil
        case ATH_KIND_LOCK:
            kind = .lock
            lockMethods = try Self.lockTable(descriptor, reject)
            storageMethods = nil
            fetcherMethods = nil
        default:
            throw reject("unknown plugin kind \(descriptor.kind.rawValue)")
        }
    }

    /// Bytes of `ath_plugin` in ABI 1.0 (through `fetcher`): every field a plugin of major 1 has.
    package static let requiredDescriptorSize = UInt32(MemoryLayout<ath_plugin>.offset(of: \ath_plugin.fetcher)!
                                               + MemoryLayout<UnsafeRawPointer>.size)
    /// Bytes of `ath_storage_methods` up to the end of its last required entry (`remove`); `catalog`, which
    /// follows, is optional and reads as absent in a table that stops before it.
    package static let requiredStorageSize = UInt32(MemoryLayout<ath_storage_methods>.offset(of: \ath_storage_methods.remove)!
                                            + MemoryLayout<UnsafeRawPointer>.size)
    /// Bytes of `ath_fetcher_methods` up to the end of its last required entry (`resolve`): the whole v1.0 table.
    package static let requiredFetcherSize = UInt32(MemoryLayout<ath_fetcher_methods>.offset(of: \ath_fetcher_methods.resolve)!
                                            + MemoryLayout<UnsafeRawPointer>.size)

    /// Bytes of `ath_lock_methods` up to the end of its last required entry (`release`): the whole 1.1 table.
    package static let requiredLockSize = UInt32(MemoryLayout<ath_lock_methods>.offset(of: \ath_lock_methods.release)!
                                         + MemoryLayout<UnsafeRawPointer>.size)

    /// The lock table of a lock descriptor, checked: big enough, `reserved` zero, acquire/refresh/release present.
    private static func lockTable(_ descriptor: ath_plugin, _ reject: (String) -> PluginLoadError) throws(PluginLoadError) -> ath_lock_methods {
        guard let table = descriptor.lock else { throw reject("lock plugin without a lock table") }
        let size = UnsafeRawPointer(table).loadUnaligned(as: UInt32.self)
        guard size >= requiredLockSize else {
            throw reject("lock table struct_size \(size) is smaller than the \(requiredLockSize) bytes that ABI 1.1's required entries need")
        }
        let methods = copy(ath_lock_methods.self, from: UnsafeRawPointer(table), declaredSize: size)
        guard methods.reserved == 0 else { throw reject("lock table field reserved is \(methods.reserved), must be 0") }
        let required: [(String, Bool)] = [("acquire", methods.acquire != nil), ("refresh", methods.refresh != nil),
                                          ("release", methods.release != nil)]
        if let missing = required.first(where: { !$0.1 }) { throw reject("required lock entry \(missing.0) is NULL") }
        return methods
    }

    /// Copies `min(declaredSize, sizeof T)` bytes into a zeroed T: fields past the plugin's size read as absent.
    private static func copy<T>(_: T.Type, from source: UnsafeRawPointer, declaredSize: UInt32) -> T {
        let result = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        defer { result.deallocate() }
        result.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        result.copyMemory(from: source, byteCount: min(Int(declaredSize), MemoryLayout<T>.size))
        return result.load(as: T.self)
    }

    /// dlerror() text without a leading "<path>: " (we print the path ourselves).
    private static func lastDLError(stripping path: String) -> String {
        guard let message = dlerror() else { return "unknown dlopen error" }
        let text = String(cString: message)
        return text.hasPrefix(path + ": ") ? String(text.dropFirst(path.count + 2)) : text
    }

}

/// One instance created by a plugin's constructor; destroyed when the last reference goes.
package final class PluginInstance: @unchecked Sendable {
    package let library: PluginLibrary
    /// The name the manifest uses for it.
    package let name: String
    /// The plugin's opaque instance, passed first to every table entry.
    package let pointer: UnsafeMutableRawPointer?

    /// Calls `create_with_host` (1.1, with `HostServices`) or else `create` with the plugin's JSON config;
    /// `expected` is the kind the caller needs.
    package init(library: PluginLibrary, configJSON: String, name: String?, expected: PluginKind) throws(PluginError) {
        // A manifest may name a plugin by its file ("/opt/athens/libX.so"); error bodies must not show clients that
        // path, so such an instance goes by the plugin's own name.
        let name = name.flatMap { $0.contains("/") || $0.hasSuffix(".so") ? nil : $0 } ?? library.name
        guard library.kind == expected else {
            throw PluginError(code: .invalid, plugin: name, operation: "create",
                              message: "\(library.path) is a \(library.kind) plugin, not a \(expected) plugin")
        }
        var error = ath_error.empty()
        var instance: UnsafeMutableRawPointer?
        let status = CrashReporter.during(CallLabel(kind: "\(expected)", plugin: name, entry: "create")) {
            configJSON.withCString { config in
                // 1.1: the variant with host services when the plugin has it, else 1.0's create (never both).
                if let createWithHost = library.descriptor.create_with_host {
                    return createWithHost(HostServices.host(for: library.name), config, &instance, &error)
                }
                return library.descriptor.create!(config, &instance, &error)
            }
        }
        guard status == ATH_OK else {
            throw PluginError(code: .init(status), plugin: name, operation: "create", message: error.text)
        }
        self.library = library
        self.name = name
        pointer = instance
    }

    deinit {
        CrashReporter.during(CallLabel(kind: "\(library.kind)", plugin: name, entry: "destroy")) { library.descriptor.destroy?(pointer) }
    }
}
