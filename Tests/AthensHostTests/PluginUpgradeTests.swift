import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// A running athens whose one fetcher is the upgrade fixture at `pluginPath`, with its own manifest file, so a
/// test can rewrite the manifest, send SIGHUP and wait for the outcome in its log.
private final class UpgradableServer {
    let process: ChildProcess
    let port: UInt16
    let manifestPath: String
    var pid: pid_t { process.process.processIdentifier }

    init(directory: String, fetchers: [(name: String, plugin: String)]) throws {
        manifestPath = directory + "/manifest-\(UUID().uuidString).json"
        try Self.write(manifestPath, fetchers: fetchers)
        process = try ChildProcess(TestSupport.athens, ["--config", manifestPath])
        guard let line = process.firstLine(), line.hasPrefix("listening on "), let port = UInt16(line.split(separator: ":").last ?? "") else {
            throw TestFailure("athens did not start: \(process.stderr)")
        }
        self.port = port
    }

    static func write(_ path: String, fetchers: [(name: String, plugin: String)]) throws {
        let list = fetchers.map { #"{"name": "\#($0.name)", "plugin": "\#($0.plugin)"}"# }.joined(separator: ", ")
        try #"{"listen": "127.0.0.1:0", "pluginDirectory": "\#(TestSupport.productsDirectory)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [\#(list)]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
    }

    func get(_ path: String) throws -> (status: Int, body: String) {
        let client = try RawClient(port: port)
        client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        guard let response = client.readResponse(timeout: 20) else { throw TestFailure("no response to \(path); stderr: \(process.stderr)") }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    /// Sends SIGHUP and waits for the reload's outcome line ("reloaded" or "reload refused"); returns its text.
    @discardableResult
    func reload() throws -> String {
        let before = outcomes()
        kill(pid, SIGHUP)
        _ = waitUntil { outcomes() != before || !process.process.isRunning }
        let lines = process.stderr.split(separator: "\n").filter { $0.contains("msg=reloaded") || $0.contains("reload refused") }
        guard outcomes() > before, let last = lines.last else { throw TestFailure("no reload outcome; stderr: \(process.stderr)") }
        return String(last)
    }

    private func outcomes() -> Int {
        process.stderr.split(separator: "\n").filter { $0.contains("msg=reloaded") || $0.contains("reload refused") }.count
    }

    /// The private plugin copies the process has mapped (distinct files, from /proc/<pid>/maps).
    func mappedCopies() throws -> Set<String> {
        // Through cat: /proc files report size 0, which a plain file read may take at its word.
        let maps = try TestSupport.run("/bin/cat", ["/proc/\(pid)/maps"]).stdout
        return Set(maps.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init)
        }.filter { $0.contains("/athens-plugins-\(pid)-") })
    }

    /// The process's copies directory (none before the first load, gone after exit).
    func copiesDirectories() -> [String] {
        let parent = NSTemporaryDirectory()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        return names.filter { $0.hasPrefix("athens-plugins-\(pid)-") }.map { (parent as NSString).appendingPathComponent($0) }
    }

    /// Per copy mapped: the KiB it maps (Size) and holds resident (Rss), summed over its mappings, from smaps.
    func copyMemory() throws -> [String: (size: Int, rss: Int)] {
        let smaps = try TestSupport.run("/bin/cat", ["/proc/\(pid)/smaps"]).stdout
        var result: [String: (size: Int, rss: Int)] = [:]
        var current: String?
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                current = fields.count >= 6 && fields[5].contains("/athens-plugins-\(pid)-") ? String(fields[5]) : nil
            } else if let current, fields.count >= 2, let kb = Int(fields[1]) {
                if fields[0] == "Size:" { result[current, default: (0, 0)].size += kb }
                if fields[0] == "Rss:" { result[current, default: (0, 0)].rss += kb }
            }
        }
        return result
    }

    /// VmRSS and VmSize in KiB.
    func memory() throws -> (rss: Int, vsz: Int) {
        let status = try TestSupport.run("/bin/cat", ["/proc/\(pid)/status"]).stdout
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return (field("VmRSS"), field("VmSize"))
    }

    func stop() { process.stop() }
}

/// Hot plugin upgrade: a plugin file replaced on disk is loaded anew at SIGHUP (from a private, content-named
/// copy); one overwritten in place cannot crash the host; an unchanged one is not loaded again.
@Suite("plugin upgrade", .blockingBodies, .serialized)
struct PluginUpgradeTests {
    static let work = TestSupport.makeTemporaryDirectory("upgrade")

