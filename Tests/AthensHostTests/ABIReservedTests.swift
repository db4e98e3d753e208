import Foundation
import PluginABI
import Testing
@testable import PluginHost

/// 1.1's rule for `reserved`: zero in the descriptor and in every table, refused at load with one line naming the
/// field, so that a later minor can give it a meaning without old plugins' junk being misread.
extension ABICompatibilityTests {
    /// The storage example (or the fetcher example) re-exported with one `reserved` field set to 7.
    static func reservedVariant(_ field: String) throws -> String {
        let fetcher = field.hasPrefix("fetcher")
        let text = """
        #define ath_plugin_query example_inner_query
        #include "\(fetcher ? CPluginBuild.fetcherSource : CPluginBuild.storageSource)"
        #undef ath_plugin_query
        static ath_plugin copy;
        static \(fetcher ? "ath_fetcher_methods" : "ath_storage_methods") table;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            copy = *inner;
            table = *inner->\(fetcher ? "fetcher" : "storage");
            \(field == "descriptor" ? "copy.reserved = 7;" : "table.reserved = 7;")
            copy.\(fetcher ? "fetcher" : "storage") = &table;
            return &copy;
        }
        """
        return try CPluginBuild.compile(text: text, into: directory, name: "libReserved\(field.filter(\.isLetter)).so")
    }

    @Test("a non-zero reserved field in the descriptor or a table is refused at load, naming the field", arguments: [
        ("descriptor", "descriptor field reserved is 7, must be 0"),
        ("storage table", "storage table field reserved is 7, must be 0"),
        ("fetcher table", "fetcher table field reserved is 7, must be 0"),
    ])
    func nonZeroReservedRefused(field: String, line: String) throws {
        let path = try Self.reservedVariant(field)
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: path) }
        #expect(error?.description == "plugin \(path): \(line)")
        // plugin-check and the server say the same, in one line.
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path])
        #expect(result.status == 1)
        #expect(CheckRow.parse(result.stdout).first?.outcome == "FAIL")
        #expect(result.stdout.contains(line), "\(result.stdout)")
    }

    @Test("a 1.0-sized descriptor (72 bytes) loads; one smaller than 1.0's fields is refused naming 72")
    func descriptorSizes() throws {
        #expect(PluginLibrary.requiredDescriptorSize == 72)
        let text = """
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.storageSource)"
        #undef ath_plugin_query
        #include <stddef.h>
        static ath_plugin copy;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            copy = *inner;
            copy.struct_size = SIZE;
            return &copy;
        }
        """
        let ok = try CPluginBuild.compile(text: "#define SIZE offsetof(ath_plugin, create_with_host)\n" + text, into: Self.directory, name: "libDescriptor72.so")
        let library = try PluginLibrary(path: ok)
        #expect(library.descriptor.create_with_host == nil && library.descriptor.lock == nil)
        let small = try CPluginBuild.compile(text: "#define SIZE offsetof(ath_plugin, fetcher)\n" + text, into: Self.directory, name: "libDescriptor64.so")
        let error = #expect(throws: PluginLoadError.self) { _ = try PluginLibrary(path: small) }
        #expect(error?.reason == "descriptor struct_size 64 is smaller than ABI 1.0's 72")
    }
}
