import Foundation
import PluginABI
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The versioning promises of athens_plugin.h, tested with C plugins built to look like other versions:
/// tables larger than ours (a future minor), tables that stop early (an older minor), another major,
/// and the toolchain rule that ties Swift plugins, and only them, to the host's compiler.
@Suite("plugin ABI compatibility", .blockingBodies)
struct ABICompatibilityTests {
    static let directory = TestSupport.makeTemporaryDirectory("abi")

    /// The storage example re-exported through a descriptor and table built by `body` in C.
    static func storageVariant(_ name: String, _ body: String) throws -> String {
        let text = """
        #define _DEFAULT_SOURCE
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.storageSource)"
        #undef ath_plugin_query
        #include <stddef.h>
        #include <sys/mman.h>
        \(body)
        """
        return try CPluginBuild.compile(text: text, into: directory, name: "libABI\(name).so")
    }

    /// C that lays `size` bytes of `source` at the very end of a page whose next page is PROT_NONE, so any
    /// read past `size` bytes faults.
    static let guardedCopy = """
        static void *guarded_copy(const void *source, size_t size) {
            long page = sysconf(_SC_PAGESIZE);
            unsigned char *p = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) return NULL;
            if (mprotect(p + page, (size_t)page, PROT_NONE) != 0) return NULL;
            unsigned char *at = p + page - size;
            memcpy(at, source, size);
            return at;
        }
        """

    // MARK: - A plugin from a future minor

    static let futureStorage = """
        /* A plugin compiled against a future 1.3 header: every struct has grown fields the host does not know. */
        struct future_storage_methods { ath_storage_methods v1_0; void (*added_in_1_1)(void); uint64_t added_in_1_2[4]; };
        struct future_plugin { ath_plugin v1_0; const char *added_in_1_1; void (*added_in_1_3)(void); };
        static struct future_storage_methods table;
        static struct future_plugin descriptor_future;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            table.v1_0 = *inner->storage;
            table.v1_0.struct_size = sizeof table;
            /* Non-NULL junk: a host that called or followed these would crash. */
            table.added_in_1_1 = (void (*)(void))(uintptr_t)0x10;
            memset(table.added_in_1_2, 0xEE, sizeof table.added_in_1_2);
            descriptor_future.v1_0 = *inner;
            descriptor_future.v1_0.struct_size = sizeof descriptor_future;
            descriptor_future.v1_0.abi_minor = ATH_ABI_MINOR + 3;
            descriptor_future.v1_0.storage = &table.v1_0;
            descriptor_future.added_in_1_1 = (const char *)(uintptr_t)0x20;
            descriptor_future.added_in_1_3 = (void (*)(void))(uintptr_t)0x30;
            return &descriptor_future.v1_0;
        }
        """

    @Test("a storage plugin built against a future minor, with larger structs, loads and passes plugin-check")
    func futureMinorStorage() throws {
        let path = try Self.storageVariant("FutureStorage", Self.futureStorage)
        let library = try PluginLibrary(path: path)
        #expect(library.abiMinor == ATH_ABI_MINOR + 3)
        #expect(library.storageMethods?.catalog != nil)
        #expect(library.storageMethods?.struct_size == UInt32(MemoryLayout<ath_storage_methods>.size + 8 + 32))
        let storage = try StoragePlugin(library: library, configJSON: "{}")
        #expect(try storage.exists(module: "example.com/m", version: "v1.0.0") == false)
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "4"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ABI 1.\(ATH_ABI_MINOR + 3)"))
    }

    @Test("a fetcher plugin built against a future minor loads and fetches")
    func futureMinorFetcher() throws {
        let text = """
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.fetcherSource)"
        #undef ath_plugin_query
        struct future_fetcher_methods { ath_fetcher_methods v1_0; void (*added_in_1_1)(void); };
        struct future_plugin { ath_plugin v1_0; uint64_t added_in_1_1; };
        static struct future_fetcher_methods table;
        static struct future_plugin descriptor_future;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            table.v1_0 = *inner->fetcher;
            table.v1_0.struct_size = sizeof table;
            table.added_in_1_1 = (void (*)(void))(uintptr_t)0x10;
            descriptor_future.v1_0 = *inner;
            descriptor_future.v1_0.struct_size = sizeof descriptor_future;
            descriptor_future.v1_0.abi_minor = 7;
            descriptor_future.v1_0.fetcher = &table.v1_0;
            descriptor_future.added_in_1_1 = 0xEEEEEEEEEEEEEEEEull;
            return &descriptor_future.v1_0;
        }
        """
        let path = try CPluginBuild.compile(text: text, into: Self.directory, name: "libABIFutureFetcher.so")
        let library = try PluginLibrary(path: path)
        #expect(library.abiMinor == 7)
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--config", CPluginBuild.rootConfig(CPluginBuild.tree),
                                                              "--module", "example.com/hello", "--version", "v1.0.0"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    }

