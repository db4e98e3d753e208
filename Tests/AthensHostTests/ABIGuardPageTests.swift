import Foundation
import PluginABI
import Testing
@testable import PluginHost

/// Issue 12 item 3, the other direction: a plugin built against 1.1 (create_with_host, the `*_ctx` twins) that
/// reports 1.0's sizes, as a plugin whose author set struct_size by hand, or a 1.0 host's reading, would see it.
/// Its descriptor (72 bytes) and fetcher table (32 bytes) end where a PROT_NONE page begins: the host faults if it
/// reads one byte past either struct_size, and must call `create` and 1.0's `fetch`, never the 1.1 entries whose
/// pointers the plugin's own structs do hold.
extension ABICompatibilityTests {
    static func guardedContextFetcher() throws -> String {
        let text = """
        #define _DEFAULT_SOURCE
        #define ath_plugin_query ctx_inner_query
        #include "\(TestSupport.packageRoot)/Tests/Fixtures/CPlugins/ctx_fetcher.c"
        #undef ath_plugin_query
        #include <pthread.h>
        #include <sys/mman.h>
        \(guardedCopy)
        static const ath_plugin *guarded;
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        static void build(void) {
            const ath_plugin *inner = ctx_inner_query(ATH_ABI_MAJOR);
            if (!inner->create_with_host || !inner->fetcher->fetch_ctx) return; /* it must be a 1.1 plugin */
            ath_fetcher_methods methods = *inner->fetcher;
            methods.struct_size = offsetof(ath_fetcher_methods, fetch_ctx);
            const ath_fetcher_methods *table = guarded_copy(&methods, methods.struct_size);
            if (!table) return;
            ath_plugin descriptor = *inner;
            descriptor.struct_size = offsetof(ath_plugin, create_with_host);
            descriptor.fetcher = table;
            guarded = guarded_copy(&descriptor, descriptor.struct_size);
        }
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            if (major != ATH_ABI_MAJOR) return NULL;
            pthread_once(&once, build);
            return guarded;
        }
        """
        return try CPluginBuild.compile(text: text, into: directory, name: "libGuardedCtxFetcher.so", extra: ["-lpthread"])
    }

    @Test("a 1.1 plugin reporting 1.0 sizes against a guard page: the host reads only struct_size and calls the 1.0 entries")
    func guardedOneOneAtOneZeroSizes() throws {
        let path = try Self.guardedContextFetcher()
        let marker = Self.directory + "/guarded-\(UUID().uuidString)"
        // In a child first: a read past struct_size faults there, not in the test runner.
        let server = try AthensServer(manifest: """
            {"storage": {"plugin": "MemoryStorage"},
             "fetchers": [{"name": "guarded", "plugin": "\(path)", "config": {"marker": "\(marker)"}}]}
            """, directory: Self.directory)
        defer { server.stop() }
        #expect(try server.get("/example.com/log/@v/v1.0.0.info").status == 404)
        #expect(server.process.process.isRunning, "\(server.process.stderr)")
        let lines = try String(contentsOfFile: marker, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == ["create10", "fetch entry=fetch module=example.com/log request=- deadline=0"], "1.1 entries called: \(lines)")

        let library = try PluginLibrary(path: path)
        #expect(library.descriptor.struct_size == 72 && library.descriptor.create_with_host == nil && library.descriptor.lock == nil)
        #expect(library.fetcherMethods?.struct_size == 32 && library.fetcherMethods?.fetch_ctx == nil && library.fetcherMethods?.resolve_ctx == nil)
    }

    @Test("a storage with 1.1 pointers past its 1.0 sizes, against a guard page, passes plugin-check on its 1.0 entries")
    func guardedStorageAtOneZeroSizes() throws {
        let path = try Self.storageVariant("GuardedStorage10", Self.guardedCopy + """
            /* Junk where the 1.1 fields are in the plugin's own structs: only the 1.0 bytes are copied next to the
             * guard page, so a host reading a 1.1 field faults, and one using these pointers would crash. */
            static const ath_plugin *guarded;
            static pthread_once_t once = PTHREAD_ONCE_INIT;
            static void build(void) {
                const ath_plugin *inner = example_inner_query(ATH_ABI_MAJOR);
                ath_storage_methods methods = *inner->storage;
                methods.open_ctx = (void *)(uintptr_t)0x10;
                methods.url = (void *)(uintptr_t)0x18;
                methods.struct_size = offsetof(ath_storage_methods, open_ctx);
                const ath_storage_methods *table = guarded_copy(&methods, methods.struct_size);
                if (!table) return;
                ath_plugin descriptor = *inner;
                descriptor.create_with_host = (void *)(uintptr_t)0x20;
                descriptor.struct_size = offsetof(ath_plugin, create_with_host);
                descriptor.abi_minor = 0;
                descriptor.storage = table;
                guarded = guarded_copy(&descriptor, descriptor.struct_size);
            }
            ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
                if (major != ATH_ABI_MAJOR) return NULL;
                pthread_once(&once, build);
                return guarded;
            }
            """)
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "4"])
        try #require(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let library = try PluginLibrary(path: path)
        #expect(library.descriptor.create_with_host == nil && library.storageMethods?.open_ctx == nil && library.storageMethods?.url == nil)
        #expect(library.storageMethods?.catalog != nil)
    }
}