    /// Builds the upgrade fixture answering `version` into a staging file; returns its path.
    private func build(_ version: String, paddingKB: Int = 1, tag: String = "") throws -> String {
        try TestSupport.compileCPlugin("upgrade_fetcher.c", defines: ["BUILD_VERSION=\"\(version)\"", "PADDING_KB=\(paddingKB)"],
                                       into: Self.work, name: "staging-\(version)-\(paddingKB)\(tag)-\(UUID().uuidString).so")
    }

    private func listed(_ server: UpgradableServer, _ module: String) throws -> String {
        let response = try server.get("/example.com/up/\(module)/@v/list")
        #expect(response.status == 200, "\(response.body)")
        return response.body.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("mv of a new build + SIGHUP: the new code serves without a restart; install -m 755 works the same")
    func replaceWithMove() throws {
        let directory = TestSupport.makeTemporaryDirectory("upgrade-mv")
        let path = directory + "/libUpgradeFetcher.so"
        #expect(rename(try build("v1.0.0"), path) == 0)
        let server = try UpgradableServer(directory: directory, fetchers: [("up", path)])
        defer { server.stop() }
        #expect(try listed(server, "a") == "v1.0.0")
        let initial = try server.mappedCopies()   // MemoryStorage's and the fetcher's

        #expect(rename(try build("v1.1.0"), path) == 0)
        #expect(try server.reload().contains("msg=reloaded"))
        #expect(server.process.stderr.contains("plugin file changed: loaded its new content"))
        #expect(try listed(server, "b") == "v1.1.0", "the new build serves")
        #expect(try server.get("/example.com/up/c/@latest").body.contains("\"v1.1.0\""))
        let after = try server.mappedCopies()
        #expect(initial.count == 2 && after.isSuperset(of: initial) && after.count == 3, "the old build stays mapped: \(after)")

        let installed = try TestSupport.run("/usr/bin/install", ["-m", "755", try build("v1.2.0"), path])
        #expect(installed.status == 0, "\(installed.stderr)")
        try server.reload()
        #expect(try listed(server, "d") == "v1.2.0")
        #expect(server.process.process.isRunning)
    }

    @Test("the loaded .so overwritten in place (truncated, then other bytes): the next requests still work, no crash")
    func overwriteInPlace() throws {
        let directory = TestSupport.makeTemporaryDirectory("upgrade-inplace")
        let path = directory + "/libUpgradeFetcher.so"
        #expect(rename(try build("v1.0.0"), path) == 0)
        let server = try UpgradableServer(directory: directory, fetchers: [("up", path)])
        defer { server.stop() }
        #expect(try listed(server, "a") == "v1.0.0")

        // Same inode, new bytes: int3 everywhere. Had the host mapped this file, its next call into the plugin
        // would execute them (or, while the file is short, meet SIGBUS).
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 0)
        #expect(try listed(server, "b") == "v1.0.0", "served while the file is empty")
        try handle.write(contentsOf: Data(repeating: 0xCC, count: size))
        try handle.close()
        for module in ["c", "d", "e"] { #expect(try listed(server, module) == "v1.0.0") }
        #expect(server.process.process.isRunning)

        // A SIGHUP now reads the garbage: refused with a clear line, the running build keeps serving, and the
        // garbage's copy (it maps nothing) is not kept.
        let copiesDirectory = try #require(server.copiesDirectories().first)
        let copiesBefore = try FileManager.default.contentsOfDirectory(atPath: copiesDirectory).sorted()
        let refused = try server.reload()
        #expect(try FileManager.default.contentsOfDirectory(atPath: copiesDirectory).sorted() == copiesBefore)
        #expect(refused.contains("reload refused") && refused.contains(path) && refused.contains("cannot load"), "\(refused)")
        #expect(try listed(server, "f") == "v1.0.0")

        // cp over it (in place again, a real build this time) + SIGHUP: the new build serves.
        let copied = try TestSupport.run("/bin/cp", [try build("v1.1.0"), path])
        #expect(copied.status == 0)
        #expect(try server.reload().contains("msg=reloaded"))
        #expect(try listed(server, "g") == "v1.1.0")
        #expect(server.process.process.isRunning)
    }

    @Test("SIGHUP with the file unchanged loads no new copy; touched, or the same bytes at another path, reuse the copy")
    func unchangedFile() throws {
        let directory = TestSupport.makeTemporaryDirectory("upgrade-same")
        let path = directory + "/libUpgradeFetcher.so"
        #expect(rename(try build("v1.0.0"), path) == 0)
        let server = try UpgradableServer(directory: directory, fetchers: [("up", path)])
        defer { server.stop() }
        let copies = try server.mappedCopies()
        #expect(copies.count == 2, "MemoryStorage's and the fetcher's: \(copies)")
        let copiesDirectory = try #require(server.copiesDirectories().first)
        func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: copiesDirectory)) ?? []).sorted() }
        #expect(files().count == 2)

        for _ in 0..<3 { #expect(try server.reload().contains("msg=reloaded")) }
        #expect(try server.mappedCopies() == copies)
        #expect(files().count == 2)

        // A new mtime (identity changed) but the same content: read again, same copy.
        #expect(utimes(path, nil) == 0)
        // The same bytes under a second name, used by a second fetcher.
        let twin = directory + "/libTwin.so"
        #expect(copyfile(path, twin))
        try UpgradableServer.write(server.manifestPath, fetchers: [("up", path), ("twin", twin)])
        #expect(try server.reload().contains("msg=reloaded"))
        #expect(try server.mappedCopies() == copies)
        #expect(files().count == 2)
        #expect(!server.process.stderr.contains("plugin file changed"))
        #expect(try listed(server, "a") == "v1.0.0")

        // The copies are removed when the process exits normally.
        server.stop()
        #expect(server.process.process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: copiesDirectory))
    }

    @Test("memory: each distinct build loaded stays mapped (about its file's size per changed reload); a build loaded before costs nothing again")
    func memoryPerVersion() throws {
        let directory = TestSupport.makeTemporaryDirectory("upgrade-memory")
        let path = directory + "/libUpgradeFetcher.so"
        let paddingKB = 512
        let builds = try (0..<6).map { try build("v1.\($0).0", paddingKB: paddingKB) }
        let fileKB = try #require(FileManager.default.attributesOfItem(atPath: builds[0])[.size] as? Int) / 1024
        #expect(copyfile(builds[0], path))
        let server = try UpgradableServer(directory: directory, fetchers: [("up", path)])
        defer { server.stop() }
        _ = try listed(server, "warm")
        let start = try server.memory()
        let initial = try server.copyMemory()
        for (index, build) in builds.enumerated().dropFirst() {
            let staged = path + ".new"
            #expect(copyfile(build, staged))
            #expect(rename(staged, path) == 0)
            try server.reload()
            #expect(try listed(server, "m\(index)") == "v1.\(index).0")
        }
        let grown = try server.memory()
        let versions = builds.count - 1
        let copies = try server.copyMemory()
        let added = copies.filter { initial[$0.key] == nil }
        #expect(added.count == versions, "every distinct build stays mapped: \(copies.keys.sorted())")
        for (copy, cost) in added {
            // Mapped: the file's segments, page-rounded; resident: at least the padding read by each list.
            #expect(cost.size >= fileKB && cost.size < fileKB + 1024, "\(copy): \(cost.size) KiB mapped for a \(fileKB) KiB file")
            #expect(cost.rss >= paddingKB / 2, "\(copy): \(cost.rss) KiB resident")
        }
        let mappedPerVersion = added.values.map(\.size).reduce(0, +) / max(1, versions)
        let residentPerVersion = added.values.map(\.rss).reduce(0, +) / max(1, versions)
        // The whole process's figures move with the reload's own churn (pool threads, allocator arenas) as well.
        print("plugin upgrade memory: a \(fileKB) KiB plugin adds \(mappedPerVersion) KiB mapped, \(residentPerVersion) KiB resident per changed reload; process VSZ \(grown.vsz - start.vsz) KiB, RSS \(grown.rss - start.rss) KiB over \(versions) reloads")

        // Back to builds already loaded: same copies, no new mapping.
        for build in builds.prefix(3) {
            let staged = path + ".new"
            #expect(copyfile(build, staged))
            #expect(rename(staged, path) == 0)
            try server.reload()
        }
        #expect(Set(try server.copyMemory().keys) == Set(copies.keys))
        #expect(try listed(server, "back") == "v1.2.0")
    }

    private func copyfile(_ from: String, _ to: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: from) else { return false }
        return FileManager.default.createFile(atPath: to, contents: data, attributes: [.posixPermissions: 0o755])
    }
}