    // MARK: - A plugin from an older minor, and the host never reading past struct_size

    static func olderStorage(tableSize: String) -> String {
        guardedCopy + """
        /* A table as a 1.0-minus plugin compiled it: it stops at `size` bytes. It and the descriptor end
         * where a PROT_NONE page begins, so the host faults if it reads one byte past either struct_size.
         * The catalog pointer in the source table is valid: it must be ignored because it lies outside. */
        static const ath_plugin *guarded;
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        static void build(void) {
            const ath_plugin *inner = example_inner_query(ATH_ABI_MAJOR);
            ath_storage_methods methods = *inner->storage;
            methods.struct_size = (uint32_t)(\(tableSize));
            const ath_storage_methods *table = guarded_copy(&methods, methods.struct_size);
            if (!table) return;
            ath_plugin descriptor = *inner;
            descriptor.storage = table;
            guarded = guarded_copy(&descriptor, sizeof descriptor);
        }
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            if (major != ATH_ABI_MAJOR) return NULL;
            pthread_once(&once, build);
            return guarded;
        }
        """
    }

    @Test("a table that stops before catalog loads; catalog reads as absent; nothing past struct_size is read")
    func olderMinorWithoutCatalog() throws {
        let path = try Self.storageVariant("OlderStorage", Self.olderStorage(tableSize: "offsetof(ath_storage_methods, catalog)"))
        // In a child first: a host that read past struct_size would fault there, not in the test runner.
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "4"])
        try #require(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let catalogRow = try #require(CheckRow.parse(result.stdout).first { $0.name.hasPrefix("storage: catalog") })
        #expect(catalogRow.outcome == "SKIP")
        let library = try PluginLibrary(path: path)
        #expect(library.storageMethods?.struct_size == 48)
        #expect(library.storageMethods?.catalog == nil)
        #expect(library.storageMethods?.remove != nil)
        let storage = try StoragePlugin(library: library, configJSON: "{}")
        #expect(storage.hasCatalog == false)
        let error = #expect(throws: PluginError.self) { _ = try storage.catalog(token: "", pageSize: 10) }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("not implemented") == true)
    }

    @Test("a full-size table laid against a guard page loads with its catalog: the host reads exactly struct_size")
    func exactSizeGuarded() throws {
        let path = try Self.storageVariant("ExactStorage", Self.olderStorage(tableSize: "sizeof(ath_storage_methods)"))
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "4"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let library = try PluginLibrary(path: path)
        #expect(library.storageMethods?.catalog != nil)
    }

    @Test("a table too small to hold the required entries is refused, naming the size it needs", arguments: [
        "offsetof(ath_storage_methods, remove)", "offsetof(ath_storage_methods, open)", "4",
    ])
    func tooSmallForRequired(tableSize: String) throws {
        let name = "Small" + tableSize.filter { $0.isLetter || $0.isNumber }
        let path = try Self.storageVariant(name, Self.olderStorage(tableSize: tableSize))
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: path) }
        #expect(error?.reason.contains("is smaller than the 48 bytes that ABI 1.0's required entries need") == true, "\(error?.reason ?? "")")
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path])
        #expect(result.status == 1)
        #expect(CheckRow.parse(result.stdout).first?.outcome == "FAIL")
    }

    @Test("the loader's minimum sizes are the ends of the last required entries")
    func requiredSizes() {
        #expect(PluginLibrary.requiredStorageSize == UInt32(MemoryLayout<ath_storage_methods>.offset(of: \ath_storage_methods.catalog)!))
        // The whole 1.0 table: the 1.1 twins after it are optional.
        #expect(PluginLibrary.requiredFetcherSize == UInt32(MemoryLayout<ath_fetcher_methods>.offset(of: \ath_fetcher_methods.fetch_ctx)!))
    }

    @Test("a fetcher table missing a required entry's bytes is refused")
    func smallFetcherTable() throws {
        let text = """
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.fetcherSource)"
        #undef ath_plugin_query
        #include <stddef.h>
        static ath_fetcher_methods table;
        static ath_plugin copy;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            table = *inner->fetcher;
            table.struct_size = offsetof(ath_fetcher_methods, resolve);
            copy = *inner;
            copy.fetcher = &table;
            return &copy;
        }
        """
        let path = try CPluginBuild.compile(text: text, into: Self.directory, name: "libABISmallFetcher.so")
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: path) }
        #expect(error?.reason.contains("fetcher table struct_size 24 is smaller than the 32 bytes") == true, "\(error?.reason ?? "")")
    }

    // MARK: - Another major

    @Test("a plugin built for another ABI major is refused with a message naming both majors", arguments: [0, 2, 99])
    func otherMajor(major: Int) throws {
        let path = try TestSupport.compileCPlugin("test_storage.c", defines: ["ABI_MAJOR_OVERRIDE=\(major)"], into: Self.directory, name: "libMajor\(major).so")
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: path) }
        #expect(error?.reason == "built for ABI \(major).x, host speaks ABI \(ATH_ABI_MAJOR).\(ATH_ABI_MINOR)")
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("built for ABI \(major).x"))
    }

    @Test("athens refuses to start with a storage plugin of another major, naming the manifest key")
    func otherMajorAtStart() throws {
        let path = try TestSupport.compileCPlugin("test_storage.c", defines: ["ABI_MAJOR_OVERRIDE=2"], into: Self.directory, name: "libMajorStart.so")
        let manifest = Self.directory + "/major.json"
        try #"{"listen":"127.0.0.1:0","storage":{"plugin":"\#(path)"},"fetchers":[]}"#.write(toFile: manifest, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(TestSupport.athens, ["--config", manifest], timeout: 30)
        #expect(result.status != 0)
        #expect(result.stderr.contains("storage.plugin"))
        #expect(result.stderr.contains("built for ABI 2.x, host speaks ABI \(ATH_ABI_MAJOR).\(ATH_ABI_MINOR)"))
    }

    // MARK: - Toolchains

    static var hostToolchain: String { String(cString: ath_swift_toolchain_id()) }

    @Test("Swift plugins record the toolchain they were built with, and it is the host's")
    func swiftPluginsCarryToolchain() throws {
        for name in ["MemoryStorage", "ProxyFetcher"] {
            let library = try PluginLibrary(path: TestSupport.plugin(name))
            let toolchain = try #require(library.descriptor.toolchain.map { String(cString: $0) })
            #expect(toolchain == Self.hostToolchain)
            #expect(toolchain.hasPrefix("swift-clang "))
        }
    }

    @Test("C plugins carry no toolchain and load in any host of their major")
    func cPluginsCarryNone() throws {
        for path in try [CPluginBuild.built.storage, CPluginBuild.built.fetcher] {
            let library = try PluginLibrary(path: path)
            #expect(library.descriptor.toolchain == nil)
        }
    }

    @Test("a plugin claiming another toolchain is refused, naming both", arguments: [
        "swift-6.3.1", "swift-clang 17.0.0", "", "SUFFIX", "PREFIX",
    ])
    func otherToolchain(claim: String) throws {
        // Near misses of the host's own id are refused too: the comparison is exact.
        let toolchain = claim == "SUFFIX" ? Self.hostToolchain + " " : claim == "PREFIX" ? String(Self.hostToolchain.dropLast()) : claim
        let escaped = toolchain.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let path = try TestSupport.compileCPlugin("test_storage.c", defines: ["TOOLCHAIN=\"\(escaped)\""], into: Self.directory,
                                                  name: "libToolchain\(claim.filter { $0.isLetter || $0.isNumber }).so")
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: path) }
        #expect(error?.reason == "built with toolchain \"\(toolchain)\", host built with \"\(Self.hostToolchain)\" (Swift plugins must come from the host's toolchain)")
    }

    @Test("a plugin claiming exactly the host's toolchain loads")
    func sameToolchain() throws {
        let escaped = Self.hostToolchain.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let path = try TestSupport.compileCPlugin("test_storage.c", defines: ["TOOLCHAIN=\"\(escaped)\""], into: Self.directory, name: "libToolchainSame.so")
        let library = try PluginLibrary(path: path)
        #expect(library.descriptor.toolchain.map { String(cString: $0) } == Self.hostToolchain)
        let storage = try StoragePlugin(library: library, configJSON: "{}")
        #expect(try storage.list(module: "example.com/m") == [])
    }
}
