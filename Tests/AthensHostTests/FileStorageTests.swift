// FileStorage: layout, atomic saves, crashes mid-save (killed child processes), recovery, catalog. Longer than
// ~400 lines on purpose: one suite whose tests share the process-kill and tree-inspection helpers.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// FileStorage beyond the shared conformance suite: its on-disk layout (checked with the real go command), its
/// refusal of hostile names, its behaviour on a full or read-only disk, and its atomicity across processes and
/// SIGKILL.
@Suite("FileStorage", .blockingBodies)
struct FileStorageTests {
    // MARK: - Helpers

    static func config(_ root: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: ["root": root]), as: UTF8.self)
    }

    static func make(_ root: String) throws -> StoragePlugin {
        try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin("FileStorage")), configJSON: config(root))
    }

    static func save(_ storage: StoragePlugin, _ module: String, _ version: String, zip: [UInt8], mod: [UInt8]? = nil) throws {
        try StorageConformanceTests.save(storage, module, version, zip: zip, mod: mod)
    }

    static func read(_ storage: StoragePlugin, _ module: String, _ version: String, _ artifact: Artifact) throws -> [UInt8] {
        try StorageConformanceTests.read(storage, module, version, artifact)
    }

    static func bytes(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { Array($0) } }

    /// Every path below `root` (hidden ones included), relative and sorted.
    static func tree(_ root: String) -> [String] {
        (FileManager.default.subpaths(atPath: root) ?? []).sorted()
    }

    static func write(_ path: String, _ text: String) {
        try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    /// The deterministic content StorageStress writes (same generator, duplicated here on purpose: the test must
    /// not trust the program it checks).
    enum StressContent {
        static func seed(_ text: String) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            return hash
        }

        static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
            var state = seed &+ 0x9E37_79B9_7F4A_7C15
            var out = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                out[i] = UInt8(truncatingIfNeeded: state)
            }
            return out
        }

        static func files(_ module: String, _ version: String) -> (info: [UInt8], mod: [UInt8], zip: [UInt8]) {
            let seed = seed(module + "@" + version)
            return (Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"}"#.utf8),
                    Array("module \(module)\n\n// \(String(seed, radix: 16))\n".utf8),
                    bytes(Int(seed % 65536) + 1, seed: seed))
        }
    }

    /// One line from `fd` (without its newline), or nil at EOF or after `timeout` seconds.
    static func readLine(_ fd: Int32, timeout: Double) -> String? {
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            var byte: UInt8 = 0
            guard Glibc.read(fd, &byte, 1) == 1 else { return nil }
            if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return nil
    }

    static var stress: String { TestSupport.productsDirectory + "/StorageStress" }

    /// Whether this environment lets tests mount a small tmpfs (needs root); probed once.
    static let canMountTmpfs: Bool = {
        let point = TestSupport.makeTemporaryDirectory("filestorage-mount-probe")
        defer { TestSupport.removeDirectory(point) }
        guard let mounted = try? TestSupport.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", point]), mounted.status == 0 else {
            return false
        }
        _ = try? TestSupport.run("/bin/umount", [point])
        return true
    }()

    /// Runs `body` with a fresh tmpfs of `size` mounted at a temporary directory, unmounted afterwards.
    static func withTmpfs(size: String, _ body: (String) throws -> Void) throws {
        let point = TestSupport.makeTemporaryDirectory("filestorage-tmpfs")
        let mounted = try TestSupport.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", point])
        try #require(mounted.status == 0, "mount: \(mounted.stderr)")
        defer {
            _ = try? TestSupport.run("/bin/umount", [point])
            TestSupport.removeDirectory(point)
        }
        try body(point)
    }

    // MARK: - Config

    @Test("config is refused without root, with a root that is not a non-empty string, or with an unknown key",
          arguments: [
              (#"{}"#, "root"),
              (#"{"root": 5}"#, "root"),
              (#"{"root": ""}"#, "root"),
              (#"{"root": "/tmp/filestorage-unused", "rot": "x"}"#, "rot"),
              (#"["root"]"#, "JSON object"),
          ])
    func badConfig(json: String, mentions: String) throws {
        let error = #expect(throws: PluginError.self) {
            _ = try StoragePlugin(library: PluginLibrary(path: TestSupport.plugin("FileStorage")), configJSON: json)
        }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains(mentions) == true, "\(String(describing: error))")
    }

    @Test("the root is created with its parents")
    func createsRoot() throws {
        let base = TestSupport.makeTemporaryDirectory("filestorage-create")
        defer { TestSupport.removeDirectory(base) }
        let root = base + "/a/b/c"
        let storage = try Self.make(root)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) && isDirectory.boolValue)
        try Self.save(storage, "example.com/created", "v1.0.0", zip: [1])
        #expect(try storage.exists(module: "example.com/created", version: "v1.0.0"))
    }

    // MARK: - Layout

    @Test("files sit at the GOPROXY protocol's paths, with escaped names, and @v/list lists every stored version")
    func layout() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-layout")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        let module = "example.com/FileStore/Hello"
        let pseudo = "v0.0.0-20240101000000-abcdefabcdef"
        for (i, version) in ["v1.1.0-Beta", "v1.0.0", pseudo].enumerated() {
            try Self.save(storage, module, version, zip: [UInt8(i), 7, 7])
        }
        let dir = root + "/example.com/!file!store/!hello/@v"
        #expect(Self.bytes(dir + "/v1.1.0-!beta.zip") == [0, 7, 7])
        #expect(Self.bytes(dir + "/v1.0.0.mod") == Array("module \(module)\n".utf8))
        #expect(Self.bytes(dir + "/v1.0.0.info").map { String(decoding: $0, as: UTF8.self).contains("v1.0.0") } == true)
        // Pseudo-versions are listed too, as in the go command's own cache (its clients pick @latest from them).
        #expect(Self.bytes(dir + "/list") == Array("\(pseudo)\nv1.0.0\nv1.1.0-Beta\n".utf8))
        #expect(Set(try storage.list(module: module)) == ["v1.0.0", "v1.1.0-Beta", pseudo])
        // Nothing else but the lock file.
        #expect(Self.tree(root).filter { $0.hasPrefix("example.com/!file!store/!hello/@v/") }.map { ($0 as NSString).lastPathComponent }.sorted()
                == [".lock", "list", pseudo + ".info", pseudo + ".mod", pseudo + ".zip",
                    "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip", "v1.1.0-!beta.info", "v1.1.0-!beta.mod", "v1.1.0-!beta.zip"])

        try storage.remove(module: module, version: "v1.1.0-Beta")
        #expect(Self.bytes(dir + "/list") == Array("\(pseudo)\nv1.0.0\n".utf8))
        #expect(!FileManager.default.fileExists(atPath: dir + "/v1.1.0-!beta.info"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/v1.1.0-!beta.mod"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/v1.1.0-!beta.zip"))
    }

    @Test("the go command downloads versions saved through the plugin from GOPROXY=file://<root>")
    func goCommandReadsTheTree() throws {
        let work = TestSupport.makeTemporaryDirectory("filestorage-go")
        defer { TestSupport.removeDirectory(work) }
        let root = work + "/root"
        let storage = try Self.make(root)
        let module = "example.com/FileStore/Hello"
        for version in ["v1.0.0", "v1.1.0"] {
            let goMod = "module \(module)\n\ngo 1.19\n"
            let zipPath = work + "/\(version).zip"
            // A real module zip: every entry under "<module>@<version>/".
            let made = try TestSupport.run("/usr/bin/python3", ["-c", """
                import sys, zipfile
                with zipfile.ZipFile(sys.argv[1], "w") as z:
                    z.writestr(sys.argv[2] + "/go.mod", sys.argv[3])
                    z.writestr(sys.argv[2] + "/hello.go", "package hello\\n\\nconst V = \\"" + sys.argv[4] + "\\"\\n")
                """, zipPath, "\(module)@\(version)", goMod, version])
            try #require(made.status == 0, "python3: \(made.stderr)")
            try Self.save(storage, module, version, zip: try #require(Self.bytes(zipPath)), mod: Array(goMod.utf8))
        }
        let environment = [
            "PATH": "/usr/bin:/bin", "HOME": work, "GOPATH": work + "/gopath", "GOMODCACHE": work + "/modcache",
            "GOCACHE": work + "/gocache", "GOPROXY": "file://" + root, "GOSUMDB": "off", "GOFLAGS": "-modcacherw",
            "GOTOOLCHAIN": "local", "GO111MODULE": "on",
        ]
        struct Download: Decodable { var Version: String; var Zip: String?; var Dir: String?; var Error: String? }
        for (query, expected) in [("v1.0.0", "v1.0.0"), ("latest", "v1.1.0")] {
            let result = try TestSupport.run("/usr/bin/go", ["mod", "download", "-json", "\(module)@\(query)"], environment: environment, directory: work)
            try #require(result.status == 0, "go mod download \(query): \(result.stdout) \(result.stderr)")
            let download = try JSONDecoder().decode(Download.self, from: Data(result.stdout.utf8))
            #expect(download.Error == nil)
            #expect(download.Version == expected)
            let dir = try #require(download.Dir)
            let source = try String(contentsOfFile: dir + "/hello.go", encoding: .utf8)
            #expect(source.contains("\"\(expected)\""))
            #expect(FileManager.default.fileExists(atPath: try #require(download.Zip)))
        }
    }

    @Test("open hands out a regular file descriptor the host can sendfile")
    func openGivesFile() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-fd")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        let zip = StorageConformanceTests.randomBytes(70_000, seed: 3)
        try Self.save(storage, "example.com/fd", "v1.0.0", zip: zip)
        let blob = try storage.open(module: "example.com/fd", version: "v1.0.0", artifact: .zip)
        guard case let .file(fd, offset) = blob.shape else {
            Issue.record("expected an fd blob, got \(blob.shape)")
            return
        }
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG)
        #expect(offset == 0 && blob.size == UInt64(zip.count))
        #expect(blob.readAll(limit: 1 << 20) == zip)
    }

    // MARK: - Crash leftovers

    @Test(".mod and .zip without their .info are never served")
    func orphansAreInvisible() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-orphan")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        try Self.save(storage, "example.com/orphan", "v1.0.0", zip: [1])
        // What a save killed between its renames leaves: .mod and .zip in place, no .info.
        let dir = root + "/example.com/orphan/@v"
        Self.write(dir + "/v2.0.0.mod", "module example.com/orphan\n")
        Self.write(dir + "/v2.0.0.zip", "zip")
        for artifact in [Artifact.info, .mod, .zip] {
            let error = #expect(throws: PluginError.self) { _ = try storage.open(module: "example.com/orphan", version: "v2.0.0", artifact: artifact) }
            #expect(error?.code == .notFound)
        }
        #expect(try storage.exists(module: "example.com/orphan", version: "v2.0.0") == false)
        #expect(try storage.list(module: "example.com/orphan") == ["v1.0.0"])
        #expect(try storage.catalog(token: "", pageSize: 10).entries.map(\.version) == ["v1.0.0"])
        // Saving it now replaces the orphans with the saved bytes.
        try Self.save(storage, "example.com/orphan", "v2.0.0", zip: [2, 2])
        #expect(try Self.read(storage, "example.com/orphan", "v2.0.0", .zip) == [2, 2])
    }

    @Test("start-up repairs only what crashed operations' intents name, and leaves live operations alone")
    func startupRecovery() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-recovery")
        defer { TestSupport.removeDirectory(root) }
        do {
            let storage = try Self.make(root)
            try Self.save(storage, "example.com/kept", "v1.0.0", zip: [1, 2, 3])
            try Self.save(storage, "example.com/kept/nested", "v0.1.0", zip: [4])
            try Self.save(storage, "example.com/untouched", "v1.0.0", zip: [5])
        }
        let work = root + "/.tmp"
        #expect(Self.tree(work) == [], "a finished save leaves nothing in the work directory")
        // A save killed between its renames: its intent names the directory, its .info is still a work file.
        let dir = root + "/example.com/kept/@v"
        Self.write(work + "/dead1.intent", "example.com/kept/@v\n")
        Self.write(dir + "/.tmp-dead1.info", "{}")
        Self.write(dir + "/.tmp-dead2.list0", "v9.0.0\n")              // an intent-less work file, found there too
        Self.write(dir + "/v2.0.0.mod", "module example.com/kept\n")
        Self.write(dir + "/v2.0.0.zip", "zip")
        Self.write(dir + "/list", "v1.0.0\nv9.0.0\n")
        // Work files whose intent is gone, an intent killed before it named anything, and a garbled one.
        Self.write(work + "/dead2.zip", "half a zip")
        Self.write(work + "/dead3.intent", "")
        Self.write(work + "/dead4.intent", "../../etc/@v\n")
        // A live operation in another process (its intent flock'd) names the nested module: nothing of it goes.
        let nested = root + "/example.com/kept/nested/@v"
        Self.write(work + "/live5.intent", "example.com/kept/nested/@v\n")
        Self.write(nested + "/.tmp-live5.zip", "being written")
        Self.write(nested + "/v0.2.0.mod", "module example.com/kept/nested\n")
        let liveFD = open(work + "/live5.intent", O_RDONLY)
        try #require(flock(liveFD, LOCK_EX) == 0)
        // Leftovers no intent names are not looked for at start-up (the tree is not walked).
        let untouched = root + "/example.com/untouched/@v"
        Self.write(untouched + "/v9.0.0.zip", "orphan")

        let storage = try Self.make(root)
        #expect(Self.tree(dir).sorted() == [".lock", "list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"])
        #expect(Self.bytes(dir + "/list") == Array("v1.0.0\n".utf8))
        #expect(Self.tree(work) == ["live5.intent"])
        #expect(Self.tree(nested).contains("v0.2.0.mod") && Self.tree(nested).contains(".tmp-live5.zip"))
        #expect(Self.tree(untouched).contains("v9.0.0.zip"))
        #expect(Self.tree(root + "/etc") == [], "a garbled intent made FileStorage touch \(root)/etc")
        #expect(try Self.read(storage, "example.com/kept", "v1.0.0", .zip) == [1, 2, 3])
        #expect(try storage.list(module: "example.com/kept") == ["v1.0.0"])
        #expect(try storage.list(module: "example.com/untouched") == ["v1.0.0"])
        // Once the live operation has died, the next start-up repairs its directory too.
        close(liveFD)
        _ = try Self.make(root)
        #expect(Self.tree(nested).sorted() == [".lock", "list", "v0.1.0.info", "v0.1.0.mod", "v0.1.0.zip"])
        #expect(Self.tree(work) == [])
    }

    @Test("leftovers no intent names are repaired by the module's next save or remove, and by exists for a .info without its parts")
    func lazyRepair() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-lazy")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        try Self.save(storage, "example.com/lazy", "v1.0.0", zip: [1])
        try Self.save(storage, "example.com/other", "v1.0.0", zip: [1])
        let dir = root + "/example.com/lazy/@v"
        // What an older FileStorage (temporary files in @v) or a power loss can leave.
        Self.write(dir + "/.tmp-0123456789abcdef.zip", "half a zip")
        Self.write(dir + "/v2.0.0.mod", "module example.com/lazy\n")
        Self.write(dir + "/v3.0.0.info", "{}")
        Self.write(dir + "/list", "v1.0.0\nv3.0.0\n")
        let live = dir + "/.tmp-aaaaaaaaaaaaaaaa.zip"
        Self.write(live, "being written by an older FileStorage")
        let liveFD = open(live, O_RDONLY)
        defer { close(liveFD) }
        try #require(flock(liveFD, LOCK_EX) == 0)

        // exists sees the .info without its parts: absent, and the directory repaired (so the host fetches it again).
        #expect(try storage.exists(module: "example.com/lazy", version: "v3.0.0") == false)
        #expect(Self.tree(dir).sorted() == [".lock", ".tmp-aaaaaaaaaaaaaaaa.zip", "list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"])
        #expect(Self.bytes(dir + "/list") == Array("v1.0.0\n".utf8))

        // The next save repairs what it finds.
        Self.write(dir + "/v2.0.0.zip", "orphan")
        try Self.save(storage, "example.com/lazy", "v4.0.0", zip: [4])
        #expect(Self.tree(dir).sorted() == [".lock", ".tmp-aaaaaaaaaaaaaaaa.zip", "list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip",
                                            "v4.0.0.info", "v4.0.0.mod", "v4.0.0.zip"])
        #expect(Self.bytes(dir + "/list") == Array("v1.0.0\nv4.0.0\n".utf8))
        // And so does a remove (here in another module).
        let other = root + "/example.com/other/@v"
        Self.write(other + "/v2.0.0.zip", "orphan")
        try storage.remove(module: "example.com/other", version: "v1.0.0")
        #expect(Self.tree(other).sorted() == [".lock", "list"])
        #expect(Self.tree(root + "/.tmp") == [])
    }

    // MARK: - Names beyond the layout's limits

    /// Valid for the go command, beyond what FileStorage can hold: a 300-byte element (NAME_MAX is 255), an
    /// escaped path over 750 bytes made of 200-byte elements, a 300-character pre-release.
    static let beyondLimits: [(module: String, version: String, limit: String)] = [
        ("example.com/" + String(repeating: "a", count: 300), "v1.0.0", "NAME_MAX"),
        ("example.com/" + (0..<4).map { String(repeating: Character(String($0)), count: 200) }.joined(separator: "/"), "v1.0.0", "750 bytes"),
        ("example.com/pre", "v1.0.0-" + String(repeating: "x", count: 300), "NAME_MAX"),
        // Upper case doubles in escaped form: 130 letters make a 260-byte element.
        ("example.com/" + String(repeating: "A", count: 130), "v1.0.0", "NAME_MAX"),
    ]

    @Test("names beyond the layout's limits are not stored: open, remove and save say not found naming the limit; exists and list say none",
          arguments: beyondLimits)
    func beyondLimitsPlugin(module: String, version: String, limit: String) throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-limits")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        var errors: [PluginError?] = []
        errors.append(#expect(throws: PluginError.self) { try Self.save(storage, module, version, zip: [1]) })
        errors.append(#expect(throws: PluginError.self) { _ = try storage.open(module: module, version: version, artifact: .info) })
        errors.append(#expect(throws: PluginError.self) { _ = try storage.open(module: module, version: version, artifact: .zip) })
        errors.append(#expect(throws: PluginError.self) { try storage.remove(module: module, version: version) })
        for error in errors {
            #expect(error?.code == .notFound, "\(String(describing: error))")
            #expect(error?.message.hasPrefix("not stored: FileStorage holds no") == true && error?.message.contains(limit) == true,
                    "\(String(describing: error?.message))")
        }
        #expect(try storage.exists(module: module, version: version) == false)
        if version == "v1.0.0" { #expect(try storage.list(module: module) == []) }
        #expect(Self.tree(root) == [".tmp"], "\(Self.tree(root))")
    }

    @Test("through athens, names beyond FileStorage's limits answer 404 naming the limit (never 5xx), stores nothing; names within them are stored")
    func beyondLimitsThroughAthens() throws {
        let work = TestSupport.makeTemporaryDirectory("filestorage-limits-e2e")
        defer { TestSupport.removeDirectory(work) }
        let upstream = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/generated_upstream.py"])
        defer { upstream.stop() }
        let port = try #require(upstream.firstLine().flatMap { UInt16($0.split(separator: ":").last ?? "") }, "upstream did not start")
        let root = work + "/storage"
        let athens = try AthensServer(manifest: """
            {"storage": {"plugin": "FileStorage", "config": {"root": "\(root)"}}, "spoolDirectory": "\(work)",
             "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:\(port)"}}],
             "defaultFetcher": "upstream"}
            """, directory: work)
        defer { athens.stop() }
        func escaped(_ module: String, _ version: String) -> String {
            "/" + module.map { $0.isUppercase ? "!" + $0.lowercased() : String($0) }.joined() + "/@v/" + version
        }
        for (module, version, limit) in Self.beyondLimits {
            for artifact in [".info", ".mod", ".zip"] {
                let response = try athens.get(escaped(module, version) + artifact)
                let body = String(decoding: response.body, as: UTF8.self)
                #expect(response.status == 404, "\(module.prefix(40))…@\(version.prefix(20))\(artifact): \(response.status) \(body)")
                #expect(body.contains(limit), "\(body)")
            }
            let list = try athens.get(escaped(module, "list"))
            #expect(list.status < 500, "list: \(list.status) \(String(decoding: list.body, as: UTF8.self))")
        }
        #expect(Self.tree(root).filter { $0 != ".tmp" } == [], "\(Self.tree(root))")
        // Long names the layout can hold: a 250-byte element, and a path of 740 bytes.
        let within = [("example.com/" + String(repeating: "w", count: 250), "v1.0.0"),
                      ("example.com/" + (0..<4).map { String(repeating: Character(String($0 + 5)), count: 178) }.joined(separator: "/"), "v1.0.0")]
        for (module, version) in within {
            for artifact in [".info", ".mod", ".zip"] {
                let response = try athens.get(escaped(module, version) + artifact)
                #expect(response.status == 200, "\(module.prefix(40))…\(artifact): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
            }
            #expect(FileManager.default.fileExists(atPath: root + escaped(module, version) + ".zip"))
        }
        #expect(Self.tree(root + "/.tmp") == [])
    }

    // MARK: - Hostile names

    static let hostile: [(String, String)] = [
        ("../escape", "v1.0.0"),
        ("example.com/../../escape", "v1.0.0"),
        ("example.com/./x", "v1.0.0"),
        ("example.com//x", "v1.0.0"),
        ("/example.com/x", "v1.0.0"),
        ("example.com/x/", "v1.0.0"),
        ("example.com/.hidden", "v1.0.0"),
        ("example.com/x/@v", "v1.0.0"),
        ("example.com/!x", "v1.0.0"),
        ("", "v1.0.0"),
        ("example.com/x", "../../v1.0.0"),
        ("example.com/x", "v1.0.0/../../x"),
        ("example.com/x", ".tmp-1.zip"),
        ("example.com/x", ".lock"),
        ("example.com/x", ".."),
        ("example.com/x", ""),
        ("example.com/x", "v1.0.0!"),
        ("example.com/x", "v1/0"),
    ]

    @Test("names that could leave the root or collide with internal files are refused by every method", arguments: hostile)
    func hostileNames(module: String, version: String) throws {
        let base = TestSupport.makeTemporaryDirectory("filestorage-hostile")
        defer { TestSupport.removeDirectory(base) }
        let storage = try Self.make(base + "/root")
        var errors: [PluginError?] = []
        errors.append(#expect(throws: PluginError.self) { try Self.save(storage, module, version, zip: [1]) })
        errors.append(#expect(throws: PluginError.self) { _ = try storage.open(module: module, version: version, artifact: .zip) })
        errors.append(#expect(throws: PluginError.self) { _ = try storage.exists(module: module, version: version) })
        errors.append(#expect(throws: PluginError.self) { try storage.remove(module: module, version: version) })
        for error in errors { #expect(error?.code == .invalid, "\(String(describing: error))") }
        #expect(Self.tree(base) == ["root", "root/.tmp"], "\(Self.tree(base))")
    }

    @Test("list refuses a module path that could leave the root",
          arguments: ["../escape", "example.com/../..", "example.com//x", "/etc", "example.com/x/@v", ""])
    func hostileList(module: String) throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-hostile-list")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        let error = #expect(throws: PluginError.self) { _ = try storage.list(module: module) }
        #expect(error?.code == .invalid)
    }

    @Test("symlinks inside the root are not followed: saves refuse them and symlinked files are not served")
    func symlinks() throws {
        let base = TestSupport.makeTemporaryDirectory("filestorage-symlink")
        defer { TestSupport.removeDirectory(base) }
        let root = base + "/root", outside = base + "/outside"
        let storage = try Self.make(root)
        try FileManager.default.createDirectory(atPath: outside + "/@v", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/example.com/link/@v", withIntermediateDirectories: true)
        for suffix in [".info", ".mod", ".zip"] {
            Self.write(outside + "/@v/v1.0.0" + suffix, "secret")
            try FileManager.default.createSymbolicLink(atPath: root + "/example.com/link/@v/v1.0.0" + suffix, withDestinationPath: outside + "/@v/v1.0.0" + suffix)
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/example.com/evil", withDestinationPath: outside)

        // A symlinked directory on the way: the save fails and writes nothing outside.
        let saveError = #expect(throws: PluginError.self) { try Self.save(storage, "example.com/evil", "v2.0.0", zip: [1]) }
        #expect(saveError?.code == .unavailable)
        #expect(Self.tree(outside).sorted() == ["@v", "@v/v1.0.0.info", "@v/v1.0.0.mod", "@v/v1.0.0.zip"])
        let removeError = #expect(throws: PluginError.self) { try storage.remove(module: "example.com/evil", version: "v1.0.0") }
        #expect(removeError?.code == .unavailable)
        #expect(Self.tree(outside).count == 4)

        // Symlinked files: never opened, listed or counted.
        for artifact in [Artifact.info, .mod, .zip] {
            let error = #expect(throws: PluginError.self) { _ = try storage.open(module: "example.com/link", version: "v1.0.0", artifact: artifact) }
            #expect(error?.code == .notFound)
        }
        #expect(try storage.exists(module: "example.com/link", version: "v1.0.0") == false)
        #expect(try storage.list(module: "example.com/link") == [])
        #expect(try storage.catalog(token: "", pageSize: 10).entries.isEmpty)
    }

    // MARK: - Disk trouble

    @Test("saves from many threads leave no descriptor and no thread behind (each save's fsync threads are joined)")
    func savesFreeWhatTheyTake() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-frees")
        defer { TestSupport.removeDirectory(root) }
        let run = try TestSupport.run(Self.stress, ["bench", TestSupport.plugin("FileStorage"), Self.config(root), "200", "8", "4096"])
        #expect(run.status == 0, "\(run.stderr)")
        let line = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("fds ") }, "\(run.stdout)")
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        try #require(numbers.count == 4, "\(line)")
        #expect(numbers[0] == numbers[1], "descriptors before and after 200 saves: \(line)")
        #expect(numbers[2] == numbers[3], "threads before and after 200 saves: \(line)")
        let storage = try Self.make(root)
        #expect(try storage.list(module: "example.com/bench/c199") == ["v1.0.0"])
        #expect(Self.tree(root + "/.tmp") == [])
    }

    @Test("a failing zip stream stores nothing")
    func failingStream() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-stream")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        // The zip file holds 10 bytes but 20 are announced: the host's reader fails at byte 10.
        let path = root + "/../stream-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(count: 10))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let error = #expect(throws: PluginError.self) {
            try storage.save(module: "example.com/stream", version: "v1.0.0", info: Array("{}".utf8), mod: [], zipFD: fd, zipSize: 20)
        }
        #expect(error?.code == .unavailable)
        #expect(try storage.exists(module: "example.com/stream", version: "v1.0.0") == false)
        #expect(Self.tree(root + "/example.com/stream/@v").filter { $0 != ".lock" } == [], "\(Self.tree(root))")
    }

    @Test("a full disk makes saves unavailable, leaves nothing behind, and later saves work",
          .enabled(if: canMountTmpfs, "needs permission to mount a tmpfs (root)"))
    func diskFull() throws {
        try Self.withTmpfs(size: "256k") { root in
            let storage = try Self.make(root)
            try Self.save(storage, "example.com/full", "v1.0.0", zip: [1])
            let dir = root + "/example.com/full/@v"
            let before = Self.tree(dir)
            let error = #expect(throws: PluginError.self) {
                try Self.save(storage, "example.com/full", "v2.0.0", zip: StorageConformanceTests.randomBytes(1 << 20, seed: 9))
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("No space left on device") == true, "\(String(describing: error))")
            #expect(error?.message.contains("example.com/full@v2.0.0") == true)
            #expect(Self.tree(dir) == before)
            #expect(Self.bytes(dir + "/list") == Array("v1.0.0\n".utf8))
            #expect(try storage.exists(module: "example.com/full", version: "v2.0.0") == false)
            try Self.save(storage, "example.com/full", "v3.0.0", zip: [3])
            #expect(try Self.read(storage, "example.com/full", "v3.0.0", .zip) == [3])
        }
    }

    @Test("a read-only root makes saves and removes unavailable and changes nothing",
          .enabled(if: canMountTmpfs, "needs permission to mount a tmpfs (root)"))
    func readOnlyRoot() throws {
        try Self.withTmpfs(size: "1m") { root in
            let storage = try Self.make(root)
            try Self.save(storage, "example.com/ro", "v1.0.0", zip: [1])
            let before = Self.tree(root)
            let remount = try TestSupport.run("/bin/mount", ["-o", "remount,ro", root])
            try #require(remount.status == 0, "remount: \(remount.stderr)")
            for (module, version) in [("example.com/ro", "v2.0.0"), ("example.com/new", "v1.0.0")] {
                let error = #expect(throws: PluginError.self) { try Self.save(storage, module, version, zip: [2]) }
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("Read-only file system") == true, "\(String(describing: error))")
            }
            let removeError = #expect(throws: PluginError.self) { try storage.remove(module: "example.com/ro", version: "v1.0.0") }
            #expect(removeError?.code == .unavailable)
            #expect(Self.tree(root) == before)
            // Reading still works, and a fresh instance starts on the read-only tree.
            #expect(try Self.read(storage, "example.com/ro", "v1.0.0", .zip) == [1])
            let second = try Self.make(root)
            #expect(try second.list(module: "example.com/ro") == ["v1.0.0"])
        }
    }

    // MARK: - Catalog

    @Test("catalog walks nested modules in path order, resumes after any token, and survives removals")
    func catalogOrder() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-catalog")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        // Nesting and names chosen so that element order differs from plain string order ("a-c" < "a/b").
        let modules = ["example.com/a", "example.com/a/b", "example.com/a/b/c", "example.com/a-c", "example.com/A", "golang.org/x/mod"]
        var all: [String] = []
        for module in modules {
            for version in ["v1.0.0", "v1.10.0", "v1.2.0"] {
                try Self.save(storage, module, version, zip: [1])
                all.append(module + "@" + version)
            }
        }
        let full = try storage.catalog(token: "", pageSize: 1000)
        #expect(full.next == "")
        let order = full.entries.map { $0.module + "@" + $0.version }
        #expect(order.count == all.count && Set(order) == Set(all))
        // Element order: example.com/!a (escaped A) < a < a-c; inside a, "@v" sorts before "b"; versions bytewise.
        #expect(order.prefix(7) == ["example.com/A@v1.0.0", "example.com/A@v1.10.0", "example.com/A@v1.2.0",
                                    "example.com/a@v1.0.0", "example.com/a@v1.10.0", "example.com/a@v1.2.0", "example.com/a/b@v1.0.0"])
        #expect(order.firstIndex(of: "example.com/a/b/c@v1.2.0")! < order.firstIndex(of: "example.com/a-c@v1.0.0")!)
        for pageSize in 1...7 {
            var seen: [String] = []
            var token = ""
            repeat {
                let page = try storage.catalog(token: token, pageSize: pageSize)
                seen += page.entries.map { $0.module + "@" + $0.version }
                token = page.next
            } while !token.isEmpty && seen.count <= all.count
            #expect(seen == order, "page size \(pageSize)")
        }
        // A token stays a position: removing the entry it names (and the next one) loses nothing else.
        let first = try storage.catalog(token: "", pageSize: 4)
        try storage.remove(module: "example.com/a", version: "v1.0.0")    // the 4th entry
        try storage.remove(module: "example.com/a", version: "v1.10.0")   // the 5th
        let second = try storage.catalog(token: first.next, pageSize: 2)
        #expect(second.entries.map { $0.module + "@" + $0.version } == ["example.com/a@v1.2.0", "example.com/a/b@v1.0.0"])
    }

    static func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test("catalog refuses tokens it did not issue", arguments: [
        "x", "fs1.", "fs1.!!!!", "fs2." + base64URL("example.com/a/@v/v1.0.0"),
        "fs1." + base64URL("../../etc/@v/passwd"), "fs1." + base64URL("example.com/a/v1.0.0"),
        "fs1." + base64URL("example.com//a/@v/v1.0.0"), "fs1." + base64URL("@v/v1.0.0"),
        "fs1." + base64URL("example.com/a/@v/.tmp-1"), "fs1." + base64URL("example.com/a/@v/v1.0.0") + "A",
        "fs1." + base64URL("example.com/a/@v/v1.0.0") + "=",
    ])
    func badTokens(token: String) throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-token")
        defer { TestSupport.removeDirectory(root) }
        let storage = try Self.make(root)
        try Self.save(storage, "example.com/a", "v1.0.0", zip: [1])
        let error = #expect(throws: PluginError.self) { _ = try storage.catalog(token: token, pageSize: 5) }
        #expect(error?.code == .invalid)
    }

    // MARK: - Processes

    @Test("processes saving one version at once: exactly one wins, the others are told it exists, bytes never mix")
    func concurrentProcesses() throws {
        let work = TestSupport.makeTemporaryDirectory("filestorage-processes")
        defer { TestSupport.removeDirectory(work) }
        let root = work + "/root"
        _ = try Self.make(root)
        try #require(FileManager.default.isExecutableFile(atPath: Self.stress), "StorageStress not built at \(Self.stress)")
        let size = 3 << 20
        for round in 0..<4 {
            let version = "v1.0.\(round)", start = work + "/start-\(round)"
            let seeds: [UInt64] = [11, 22, 33]
            let children = try seeds.map { seed in
                try ChildProcess(Self.stress, ["save", TestSupport.plugin("FileStorage"), Self.config(root), "example.com/race",
                                               version, String(seed), String(size), start])
            }
            // Released together once every writer is at the start line.
            let ready = children.map { $0.firstLine(timeout: 60) }
            #expect(ready.allSatisfy { $0 == "waiting" }, "\(ready) \(children.map(\.stderr))")
            _ = FileManager.default.createFile(atPath: start, contents: Data())
            let answers = children.map { $0.firstLine(timeout: 60) ?? "(no answer: \($0.stderr))" }
            #expect(answers.filter { $0 == "saved" }.count == 1, "\(answers)")
            #expect(answers.filter { $0 == "exists" }.count == seeds.count - 1, "\(answers)")
            let storage = try Self.make(root)
            let stored = try Self.read(storage, "example.com/race", version, .zip)
            let winner = try #require(seeds.first { StressContent.bytes(size, seed: $0) == stored }, "stored zip matches no writer")
            #expect(try Self.read(storage, "example.com/race", version, .mod) == Array("module example.com/race\n\n// \(String(winner, radix: 16))\n".utf8))
        }
        #expect(Self.tree(root + "/example.com/race/@v").filter { $0.hasPrefix(".") && $0 != ".lock" } == [])
        #expect(Self.tree(root + "/.tmp") == [], "work files or intents left behind")
    }

    @Test("SIGKILL at random moments during saves never leaves a partial version and never loses a saved one")
    func crashes() throws {
        let root = TestSupport.makeTemporaryDirectory("filestorage-crash")
        defer { TestSupport.removeDirectory(root) }
        try #require(FileManager.default.isExecutableFile(atPath: Self.stress), "StorageStress not built at \(Self.stress)")
        let modules = (0..<3).map { "example.com/stress/m\($0)" }
        var saved: [String: Set<String>] = [:]   // module → versions a child reported saved
        var killedMidSave = 0, killedMidCommit = 0
        let started = Date()
        var generator = SystemRandomNumberGenerator()
        // Every other run goes through strace, which delays each rename by 10 ms: the child then spends most of
        // its time inside commits, so kills land between the renames of .mod, .zip, .info and list, the moments
        // where a wrong order would show.
        let strace = "/usr/bin/strace"
        let canTrace = FileManager.default.isExecutableFile(atPath: strace)
        for run in 0..<60 {
            let traced = canTrace && run % 2 == 1
            let arguments = ["loop", TestSupport.plugin("FileStorage"), Self.config(root), String(run)]
            let child = Process()
            child.executableURL = URL(fileURLWithPath: traced ? strace : Self.stress)
            child.arguments = traced
                ? ["-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
                   "-e", "inject=rename,renameat,renameat2:delay_exit=10000", Self.stress] + arguments
                : arguments
            let out = Pipe()
            child.standardOutput = out
            child.standardError = FileHandle.nullDevice
            try child.run()
            let ready = Self.readLine(out.fileHandleForReading.fileDescriptor, timeout: 30)
            let pid = try #require(ready.flatMap { $0.hasPrefix("ready ") ? pid_t($0.dropFirst(6)) : nil }, "run \(run): no pid (\(ready ?? "nothing"))")
            // The random moment of the kill: part of the scenario, not synchronisation.
            usleep(UInt32.random(in: (traced ? 150_000 : 20_000)...(traced ? 600_000 : 200_000), using: &generator))
            kill(pid, SIGKILL)
            child.waitUntilExit()
            if !traced {
                #expect(child.terminationReason == .uncaughtSignal, "run \(run): the child exited by itself (status \(child.terminationStatus))")
            }
            for line in String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "saved" { saved[String(parts[1]), default: []].insert(String(parts[2])) }
            }

            // Before any new instance repairs anything: every committed version is whole and exact, list names
            // only committed versions, and every reported save is committed.
            for module in modules {
                let dir = root + "/" + module + "/@v"
                let names = Set(Self.tree(dir))
                if names.contains(where: { $0.hasPrefix(".tmp-") }) { killedMidSave += 1 }
                let committed = Set(names.filter { $0.hasSuffix(".info") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) })
                if names.contains(where: { ($0.hasSuffix(".mod") || $0.hasSuffix(".zip")) && !committed.contains(String($0.dropLast(4))) }) {
                    killedMidCommit += 1
                }
                for version in committed {
                    #expect(names.contains(version + ".mod") && names.contains(version + ".zip"), "\(module)@\(version) is partial")
                    if version.hasPrefix("v0.\(run).") {
                        let expected = StressContent.files(module, version)
                        // Booleans, so a failure prints a name rather than 64 KB of bytes.
                        let zipMatches = Self.bytes(dir + "/\(version).zip") == expected.zip
                        let modMatches = Self.bytes(dir + "/\(version).mod") == expected.mod
                        let infoMatches = Self.bytes(dir + "/\(version).info") == expected.info
                        #expect(zipMatches, "\(module)@\(version).zip differs")
                        #expect(modMatches, "\(module)@\(version).mod differs")
                        #expect(infoMatches, "\(module)@\(version).info differs")
                    }
                }
                let listed = Set((Self.bytes(dir + "/list").map { String(decoding: $0, as: UTF8.self) } ?? "").split(separator: "\n").map(String.init))
                #expect(listed.isSubset(of: committed), "\(module): list names \(listed.subtracting(committed))")
                let lost = saved[module, default: []].subtracting(committed)
                #expect(lost.isEmpty, "\(module): reported saved but missing: \(lost.sorted())")
            }

            // A fresh instance cleans up: no temporary files, no orphans, lists exact. (An intent whose killed
            // owner has not quite gone is rightly left alone - its flock is still held -: start again until it has.)
            var storage = try Self.make(root)
            if Self.tree(root + "/.tmp") != [] {
                _ = waitUntil(timeout: 10) {
                    guard let fresh = try? Self.make(root) else { return false }
                    storage = fresh
                    return Self.tree(root + "/.tmp") == []
                }
            }
            #expect(Self.tree(root + "/.tmp") == [], "work files or intents left after start-up")
            for module in modules {
                let dir = root + "/" + module + "/@v"
                let names = Set(Self.tree(dir))
                #expect(!names.contains { $0.hasPrefix(".") && $0 != ".lock" }, "\(module): hidden files left after start-up")
                let committed = Set(names.filter { $0.hasSuffix(".info") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) })
                for name in names where name.hasSuffix(".mod") || name.hasSuffix(".zip") {
                    #expect(committed.contains(String(name.dropLast(4))), "\(module): orphan \(name) left after start-up")
                }
                #expect(Set(try storage.list(module: module)) == committed)
                let listed = Set((Self.bytes(dir + "/list").map { String(decoding: $0, as: UTF8.self) } ?? "").split(separator: "\n").map(String.init))
                #expect(listed == committed, "\(module): list is not exact after start-up")
            }
            if run >= 49 && Date().timeIntervalSince(started) > 50 { break }
        }
        let total = saved.values.map(\.count).reduce(0, +)
        #expect(total >= 100, "too few saves to mean anything: \(total)")
        #expect(killedMidSave >= 5, "kills rarely hit a save in progress (\(killedMidSave))")
        #expect(!canTrace || killedMidCommit >= 3, "kills rarely hit a commit between its renames (\(killedMidCommit))")
        // Finally every reported version reads back exactly through the plugin.
        let storage = try Self.make(root)
        for (module, versions) in saved {
            for version in versions {
                let expected = StressContent.files(module, version)
                let zipMatches = try Self.read(storage, module, version, .zip) == expected.zip
                let modMatches = try Self.read(storage, module, version, .mod) == expected.mod
                #expect(zipMatches && modMatches, "\(module)@\(version) reads back different bytes")
            }
        }
    }
}