/// The store behind the hot upgrade, in process: identity, content names, refusal of a file being written.
@Suite("plugin store", .blockingBodies)
struct PluginStoreTests {
    @Test("same identity: the same library; new content: another copy; same content again: the first copy")
    func identityAndContent() throws {
        let directory = TestSupport.makeTemporaryDirectory("store")
        let store = PluginStore(parent: directory)
        defer { store.removeCopies() }
        let path = directory + "/libUp.so"
        let a = try TestSupport.compileCPlugin("upgrade_fetcher.c", defines: ["BUILD_VERSION=\"v1.0.0\""], into: directory, name: "a.so")
        let b = try TestSupport.compileCPlugin("upgrade_fetcher.c", defines: ["BUILD_VERSION=\"v1.1.0\""], into: directory, name: "b.so")
        try FileManager.default.copyItem(atPath: a, toPath: path)
        let first = try store.library(at: path)
        #expect(first.path == path)
        #expect(first.loadedFile != path && first.loadedFile.hasPrefix(directory + "/athens-plugins-\(getpid())-"))
        #expect(try store.library(at: path) === first)
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: b, toPath: path)
        let second = try store.library(at: path)
        #expect(second !== first && second.loadedFile != first.loadedFile)
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: a, toPath: path)
        #expect(try store.library(at: path) === first)
        let copies = try FileManager.default.contentsOfDirectory(atPath: try #require(store.copiesDirectory))
        #expect(copies.count == 2 && copies.allSatisfy { $0.hasSuffix(".so") }, "\(copies)")
    }

    @Test("a missing or non-ELF file is refused naming the file as given, not the copy")
    func refusals() throws {
        let directory = TestSupport.makeTemporaryDirectory("store-bad")
        let store = PluginStore(parent: directory)
        defer { store.removeCopies() }
        let missing = #expect(throws: PluginLoadError.self) { _ = try store.library(at: directory + "/libNope.so") }
        #expect(missing?.reason.contains("No such file") == true)
        let text = directory + "/libText.so"
        try "not a library\n".write(toFile: text, atomically: true, encoding: .utf8)
        let bad = #expect(throws: PluginLoadError.self) { _ = try store.library(at: text) }
        #expect(bad?.description.hasPrefix("plugin \(text): cannot load") == true, "\(bad?.description ?? "")")
        #expect(bad?.reason.contains("athens-plugins") == false, "names the copy: \(bad?.reason ?? "")")
        let dir = #expect(throws: PluginLoadError.self) { _ = try store.library(at: directory) }
        #expect(dir?.reason.contains("not a regular file") == true)
        // The text's copy mapped nothing and was removed; a library that loaded and failed a check stays mapped, so its copy stays.
        let copies = try #require(store.copiesDirectory)
        #expect(try FileManager.default.contentsOfDirectory(atPath: copies).isEmpty)
        let badMagic = try TestSupport.compileCPlugin("test_storage.c", defines: ["BAD_MAGIC"], into: directory, name: "libBadMagic.so")
        let checked = #expect(throws: PluginLoadError.self) { _ = try store.library(at: badMagic) }
        #expect(checked?.description.hasPrefix("plugin \(badMagic): bad magic") == true, "\(checked?.description ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: copies).count == 1)
    }

    @Test("directories of copies left by processes that ended are removed; a live process's are kept")
    func abandonedDirectories() throws {
        let parent = TestSupport.makeTemporaryDirectory("store-abandoned")
        // A pid no process can have: pids stay below pid_max.
        let pidMax = try #require(pid_t(try String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let dead = pidMax
        let abandoned = parent + "/athens-plugins-\(dead)-abcdef"
        let live = parent + "/athens-plugins-\(getppid())-abcdef"
        for path in [abandoned, live] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let store = PluginStore(parent: parent)
        defer { store.removeCopies() }
        _ = try store.library(at: try TestSupport.compileCPlugin("upgrade_fetcher.c", into: parent, name: "libUp.so"))
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(FileManager.default.fileExists(atPath: live))
    }

    @Test("ELF symbol reader: a C plugin defines no Go runtime symbol; non-ELF files read as none")
    func elfSymbols() throws {
        let directory = TestSupport.makeTemporaryDirectory("elf")
        let plugin = try TestSupport.compileCPlugin("upgrade_fetcher.c", into: directory, name: "libUp.so")
        #expect(ELFSymbols.definesAny(of: ["ath_plugin_query"], inFileAt: plugin))
        #expect(!ELFSymbols.definesAny(of: GoRuntimeGuard.runtimeSymbols, inFileAt: plugin))
        // Imported, not defined: strlen is only a reference in the plugin.
        #expect(!ELFSymbols.definesAny(of: ["strlen"], inFileAt: plugin))
        let text = directory + "/text"
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(!ELFSymbols.definesAny(of: ["x"], inFileAt: text))
        var truncated = try #require(FileManager.default.contents(atPath: plugin))
        truncated = truncated.prefix(100)
        try truncated.write(to: URL(fileURLWithPath: directory + "/short.so"))
        #expect(!ELFSymbols.definesAny(of: ["ath_plugin_query"], inFileAt: directory + "/short.so"))
    }
}
