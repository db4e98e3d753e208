import Foundation
@testable import HostSupport
import PluginABI
import Testing

/// PluginKit's ABI 1.1 side, seen from the C table of a Swift plugin that was written for 1.0 (MemoryStorage):
/// the descriptor offers create_with_host and every *_ctx twin, the twins reach the backend's default (1.0)
/// methods, a failure of a cancelled call reads ATH_CANCELLED, and the 1.0 entries keep working.
@Suite("PluginKit: host services and call contexts")
struct PluginKitContextTests {
    /// The descriptor and storage table of libMemoryStorage.so, loaded straight through the header.
    static func memoryStorage() throws -> (plugin: UnsafePointer<ath_plugin>, table: UnsafePointer<ath_storage_methods>) {
        let path = TestSupport.plugin("MemoryStorage")
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE), let symbol = dlsym(handle, ATH_PLUGIN_QUERY_SYMBOL) else {
            throw TestFailure("dlopen \(path): \(String(cString: dlerror()))")
        }
        let plugin = try #require(unsafeBitCast(symbol, to: ath_plugin_query_fn.self)(ATH_ABI_MAJOR))
        return (plugin, try #require(plugin.pointee.storage))
    }

    /// A zip reader over `bytes` that fails (-1) after `failAfter` bytes, if given.
    final class Reader {
        let bytes: [UInt8]
        let failAfter: Int?
        var offset = 0
        init(_ bytes: [UInt8], failAfter: Int? = nil) { (self.bytes, self.failAfter) = (bytes, failAfter) }
    }

