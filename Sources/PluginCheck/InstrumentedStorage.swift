import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// A storage plugin instance called through its C table directly, with every call audited.
///
/// `StoragePlugin` is the production wrapper and trusts the plugin once it loaded; this one is for
/// plugin-check and distrusts it: error buffers are guarded (`ErrorAudit`), blobs are checked for their
/// shape and counted (`BlobLedger`), the output blob of a failed open must stay untouched, and catalog
/// tokens must be NUL-terminated within their capacity.
package final class InstrumentedStorage: @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_storage_methods
    private var instance: UnsafeMutableRawPointer? { created.pointer }
    /// Error-buffer violations.
    package let errors = ErrorAudit()
    /// Blob shape and release accounting.
    package let blobs = BlobLedger()
    /// Misuse of the zip reader (not read to its end before OK, overlapping calls).
    package let readerProblems = ProblemLog()
    /// Catalog token violations.
    package let catalogProblems = ProblemLog()

    /// Creates an instance of a storage plugin with `configJSON`.
    package init(library: PluginLibrary, configJSON: String) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: nil, expected: .storage)
        methods = library.storageMethods!
    }

    /// Whether the plugin implements the optional `catalog` entry.
    package var hasCatalog: Bool { methods.catalog != nil }

    /// Whether the plugin implements the optional `url` entry (1.1; NULL past a 1.0 table's size in the loader's copy).
    package var hasURL: Bool { methods.url != nil }

    /// The `url` of one stored file, checked as the host checks it before a redirect (`RedirectURL`); nil when the
    /// plugin declines (`ATH_DECLINED`). Requires `hasURL`.
    package func url(_ module: String, _ version: String, _ artifact: Artifact) throws(PluginCallError)
        -> Result<(url: String, validSeconds: Int), RedirectURL.Refusal>? {
        let operation = "storage.url \(module)@\(version) \(artifact)"
        let capacity = Int(ATH_URL_CAPACITY)
        // One sentinel byte past the capacity: a write beyond it is seen, and the check reads `capacity` bytes only.
        var buffer = [UInt8](repeating: 0x41, count: capacity + 1)
        var valid: UInt32 = 0
        let (status, message) = errors.call(operation) { error in
            CallContext(requestID: "plugin-check").withCCall { call in
                module.withCString { m in
                    version.withCString { v in
                        buffer.withUnsafeMutableBytes { out in
                            methods.url!(instance, call, m, v, artifact.cValue, out.baseAddress!.assumingMemoryBound(to: CChar.self), &valid, error)
                        }
                    }
                }
            }
        }
        if status == ATH_DECLINED { return nil }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        guard buffer[capacity] == 0x41 else {
            throw PluginCallError(operation: operation, status: ATH_INTERNAL, message: "contract violation: wrote past the \(capacity)-byte URL buffer")
        }
        return buffer.withUnsafeBufferPointer { RedirectURL.check(UnsafeBufferPointer(rebasing: $0[0..<capacity]), validSeconds: valid) }
    }

    /// Opens one stored file; the blob is shimmed so its release is counted.
    package func open(_ module: String, _ version: String, _ artifact: Artifact) throws(PluginCallError) -> Blob {
        let operation = "storage.open \(module)@\(version) \(artifact)"
        var raw = ath_blob()
        withUnsafeMutableBytes(of: &raw) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0xA5) }
        let untouched = withUnsafeBytes(of: raw) { Array($0) }
        let (status, message) = errors.call(operation) { error in
            module.withCString { m in version.withCString { v in methods.open!(instance, m, v, artifact.cValue, &raw, error) } }
        }
        guard status == ATH_OK else {
            if withUnsafeBytes(of: raw, { Array($0) }) != untouched {
                blobs.problems.add("\(operation): failed with \(PluginCallError.name(of: status)) but wrote into *out")
            }
            throw PluginCallError(operation: operation, status: status, message: message)
        }
        let shapes = (raw.fd >= 0 ? 1 : 0) + (raw.data != nil ? 1 : 0) + (raw.read != nil ? 1 : 0)
        guard raw.release != nil else {
            blobs.problems.add("\(operation): blob without release")
            throw PluginCallError(operation: operation, status: ATH_INTERNAL, message: "contract violation: blob without release")
        }
        if shapes != 1 { blobs.problems.add("\(operation): blob has \(shapes) of the shapes fd, data, read (must have exactly one)") }
        if raw.reserved != 0 { blobs.problems.add("\(operation): blob field reserved is \(raw.reserved), must be zero") }
        if raw.fd >= 0 && shapes == 1 {
            var info = stat()
            if fstat(raw.fd, &info) != 0 {
                blobs.problems.add("\(operation): blob fd \(raw.fd) is not an open file")
            } else if (info.st_mode & S_IFMT) == S_IFREG && raw.offset + raw.size > UInt64(info.st_size) {
                blobs.problems.add("\(operation): blob [\(raw.offset), +\(raw.size)) lies past the end of its \(info.st_size)-byte file")
            }
        }
        blobs.wrap(&raw)
        do {
            return try Blob(taking: raw, plugin: created.name)
        } catch {
            throw PluginCallError(operation: operation, status: ATH_INTERNAL, message: "contract violation: \(error.message)")
        }
    }

    /// Saves a version. `ATH_ALREADY_EXISTS` is thrown like any other status: the caller decides.
    package func save(_ module: String, _ version: String, info: [UInt8], mod: [UInt8], zip: ZipSource) throws(PluginCallError) {
        let operation = "storage.save \(module)@\(version)"
        let (status, message) = errors.call(operation) { error in
            zip.withReader { reader in
                module.withCString { m in
                    version.withCString { v in
                        // One spare byte: the ABI's pointers are non-NULL even for empty files.
                        (info + [0]).withUnsafeBufferPointer { i in
                            (mod + [0]).withUnsafeBufferPointer { d in
                                methods.save!(instance, m, v, i.baseAddress!, UInt64(info.count), d.baseAddress!, UInt64(mod.count), reader, error)
                            }
                        }
                    }
                }
            }
        }
        if zip.overlapped { readerProblems.add("\(operation): two calls of the zip reader overlapped (one thread at a time)") }
        if status == ATH_OK && zip.delivered != zip.size {
            readerProblems.add("\(operation): returned ATH_OK after reading \(zip.delivered) of the zip's \(zip.size) bytes")
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
    }

    /// Whether the version is completely stored.
    package func exists(_ module: String, _ version: String) throws(PluginCallError) -> Bool {
        let operation = "storage.exists \(module)@\(version)"
        var out: Int32 = -7
        let (status, message) = errors.call(operation) { error in
            module.withCString { m in version.withCString { v in methods.exists!(instance, m, v, &out, error) } }
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        guard out == 0 || out == 1 else {
            throw PluginCallError(operation: operation, status: ATH_INTERNAL, message: "contract violation: *out_exists is \(out), not 0 or 1")
        }
        return out == 1
    }

    /// Every stored version of `module`, in the plugin's order.
    package func list(_ module: String) throws(PluginCallError) -> [String] {
        let operation = "storage.list \(module)"
        let collector = VersionCollector()
        let (status, message) = errors.call(operation) { error in
            module.withCString { methods.list!(instance, $0, VersionCollector.emit, collector.context, error) }
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        return collector.versions
    }

    /// Deletes a version.
    package func remove(_ module: String, _ version: String) throws(PluginCallError) {
        let operation = "storage.remove \(module)@\(version)"
        let (status, message) = errors.call(operation) { error in
            module.withCString { m in version.withCString { v in methods.remove!(instance, m, v, error) } }
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
    }

    /// One catalog page and the next token ("" after the last page). Requires `hasCatalog`.
    package func catalog(token: String, pageSize: UInt32) throws(PluginCallError) -> (entries: [(module: String, version: String)], next: String) {
        let operation = "storage.catalog page of \(pageSize) after \"\(token.prefix(40))\""
        final class Collected { var entries: [(module: String, version: String)] = [] }
        let collected = Collected()
        let capacity = Int(ATH_CATALOG_TOKEN_CAPACITY)
        // Filled with a non-NUL byte so a token without its terminator is seen.
        var next = [CChar](repeating: 0x41, count: capacity + 1)
        let (status, message) = errors.call(operation) { error in
            token.withCString { t in
                next.withUnsafeMutableBufferPointer { n in
                    methods.catalog!(instance, t, pageSize, { ctx, module, version in
                        let collected = Unmanaged<Collected>.fromOpaque(ctx!).takeUnretainedValue()
                        guard collected.entries.count < 10_000_000 else { return 1 }
                        collected.entries.append((String(cString: module), String(cString: version)))
                        return 0
                    }, Unmanaged.passUnretained(collected).toOpaque(), n.baseAddress!, error)
                }
            }
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        if next[capacity] != 0x41 { catalogProblems.add("\(operation): wrote past the \(capacity)-byte next_token buffer") }
        guard let end = next[0..<capacity].firstIndex(of: 0) else {
            catalogProblems.add("\(operation): next_token is not NUL-terminated within \(capacity) bytes")
            throw PluginCallError(operation: operation, status: ATH_INTERNAL, message: "contract violation: unterminated next_token")
        }
        let nextToken = String(decoding: next[0..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (collected.entries, nextToken)
    }
}
