import HostSupport
import Glibc
import PluginABI

/// A storage plugin instance, called through its C table.
///
/// - Important: every method may be called from any thread, concurrently (the ABI promises it).
package final class StoragePlugin: Storage, @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_storage_methods
    /// The plugin's instance pointer, passed first to every call.
    private var instance: UnsafeMutableRawPointer? { created.pointer }
    /// The name the manifest uses for it.
    package var name: String { created.name }
    package var library: PluginLibrary { created.library }
    package var origin: String { created.library.path }

    /// How a crash names each entry (see `CrashReporter`).
    private let labels: Labels

    package struct Labels {
        package let open, save, exists, list, remove, catalog, blobRead, blobRelease: CallLabel

        package init(_ plugin: String) {
            func label(_ entry: String) -> CallLabel { CallLabel(kind: "storage", plugin: plugin, entry: entry) }
            (open, save, exists, list, remove) = (label("open"), label("save"), label("exists"), label("list"), label("remove"))
            (catalog, blobRead, blobRelease) = (label("catalog"), label("blob read"), label("blob release"))
        }
    }

    package init(library: PluginLibrary, configJSON: String, name: String? = nil) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: name, expected: .storage)
        methods = library.storageMethods!
        labels = Labels(created.name)
    }

    private func failure(_ status: ath_status, _ operation: String, _ error: ath_error) -> PluginError {
        PluginError(code: .init(status), plugin: name, operation: "storage." + operation, message: error.text, library: library.path)
    }

    /// One stored file; throws `.notFound` when the version is not stored.
    package func open(module: String, version: String, artifact: Artifact) throws(PluginError) -> Blob {
        var error = ath_error.empty()
        var raw = ath_blob()
        raw.fd = -1
        let status = module.withCString { m in
            version.withCString { v in
                CrashReporter.during(labels.open, module: m, version: v) {
                    // open has no caller context (it is quick, on the event loop): the twin gets the thread's request id.
                    if let twin = methods.open_ctx { return CallContext.withAmbientCCall { twin(instance, $0, m, v, artifact.cValue, &raw, &error) } }
                    return methods.open!(instance, m, v, artifact.cValue, &raw, &error)
                }
            }
        }
        guard status == ATH_OK else { throw failure(status, "open", error) }
        return try Blob(taking: raw, plugin: name, library: library.path, labels: (labels.blobRead, labels.blobRelease), owner: created)
    }

    /// Saves a version; the zip is read from `zipFD` (`zipSize` bytes from offset 0) with pread.
    /// `alreadyExists` is reported as success: the version is there either way.
    package func save(module: String, version: String, info: [UInt8], mod: [UInt8], zipFD: Int32, zipSize: UInt64, call: CallContext) throws(PluginError) {
        struct Source { var fd: Int32; var offset: UInt64; var size: UInt64 }
        var source = Source(fd: zipFD, offset: 0, size: zipSize)
        var error = ath_error.empty()
        let status: ath_status = withUnsafeMutablePointer(to: &source) { sourcePointer in
            var reader = ath_reader(size: zipSize, read: { ctx, buffer, capacity in
                let source = ctx!.assumingMemoryBound(to: Source.self)
                let remaining = source.pointee.size - source.pointee.offset
                let want = Int(min(capacity, remaining))
                if want == 0 { return 0 }
                let n = pread(source.pointee.fd, buffer, want, off_t(source.pointee.offset))
                if n <= 0 { return -1 }
                source.pointee.offset += UInt64(n)
                return Int64(n)
            }, ctx: UnsafeMutableRawPointer(sourcePointer))
            return module.withCString { m in
                version.withCString { v in
                    info.withUnsafeBufferPointer { i in
                        mod.withUnsafeBufferPointer { d in
                            // Non-empty base addresses: the ABI's pointers are non-null even for empty files.
                            let empty: UInt8 = 0
                            return withUnsafePointer(to: empty) { e in
                                CrashReporter.during(labels.save, module: m, version: v) {
                                    let (info, mod) = (i.baseAddress ?? e, d.baseAddress ?? e)
                                    if let twin = methods.save_ctx {
                                        return call.withCCall { twin(instance, $0, m, v, info, UInt64(i.count), mod, UInt64(d.count), &reader, &error) }
                                    }
                                    return methods.save!(instance, m, v, info, UInt64(i.count), mod, UInt64(d.count), &reader, &error)
                                }
                            }
                        }
                    }
                }
            }
        }
        if status == ATH_OK || status == ATH_ALREADY_EXISTS { return }
        throw failure(status, "save", error)
    }

    /// Whether the version is completely stored.
    package func exists(module: String, version: String, call: CallContext) throws(PluginError) -> Bool {
        var error = ath_error.empty()
        var out: Int32 = 0
        let status = module.withCString { m in
            version.withCString { v in
                CrashReporter.during(labels.exists, module: m, version: v) {
                    if let twin = methods.exists_ctx { return call.withCCall { twin(instance, $0, m, v, &out, &error) } }
                    return methods.exists!(instance, m, v, &out, &error)
                }
            }
        }
        guard status == ATH_OK else { throw failure(status, "exists", error) }
        return out != 0
    }

    /// Every stored version of `module`, unsorted.
    package func list(module: String, call: CallContext) throws(PluginError) -> [String] {
        var error = ath_error.empty()
        let collector = VersionCollector()
        let status = module.withCString { m in
            CrashReporter.during(labels.list, module: m) {
                if let twin = methods.list_ctx { return call.withCCall { twin(instance, $0, m, VersionCollector.emit, collector.context, &error) } }
                return methods.list!(instance, m, VersionCollector.emit, collector.context, &error)
            }
        }
        guard status == ATH_OK else { throw failure(status, "list", error) }
        return collector.versions
    }

    /// Deletes a version.
    package func remove(module: String, version: String, call: CallContext) throws(PluginError) {
        var error = ath_error.empty()
        let status = module.withCString { m in
            version.withCString { v in
                CrashReporter.during(labels.remove, module: m, version: v) {
                    if let twin = methods.remove_ctx { return call.withCCall { twin(instance, $0, m, v, &error) } }
                    return methods.remove!(instance, m, v, &error)
                }
            }
        }
        guard status == ATH_OK else { throw failure(status, "remove", error) }
    }

    /// Whether the plugin implements `catalog`.
    package var hasCatalog: Bool { methods.catalog != nil || methods.catalog_ctx != nil }

    /// One catalog page; `next` is "" on the last page.
    package func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginError) -> (entries: [(module: String, version: String)], next: String) {
        guard hasCatalog else {
            throw PluginError(code: .invalid, plugin: name, operation: "storage.catalog", message: "not implemented by this storage", library: library.path)
        }
        var error = ath_error.empty()
        var entries: [(module: String, version: String)] = []
        var next = [CChar](repeating: 0, count: Int(ATH_CATALOG_TOKEN_CAPACITY))
        let status = withUnsafeMutablePointer(to: &entries) { out in
            token.withCString { t in
                next.withUnsafeMutableBufferPointer { n in
                    CrashReporter.during(labels.catalog) {
                        let emit: ath_emit_module_version_fn = { ctx, module, version in
                            ctx!.assumingMemoryBound(to: [(module: String, version: String)].self).pointee
                                .append((String(cString: module), String(cString: version)))
                            return 0
                        }
                        let size = UInt32(clamping: pageSize)
                        if let twin = methods.catalog_ctx { return call.withCCall { twin(instance, $0, t, size, emit, out, n.baseAddress!, &error) } }
                        return methods.catalog!(instance, t, size, emit, out, n.baseAddress!, &error)
                    }
                }
            }
        }
        guard status == ATH_OK else { throw failure(status, "catalog", error) }
        guard entries.count <= pageSize else {
            throw PluginError(code: .contractViolation, plugin: name, operation: "storage.catalog", message: "returned \(entries.count) entries for a page of \(pageSize)", library: library.path)
        }
        next[next.count - 1] = 0
        let nextToken = next.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (entries, nextToken)
    }

    /// Redirect causes already logged (a storage failing every `url` logs each cause once).
    private let urlProblems = OnceLog()

    /// A time-limited URL for one stored file (ABI 1.1 `url`), or nil: no `url` entry, the storage declines this
    /// artifact, the version is not stored, or the call failed or wrote something unusable (logged once per cause).
    /// nil always means "serve the bytes": a redirect is an optimisation, never the only way to them.
    /// Quick (the ABI asks it of the plugin): called on the event loop.
    package func url(module: String, version: String, artifact: Artifact) -> (url: String, validSeconds: Int)? {
        // Inside the table's struct_size: the loader's copy is zero past it, so a 1.0 table reads as NULL here.
        guard let entry = methods.url else { return nil }
        var error = ath_error.empty()
        var valid: UInt32 = 0
        // The capacity the plugin is told; searched for its NUL within these bytes only, never read past.
        var buffer = [UInt8](repeating: 0, count: Int(ATH_URL_CAPACITY))
        let label = CallLabel(kind: "storage", plugin: name, entry: "url")
        let request = CrashReporter.currentRequest()
        let status = module.withCString { m in
            version.withCString { v in
                request.withCString { id in
                    // A minimal context: no deadline, never cancelled (url is quick and runs on the event loop).
                    var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: 0,
                                        request_id: id, cancelled: nil, host_data: nil)
                    return buffer.withUnsafeMutableBytes { out in
                        CrashReporter.during(label, module: m, version: v) {
                            entry(instance, &call, m, v, artifact.cValue, out.baseAddress!.assumingMemoryBound(to: CChar.self), &valid, &error)
                        }
                    }
                }
            }
        }
        switch status {
        case ATH_OK:
            switch buffer.withUnsafeBufferPointer({ RedirectURL.check($0, validSeconds: valid) }) {
            case let .success(target): return target
            case let .failure(refusal):
                urlProblems.error(cause: refusal.rawValue, "storage \(name): url wrote \(refusal.rawValue); serving bytes instead")
                return nil
            }
        case ATH_DECLINED, ATH_NOT_FOUND:
            return nil
        default:
            let failure = failure(status, "url", error)
            urlProblems.error(cause: "status \(status.rawValue)", "\(failure.description); serving bytes instead of redirecting")
            return nil
        }
    }
}
