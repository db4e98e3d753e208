import Foundation
import Testing

/// The athens process must not load swift-corelibs-foundation's big libraries (libFoundation.so pulls ICU in:
/// ~7 MiB of RSS, issue 15 item 5): every module linked into the executable or a plugin imports
/// FoundationEssentials at most. One stray `import Foundation` puts libFoundation.so back in DT_NEEDED, which
/// these tests catch on the files the suite built and in a serving process.
@Suite("linkage: no libFoundation in the athens process", .blockingBodies)
struct LinkageTests {
    /// Libraries that must not be loaded. FoundationEssentials (no ICU) is allowed.
    static let forbidden = ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so",
                            "libFoundationNetworking.so", "libFoundationXML.so"]

    /// Every plugin product of Package.swift; a missing file fails the test rather than passing it unchecked.
    static let plugins = ["MemoryStorage", "ProxyFetcher", "FileStorage", "GitFetcher", "S3Storage", "FileLock", "RedisLock"]

    /// The file name of each library a DT_NEEDED closure (as `ldd` resolves it, transitively) or a maps file names.
    static func libraryNames(inLdd output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            // "\tlibX.so.1 => /path/libX.so.1 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
            guard let first = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first else { return nil }
            return String(first.split(separator: "/").last ?? first)
        }
    }

    static func forbiddenNames(in names: [String]) -> [String] {
        Array(Set(names.filter { forbidden.contains($0) })).sorted()
    }

    @Test("the names parsed from ldd and maps output catch every forbidden library and nothing else")
    func parserCatchesForbiddenNames() {
        let ldd = """
        \tlinux-vdso.so.1 (0x00007ffd)
        \tlibswiftCore.so => /opt/swift/usr/lib/swift/linux/libswiftCore.so (0x00007f12)
        \tlibFoundationEssentials.so => /opt/swift/usr/lib/swift/linux/libFoundationEssentials.so (0x00007f13)
        \tlibFoundation.so => /opt/swift/usr/lib/swift/linux/libFoundation.so (0x00007f14)
        \tlib_FoundationICU.so => /opt/swift/usr/lib/swift/linux/lib_FoundationICU.so (0x00007f15)
        \t/lib64/ld-linux-x86-64.so.2 (0x00007f16)
        """
        #expect(Self.forbiddenNames(in: Self.libraryNames(inLdd: ldd)) == ["libFoundation.so", "lib_FoundationICU.so"])
        #expect(Self.forbiddenNames(in: Self.libraryNames(inLdd: "\tlibFoundationEssentials.so => /x/libFoundationEssentials.so (0x1)")).isEmpty)
        let maps = "7f00-7f01 r-xp 00000000 08:01 123 /opt/swift/usr/lib/swift/linux/libFoundationNetworking.so\n7f02-7f03 rw-p 00000000 00:00 0 \n"
        #expect(Self.forbiddenNames(in: Self.mappedLibraries(maps)) == ["libFoundationNetworking.so"])
    }

    @Test("neither athens nor any plugin .so needs a Foundation library other than FoundationEssentials, transitively",
          arguments: ["athens"] + plugins)
    func dynamicDependencies(_ product: String) throws {
        let path = product == "athens" ? TestSupport.athens : TestSupport.plugin(product)
        #expect(FileManager.default.fileExists(atPath: path), "\(path) was not built")
        let result = try TestSupport.run("/usr/bin/ldd", [path])
        #expect(result.status == 0, "ldd \(path): \(result.stderr)")
        #expect(!result.stdout.contains("not found"), "\(path) has unresolved libraries:\n\(result.stdout)")
        let names = Self.libraryNames(inLdd: result.stdout)
        // A sanity check that the output was parsed: every Swift binary needs the runtime.
        #expect(names.contains("libswiftCore.so"), "unexpected ldd output for \(path):\n\(result.stdout)")
        #expect(Self.forbiddenNames(in: names).isEmpty, "\(path) loads \(Self.forbiddenNames(in: names))")
    }

    /// File names of the shared objects mapped in a /proc/PID/maps text.
    static func mappedLibraries(_ maps: String) -> [String] {
        maps.split(separator: "\n").compactMap { line in
            guard let slash = line.firstIndex(of: "/") else { return nil }
            return String(line[slash...].split(separator: "/").last ?? "")
        }
    }

    @Test("a serving athens (FileStorage and ProxyFetcher, after a fetch and a stored hit) maps no forbidden library")
    func servingProcessMaps() throws {
        let work = TestSupport.makeTemporaryDirectory("linkage")
        defer { TestSupport.removeDirectory(work) }
        try TestSupport.makeFixtureProxy(work + "/tree")
        let upstream = try FakeUpstream(root: work + "/tree", logPath: work + "/upstream.log")
        defer { upstream.stop() }
        let server = try AthensServer(manifest: """
            {"spoolDirectory": "\(work)", "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store"}},
             "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)"}}]}
            """, directory: work)
        defer { server.stop() }
        // A miss (fetch, validate, save) and then hits, so lazily loaded code has had its chance to load.
        #expect(try server.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        #expect(try server.get("/example.com/hello/@v/v1.0.0.zip").status == 200)
        #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 200)
        #expect(try server.get("/metrics").status == 200)
        // Read by cat: Foundation's String(contentsOfFile:) stops early on a /proc file (its size is 0).
        let maps = try TestSupport.run("/bin/cat", ["/proc/\(server.process.process.processIdentifier)/maps"]).stdout
        let names = Self.mappedLibraries(maps)
        #expect(names.contains("libswiftCore.so"), "unexpected maps of athens")
        // The plugins are mapped from private copies named by content hash (PluginCopies): both must be there.
        let copies = Set(maps.split(separator: "\n").compactMap { line in line.firstIndex(of: "/").map { String(line[$0...]) } }
            .filter { $0.contains("/athens-plugins-") && $0.hasSuffix(".so") })
        #expect(copies.count == 2, "plugin copies mapped: \(copies)")
        #expect(Self.forbiddenNames(in: names).isEmpty, "athens maps \(Self.forbiddenNames(in: names))")
    }
}