    static func save(_ table: UnsafePointer<ath_storage_methods>, _ instance: UnsafeMutableRawPointer?, _ call: UnsafePointer<ath_call>?,
                     module: String, version: String, zip: Reader) -> (ath_status, String) {
        var error = ath_error()
        var reader = ath_reader(size: UInt64(zip.bytes.count), read: { ctx, buffer, capacity in
            let zip = Unmanaged<Reader>.fromOpaque(ctx!).takeUnretainedValue()
            if let limit = zip.failAfter, zip.offset >= limit { return -1 }
            let n = min(Int(capacity), zip.bytes.count - zip.offset, 7)
            zip.bytes.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress! + zip.offset, byteCount: n) }
            zip.offset += n
            return Int64(n)
        }, ctx: Unmanaged.passUnretained(zip).toOpaque())
        let info = Array(#"{"Version":"\#(version)"}"#.utf8), mod = Array("module \(module)\n".utf8)
        let status = withExtendedLifetime(zip) {
            info.withUnsafeBufferPointer { i in
                mod.withUnsafeBufferPointer { m in
                    if let call {
                        return table.pointee.save_ctx!(instance, call, module, version, i.baseAddress!, UInt64(i.count), m.baseAddress!, UInt64(m.count), &reader, &error)
                    }
                    return table.pointee.save!(instance, module, version, i.baseAddress!, UInt64(i.count), m.baseAddress!, UInt64(m.count), &reader, &error)
                }
            }
        }
        return (status, withUnsafeBytes(of: error.message) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) })
    }

    /// A call context whose `cancelled` answers `cancelled`, with `deadline` (0: none).
    static func withCall<T>(cancelled: Bool, deadline: UInt64 = 0, _ body: (UnsafePointer<ath_call>) -> T) -> T {
        "req-1".withCString { id in
            var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: deadline, request_id: id,
                                cancelled: { call in call.pointee.host_data == nil ? 0 : 1 },
                                host_data: cancelled ? UnsafeMutableRawPointer(bitPattern: 1) : nil)
            return body(&call)
        }
    }

    /// A C string that outlives every instance (the host's name must stay valid until destroy).
    nonisolated(unsafe) static let hostName = UnsafePointer(strdup("PluginKitContextTests")!)  // never written

    @Test("a Swift plugin's descriptor and table carry the 1.1 entries, reserved fields zero")
    func descriptor() throws {
        let (plugin, table) = try Self.memoryStorage()
        #expect(plugin.pointee.struct_size == UInt32(MemoryLayout<ath_plugin>.size))
        #expect(plugin.pointee.abi_minor == ATH_ABI_MINOR && plugin.pointee.reserved == 0)
        #expect(plugin.pointee.create != nil && plugin.pointee.create_with_host != nil && plugin.pointee.lock == nil)
        #expect(table.pointee.struct_size == UInt32(MemoryLayout<ath_storage_methods>.size) && table.pointee.reserved == 0)
        let t = table.pointee
        #expect(t.open_ctx != nil && t.save_ctx != nil && t.exists_ctx != nil && t.list_ctx != nil && t.remove_ctx != nil && t.catalog_ctx != nil)
        #expect(t.url == nil, "MemoryStorage is not a redirecting storage")
    }

    @Test("created with host services, the twins and the 1.0 entries see the same store; a cancelled call's failure is ATH_CANCELLED, ATH_TIMEOUT past its deadline")
    func twins() throws {
        let (plugin, table) = try Self.memoryStorage()
        var host = ath_host(struct_size: UInt32(MemoryLayout<ath_host>.size), abi_minor: ATH_ABI_MINOR, name: Self.hostName, version: Self.hostName,
                            host_ctx: nil, log: { _, _, _ in }, reader_size: UInt32(MemoryLayout<ath_reader>.size),
                            sink_size: UInt32(MemoryLayout<ath_sink>.size), error_size: UInt32(MemoryLayout<ath_error>.size), reserved: 0)
        var error = ath_error()
        var instance: UnsafeMutableRawPointer?
        try #require(plugin.pointee.create_with_host!(&host, "{}", &instance, &error) == ATH_OK)
        defer { plugin.pointee.destroy!(instance) }

        let zip = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        let saved = Self.withCall(cancelled: false) { Self.save(table, instance, $0, module: "example.com/ctx", version: "v1.0.0", zip: Reader(zip)) }
        #expect(saved.0 == ATH_OK, "\(saved)")
        var exists: Int32 = 0
        #expect(table.pointee.exists!(instance, "example.com/ctx", "v1.0.0", &exists, &error) == ATH_OK && exists == 1, "the 1.0 entry sees the twin's save")
        exists = 0
        #expect(Self.withCall(cancelled: false) { table.pointee.exists_ctx!(instance, $0, "example.com/ctx", "v1.0.0", &exists, &error) } == ATH_OK && exists == 1)

        // The host's reader fails half-way because the host cancelled the call: the save fails as ATH_CANCELLED and stores nothing.
        let cancelled = Self.withCall(cancelled: true) {
            Self.save(table, instance, $0, module: "example.com/ctx", version: "v1.0.1", zip: Reader(zip, failAfter: 500))
        }
        #expect(cancelled.0 == ATH_CANCELLED, "\(cancelled)")
        #expect(cancelled.1.contains("cancelled"))
        // Past its deadline a 1.1 host's `cancelled` answers 1 too: that failure is ATH_TIMEOUT, as the ABI says.
        let late = Self.withCall(cancelled: true, deadline: MonotonicClock.nanoseconds() - 1) {
            Self.save(table, instance, $0, module: "example.com/ctx", version: "v1.0.1", zip: Reader(zip, failAfter: 500))
        }
        #expect(late.0 == ATH_TIMEOUT, "\(late)")
        #expect(late.1.contains("past the call's deadline"))
        // The same failure without a cancellation keeps its own status (the reader failed: ATH_UNAVAILABLE).
        let failed = Self.withCall(cancelled: false) {
            Self.save(table, instance, $0, module: "example.com/ctx", version: "v1.0.1", zip: Reader(zip, failAfter: 500))
        }
        #expect(failed.0 == ATH_UNAVAILABLE, "\(failed)")
        #expect(table.pointee.exists!(instance, "example.com/ctx", "v1.0.1", &exists, &error) == ATH_OK && exists == 0)
    }

    @Test("created by a 1.0 host (create, no services), the 1.0 entries work as before")
    func createdBy10Host() throws {
        let (plugin, table) = try Self.memoryStorage()
        var error = ath_error()
        var instance: UnsafeMutableRawPointer?
        try #require(plugin.pointee.create!("{}", &instance, &error) == ATH_OK)
        defer { plugin.pointee.destroy!(instance) }
        let saved = Self.save(table, instance, nil, module: "example.com/old", version: "v1.0.0", zip: Reader([1, 2, 3]))
        #expect(saved.0 == ATH_OK, "\(saved)")
        var blob = ath_blob()
        try #require(table.pointee.open!(instance, "example.com/old", "v1.0.0", ATH_ARTIFACT_ZIP, &blob, &error) == ATH_OK)
        #expect(blob.size == 3)
        blob.release!(blob.private_data)
    }
}
