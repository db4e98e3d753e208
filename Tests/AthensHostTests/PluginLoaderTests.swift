import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Loader failures: each gives one clear reason naming the file; nothing crashes.
@Suite("plugin loader", .blockingBodies)
struct PluginLoaderTests {
    static let directory = TestSupport.makeTemporaryDirectory("loader")

    private func loadError(_ path: String) -> PluginLoadError? {
        do {
            _ = try PluginLibrary(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test("a missing file is refused, naming the file")
    func missingFile() throws {
        let error = try #require(loadError(Self.directory + "/libNope.so"))
        #expect(error.description.contains("libNope.so"))
        #expect(error.reason.contains("No such file"))
    }

    @Test("a file that is not ELF is refused")
    func notELF() throws {
        let path = Self.directory + "/libText.so"
        try "this is not a shared library\n".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try #require(loadError(path))
        #expect(error.reason.hasPrefix("cannot load"))
        #expect(error.description.contains(path))
    }

    @Test("an empty file is refused")
    func emptyFile() throws {
        let path = Self.directory + "/libEmpty.so"
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        #expect(loadError(path)?.reason.hasPrefix("cannot load") == true)
    }

    @Test("broken descriptors are refused with the reason", arguments: [
        ("NO_ENTRY", "no entry symbol ath_plugin_query"),
        ("DECLINE", "declined host ABI major 1"),
        ("BAD_MAGIC", "bad magic 0xdeadbeef"),
        ("ABI_MAJOR_OVERRIDE=99", "built for ABI 99.x, host speaks ABI 1.1"),
        ("SMALL_DESCRIPTOR", "descriptor struct_size 24 is smaller"),
        ("NULL_OPEN", "required storage entry open is NULL"),
        ("SMALL_TABLE", "storage table struct_size 16 is smaller"),
        ("TOOLCHAIN=\"swift-0.0\"", "built with toolchain \"swift-0.0\""),
        ("WRONG_KIND", "fetcher plugin without a fetcher table"),
    ])
    func brokenDescriptor(define: String, reason: String) throws {
        let name = "lib" + define.filter { $0.isLetter || $0.isNumber } + ".so"
        let path = try TestSupport.compileCPlugin("test_storage.c", defines: [define], into: Self.directory, name: name)
        let error = try #require(loadError(path))
        #expect(error.reason.contains(reason), "got: \(error.reason)")
        #expect(error.description.hasPrefix("plugin \(path): "))
    }

    @Test("a Swift plugin from this toolchain loads and describes itself")
    func swiftPluginLoads() throws {
        let library = try PluginLibrary(path: TestSupport.plugin("MemoryStorage"))
        #expect(library.name == "MemoryStorage")
        #expect(library.kind == .storage)
        #expect(library.storageMethods?.catalog != nil)
        let fetcher = try PluginLibrary(path: TestSupport.plugin("ProxyFetcher"))
        #expect(fetcher.kind == .fetcher)
    }

    @Test("a plain C plugin loads; its optional catalog reads as absent")
    func cPluginLoads() throws {
        let path = try TestSupport.compileCPlugin("test_storage.c", into: Self.directory, name: "libCTestStorage.so")
        let library = try PluginLibrary(path: path)
        #expect(library.name == "CTestStorage")
        let storage = try StoragePlugin(library: library, configJSON: "{}")
        #expect(storage.hasCatalog == false)
        let error = #expect(throws: PluginError.self) { _ = try storage.catalog(token: "", pageSize: 10) }
        #expect(error?.code == .invalid)
    }

    @Test("a bad plugin config is refused with the plugin's message")
    func badConfig() throws {
        let library = try PluginLibrary(path: TestSupport.plugin("MemoryStorage"))
        let error = #expect(throws: PluginError.self) { _ = try StoragePlugin(library: library, configJSON: #"{"bogus":1}"#) }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("bogus") == true)
        let notObject = #expect(throws: PluginError.self) { _ = try StoragePlugin(library: library, configJSON: "[1]") }
        #expect(notObject?.code == .invalid)
    }

    @Test("using a storage plugin as a fetcher is refused")
    func kindMismatch() throws {
        let library = try PluginLibrary(path: TestSupport.plugin("MemoryStorage"))
        let error = #expect(throws: PluginError.self) { _ = try FetcherPlugin(library: library, configJSON: "{}") }
        #expect(error?.message.contains("not a fetcher plugin") == true)
    }

    @Test("the athens binary links no plugin: plugins arrive only by dlopen")
    func noPluginLinked() throws {
        let result = try TestSupport.run("/usr/bin/readelf", ["-d", TestSupport.athens])
        #expect(result.status == 0)
        let needed = result.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(!needed.isEmpty)
        for plugin in ["MemoryStorage", "ProxyFetcher", "FileStorage", "GitFetcher", "PluginKit"] {
            #expect(!needed.contains { $0.contains(plugin) }, "athens links \(plugin)")
        }
        let symbols = try TestSupport.run("/usr/bin/nm", ["-D", "--defined-only", TestSupport.athens])
        #expect(!symbols.stdout.contains("ath_plugin_query"))
    }
}
