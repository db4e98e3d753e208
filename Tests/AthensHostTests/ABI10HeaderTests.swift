import Foundation
import PluginABI
import Testing
@testable import PluginHost

/// The other half of "1.1 is additions only": the C examples compiled against the 1.0 header, kept verbatim in
/// Tests/Fixtures/abi-1.0 (as main had it before 1.1), are plugins a 1.0 author shipped. They must load and pass
/// plugin-check in this host, with the 1.1 services absent.
extension ABICompatibilityTests {
    static var header10: String { TestSupport.packageRoot + "/Tests/Fixtures/abi-1.0" }

    /// The two examples built against the 1.0 header (it comes first on the include path; athens_config.h, which
    /// does not depend on the contract's version, is found next to the current header).
    static let builtAgainst10 = Result { () throws -> (storage: String, fetcher: String) in
        func build(_ source: String, _ name: String) throws -> String {
            let output = directory + "/" + name
            let result = try TestSupport.run("/usr/bin/cc", CPluginBuild.flags + ["-I", header10, "-I", TestSupport.packageRoot + "/Sources/PluginABI/include",
                                                                                   source, "-o", output, "-lpthread"])
            guard result.status == 0 else { throw TestFailure("cc \(source) against the 1.0 header: \(result.stderr)") }
            return output
        }
        return (try build(CPluginBuild.storageSource, "libExampleStorage10.so"), try build(CPluginBuild.fetcherSource, "libExampleFetcher10.so"))
    }

    /// The raw descriptor of a plugin file, read without the host's loader.
    static func rawDescriptor(_ path: String) throws -> (size: UInt32, minor: UInt32, tableSize: UInt32) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE), let symbol = dlsym(handle, ATH_PLUGIN_QUERY_SYMBOL) else {
            throw TestFailure("dlopen \(path): \(String(cString: dlerror()))")
        }
        let descriptor = try #require(unsafeBitCast(symbol, to: ath_plugin_query_fn.self)(ATH_ABI_MAJOR))
        let raw = UnsafeRawPointer(descriptor)
        // Only 1.0's 72 bytes exist in such a descriptor: read nothing past them.
        let table = raw.loadUnaligned(fromByteOffset: 56, as: UnsafeRawPointer?.self) ?? raw.loadUnaligned(fromByteOffset: 64, as: UnsafeRawPointer?.self)
        return (raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self), raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self),
                try #require(table).loadUnaligned(as: UInt32.self))
    }

    @Test("the 1.0 header fixture is 1.0's: minor 0, no 1.1 declarations")
    func fixtureIsTheOldHeader() throws {
        let text = try String(contentsOfFile: Self.header10 + "/athens_plugin.h", encoding: .utf8)
        #expect(text.contains("#define ATH_ABI_MINOR 0u"))
        for added in ["ath_call", "ath_host", "ATH_EXPORT", "ATH_KIND_LOCK", "create_with_host", "fetch_ctx", "url"] {
            #expect(!text.contains(added), "\(added) is 1.1")
        }
    }

    @Test("the C examples build against the 1.0 header into 1.0-sized descriptors and tables")
    func examplesBuildAgainst10() throws {
        let built = try Self.builtAgainst10.get()
        let storage = try Self.rawDescriptor(built.storage), fetcher = try Self.rawDescriptor(built.fetcher)
        #expect(storage.size == 72 && storage.minor == 0 && storage.tableSize == 56, "\(storage)")
        #expect(fetcher.size == 72 && fetcher.minor == 0 && fetcher.tableSize == 32, "\(fetcher)")
    }

    @Test("the C examples built against the 1.0 header load and pass plugin-check in this host")
    func examplesBuiltAgainst10PassPluginCheck() throws {
        let built = try Self.builtAgainst10.get()
        let library = try PluginLibrary(path: built.storage)
        #expect(library.abiMinor == 0)
        #expect(library.descriptor.create_with_host == nil, "1.1 fields read as absent")
        #expect(library.storageMethods?.open_ctx == nil && library.storageMethods?.url == nil)
        let storage = try TestSupport.run(TestSupport.athens, ["plugin-check", built.storage, "--large-zip-mib", "4"], timeout: 300)
        #expect(storage.status == 0, "\(storage.stdout)\n\(storage.stderr)")
        #expect(CheckRow.parse(storage.stdout).first?.detail.contains("ABI 1.0") == true)
        let fetcher = try TestSupport.run(TestSupport.athens, ["plugin-check", built.fetcher, "--config", CPluginBuild.rootConfig(CPluginBuild.tree),
                                                               "--module", "example.com/hello", "--version", "v1.1.0"])
        #expect(fetcher.status == 0, "\(fetcher.stdout)\n\(fetcher.stderr)")
    }
}
