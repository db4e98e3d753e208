import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// A lock plugin instance called through its C table with raw statuses and audited error buffers, for the checks.
package final class InstrumentedLock: @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_lock_methods
    /// Audits every failing call's message (bounded, terminated, non-empty).
    package let errors = ErrorAudit()

    package init(library: PluginLibrary, configJSON: String) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: nil, expected: .lock)
        methods = library.lockMethods!
    }

    /// acquire: the status, the handle (0 unless ATH_OK) and the message.
    package func acquire(_ key: [UInt8], lease: UInt32, wait: UInt32) -> (status: ath_status, handle: UInt64, message: String) {
        var handle: UInt64 = 0
        let (status, message) = errors.call("lock.acquire (key of \(key.count) bytes)") { error in
            withCall { call in
                (key + [0]).withUnsafeBufferPointer { k in
                    k.baseAddress!.withMemoryRebound(to: CChar.self, capacity: k.count) { methods.acquire!(created.pointer, call, $0, lease, wait, &handle, error) }
                }
            }
        }
        return (status, status == ATH_OK ? handle : 0, message)
    }

    package func refresh(_ handle: UInt64, lease: UInt32) -> (status: ath_status, message: String) {
        errors.call("lock.refresh") { error in withCall { methods.refresh!(created.pointer, $0, handle, lease, error) } }
    }

    package func release(_ handle: UInt64) -> (status: ath_status, message: String) {
        errors.call("lock.release") { methods.release!(created.pointer, handle, $0) }
    }

    private func withCall<R>(_ body: (UnsafePointer<ath_call>) -> R) -> R {
        "".withCString { id in
            var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: 0, request_id: id, cancelled: nil, host_data: nil)
            return withUnsafePointer(to: &call) { body($0) }
        }
    }
}
