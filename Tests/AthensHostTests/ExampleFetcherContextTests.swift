import Foundation
import PluginABI
import Testing
@testable import PluginHost

/// The fetcher example's ABI 1.1 twin, called straight through its table as a 1.1 host will: `fetch_ctx` gives the
/// same bytes as `fetch`, and stops with ATH_CANCELLED once its call is cancelled.
extension ExamplePluginsTests {
    /// Bytes a sink received; the sink refuses nothing.
    final class Collected {
        var bytes: [UInt8] = []
        var sink: ath_sink {
            ath_sink(write: { ctx, data, length in
                Unmanaged<Collected>.fromOpaque(ctx!).takeUnretainedValue().bytes += UnsafeBufferPointer(start: data, count: Int(length))
                return 0
            }, ctx: Unmanaged.passUnretained(self).toOpaque())
        }
    }

    /// Fetches example.com/hello@v1.1.0 through `fetch` (call nil) or `fetch_ctx`; returns the status and the three files.
    static func fetchHello(_ methods: ath_fetcher_methods, _ instance: UnsafeMutableRawPointer?, cancelled: Bool?) -> (ath_status, [[UInt8]]) {
        let files = [Collected(), Collected(), Collected()]
        var sinks = files.map(\.sink)
        var error = ath_error()
        let status = withExtendedLifetime(files) {
            "req".withCString { id in
                var call = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: 0, request_id: id,
                                    cancelled: { call in call.pointee.host_data == nil ? 0 : 1 },
                                    host_data: cancelled == true ? UnsafeMutableRawPointer(bitPattern: 1) : nil)
                guard cancelled != nil else { return methods.fetch!(instance, "example.com/hello", "v1.1.0", &sinks[0], &sinks[1], &sinks[2], &error) }
                return methods.fetch_ctx!(instance, &call, "example.com/hello", "v1.1.0", &sinks[0], &sinks[1], &sinks[2], &error)
            }
        }
        return (status, files.map(\.bytes))
    }

    @Test("the fetcher example's fetch_ctx gives fetch's bytes, and ATH_CANCELLED for a cancelled call")
    func fetcherContextTwin() throws {
        let library = try PluginLibrary(path: CPluginBuild.built.fetcher)
        let methods = try #require(library.fetcherMethods)
        #expect(methods.fetch_ctx != nil && methods.list_ctx == nil && methods.resolve_ctx == nil)
        let instance = try PluginInstance(library: library, configJSON: CPluginBuild.rootConfig(CPluginBuild.tree), name: nil, expected: .fetcher)
        let plain = Self.fetchHello(methods, instance.pointer, cancelled: nil)
        try #require(plain.0 == ATH_OK)
        #expect(plain.1.allSatisfy { !$0.isEmpty })
        let twin = Self.fetchHello(methods, instance.pointer, cancelled: false)
        #expect(twin.0 == ATH_OK)
        #expect(twin.1 == plain.1)
        let cancelled = Self.fetchHello(methods, instance.pointer, cancelled: true)
        #expect(cancelled.0 == ATH_CANCELLED)
        #expect(cancelled.1.allSatisfy { $0.isEmpty }, "nothing written after the cancellation was seen")
    }
}
