import HostSupport
import PluginABI

/// A lock plugin instance (ABI 1.1), called through its C table.
///
/// - Important: every method may be called from any thread, concurrently (the ABI promises it), and `acquire`
///   blocks for up to its wait: never call it from the event loop.
package final class LockPlugin: Lock, @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_lock_methods
    /// The plugin's instance pointer, passed first to every call.
    private var instance: UnsafeMutableRawPointer? { created.pointer }
    /// The name the manifest uses for it.
    package var name: String { created.name }
    package var library: PluginLibrary { created.library }
    package var origin: String { created.library.path }

    /// How a crash names each entry (see `CrashReporter`).
    private let labels: (acquire: CallLabel, refresh: CallLabel, release: CallLabel)

    package init(library: PluginLibrary, configJSON: String, name: String? = nil) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: name, expected: .lock)
        methods = library.lockMethods!
        let plugin = created.name
        labels = (CallLabel(kind: "lock", plugin: plugin, entry: "acquire"), CallLabel(kind: "lock", plugin: plugin, entry: "refresh"),
                  CallLabel(kind: "lock", plugin: plugin, entry: "release"))
    }

    private func failure(_ status: ath_status, _ operation: String, _ error: ath_error) -> PluginError {
        PluginError(code: .init(status), plugin: name, operation: "lock." + operation, message: error.text, library: library.path)
    }

    package func acquire(key: String, leaseMilliseconds: UInt32, waitMilliseconds: UInt32) throws(PluginError) -> LockAcquisition {
        var error = ath_error.empty()
        var handle: UInt64 = 0
        let status = withCall { call in
            key.withCString { k in
                CrashReporter.during(labels.acquire, module: k) { methods.acquire!(instance, call, k, leaseMilliseconds, waitMilliseconds, &handle, &error) }
            }
        }
        switch status {
        case ATH_OK:
            guard handle != 0 else {
                throw PluginError(code: .contractViolation, plugin: name, operation: "lock.acquire", message: "ATH_OK with handle 0", library: library.path)
            }
            return .held(handle)
        case ATH_BUSY:
            return .busy
        default:
            throw failure(status, "acquire", error)
        }
    }

    package func refresh(_ handle: UInt64, leaseMilliseconds: UInt32) throws(PluginError) {
        var error = ath_error.empty()
        let status = withCall { call in
            CrashReporter.during(labels.refresh) { methods.refresh!(instance, call, handle, leaseMilliseconds, &error) }
        }
        guard status == ATH_OK else { throw failure(status, "refresh", error) }
    }

    package func release(_ handle: UInt64) throws(PluginError) {
        var error = ath_error.empty()
        let status = CrashReporter.during(labels.release) { methods.release!(instance, handle, &error) }
        guard status == ATH_OK else { throw failure(status, "release", error) }
    }

    /// A context for one call: no deadline (acquire's wait bounds it), never cancelled, the current request's id.
    private func withCall<R>(_ body: (UnsafePointer<ath_call>) -> R) -> R {
        CrashReporter.currentRequest().withCString { id in
            var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: 0,
                                request_id: id, cancelled: nil, host_data: nil)
            return withUnsafePointer(to: &call) { body($0) }
        }
    }
}
