import Foundation
import GoModule
import SumDB
import Testing
import Digests

/// Fixture module trees and the go command's own hashes for them.
enum SumDBFixtures {
    /// The modules of make_fixture_proxy.py plus example.com/big (stored and deflated entries, a 300 KB entry that
    /// spans several read chunks, names whose byte order differs from case-folded order).
    static let modules = ["example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "example.com/hello@v1.2.0-pre.1",
                          "example.com/Upper/Case@v0.1.0", "example.com/multi/v2@v2.0.0", "example.com/legacy@v2.0.0+incompatible",
                          "example.com/m@v1.0.0", "example.com/dep@v1.0.0", "example.com/app@v1.0.0", "example.com/big@v1.0.0"]

    /// Writes the tree into a fresh directory under `parent`; returns its path.
    static func makeTree(in parent: String) throws -> String {
        let tree = parent + "/proxy"
        try TestSupport.makeFixtureProxy(tree)
        let script = """
            import json, os, random, sys, zipfile
            root, module, version = sys.argv[1], "example.com/big", "v1.0.0"
            vdir = os.path.join(root, "example.com/big/@v"); os.makedirs(vdir)
            gomod = "module example.com/big\\n\\ngo 1.19\\n"
            rng = random.Random(7)
            files = [("go.mod", gomod, zipfile.ZIP_DEFLATED),
                     ("a.go", "package big\\n", zipfile.ZIP_STORED),
                     ("B.go", "package big\\n\\nconst B = 1\\n", zipfile.ZIP_DEFLATED),
                     ("Z/x.go", "package x\\n", zipfile.ZIP_STORED),
                     ("_z.txt", "underscore\\n", zipfile.ZIP_DEFLATED),
                     ("data/random.txt", "".join(rng.choice("abcdef\\n") for _ in range(300000)), zipfile.ZIP_DEFLATED),
                     ("data/plain.txt", "x" * 200000, zipfile.ZIP_STORED)]
            with zipfile.ZipFile(os.path.join(vdir, version + ".zip"), "w") as z:
                for name, text, method in files:
                    z.writestr("%s@%s/%s" % (module, version, name), text, compress_type=method)
            open(os.path.join(vdir, version + ".mod"), "w").write(gomod)
            json.dump({"Version": version, "Time": "2024-01-02T03:04:05Z"}, open(os.path.join(vdir, version + ".info"), "w"))
            open(os.path.join(vdir, "list"), "w").write(version + "\\n")
            """
        let big = try TestSupport.run("/usr/bin/env", ["python3", "-c", script, tree])
        guard big.status == 0 else { throw TestFailure("writing example.com/big: \(big.stderr)") }
        return tree
    }

    /// The file of module@version in a GOPROXY tree (`ext` "zip" or "mod").
    static func file(_ tree: String, _ moduleVersion: String, _ ext: String) throws -> String {
        let at = moduleVersion.firstIndex(of: "@")!
        let path = try ModulePath.escapePath(String(moduleVersion[..<at]))
        let version = try ModulePath.escapeVersion(String(moduleVersion[moduleVersion.index(after: at)...]))
        return "\(tree)/\(path)/@v/\(version).\(ext)"
    }

    /// `go mod download -json` against the tree → module@version → (Sum, GoModSum).
    static func goSums(_ modules: [String], tree: String) throws -> [String: (zip: String, mod: String)] {
        let result = try GoCommand.run(["mod", "download", "-json"] + modules, proxy: "file://" + tree)
        var sums: [String: (zip: String, mod: String)] = [:]
        for chunk in result.stdout.components(separatedBy: "\n}") where chunk.contains("\"Path\"") {
            guard let object = try JSONSerialization.jsonObject(with: Data((chunk + "\n}").utf8)) as? [String: Any] else { continue }
            sums["\(object["Path"] ?? "")@\(object["Version"] ?? "")"] = (object["Sum"] as? String ?? "", object["GoModSum"] as? String ?? "")
        }
        guard sums.count == modules.count else { throw TestFailure("go mod download: \(result.stderr)") }
        return sums
    }
}

@Suite("DirHash: h1 hashes as the go command computes them", .blockingBodies)
struct DirHashTests {
    @Test("h1 of every fixture zip and go.mod equals what the go command writes to go.sum")
    func equalsGoCommand() throws {
        let directory = TestSupport.makeTemporaryDirectory("dirhash")
        defer { TestSupport.removeDirectory(directory) }
        let tree = try SumDBFixtures.makeTree(in: directory)
        let sums = try SumDBFixtures.goSums(SumDBFixtures.modules, tree: tree)
        for module in SumDBFixtures.modules {
            let zipPath = try SumDBFixtures.file(tree, module, "zip")
            let zipBytes = Array(try Data(contentsOf: URL(fileURLWithPath: zipPath)))
            let fd = open(zipPath, O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            let fromFile = try DirHash.hashZip(fd: fd, size: UInt64(zipBytes.count))
            #expect(fromFile == sums[module]?.zip, "\(module)")
            #expect(try DirHash.hashZip(bytes: zipBytes) == fromFile, "\(module): memory and fd reads agree")
            let parts = module.split(separator: "@").map(String.init)
            let checked = try DirHash.checkAndHashZip(fd: fd, size: UInt64(zipBytes.count), module: parts[0], version: parts[1])
            #expect(checked.hash == fromFile, "\(module): hashed while checked (the ingest record) equals hashed alone")
            let mod = Array(try Data(contentsOf: URL(fileURLWithPath: try SumDBFixtures.file(tree, module, "mod"))))
            #expect(DirHash.hashGoMod(mod) == sums[module]?.mod, "\(module)")
        }
        // The known answer make_fixture_proxy.py records for example.com/m (x/mod's dirhash).
        #expect(sums["example.com/m@v1.0.0"]?.zip == "h1:fCHMqo5ggHEQvwcrsN81zr5orRk5lClR36KRHpfUjKg=")
    }

    /// Writes a zip with python (one entry per (name, size, method) of repeated bytes) and returns its path.
    private func pythonZip(_ directory: String, _ entries: [(String, Int, String)], name: String = "test.zip") throws -> String {
        let path = directory + "/" + name
        let list = entries.map { "(\"\($0.0)\", \($0.1), zipfile.\($0.2))" }.joined(separator: ", ")
        let script = """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], "w") as z:
                for name, size, method in [\(list)]:
                    z.writestr(name, b"\\0" * size, compress_type=method)
            """
        let result = try TestSupport.run("/usr/bin/env", ["python3", "-c", script, path])
        guard result.status == 0 else { throw TestFailure(result.stderr) }
        return path
    }

    /// h1 computed by python's zipfile + hashlib: an independent reference for zips the go command would refuse.
    private func pythonHash1(_ path: String) throws -> String {
        let script = """
            import base64, hashlib, sys, zipfile
            z = zipfile.ZipFile(sys.argv[1])
            lines = "".join("%s  %s\\n" % (hashlib.sha256(z.read(n)).hexdigest(), n) for n in sorted(z.namelist()))
            print("h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())
            """
        let result = try TestSupport.run("/usr/bin/env", ["python3", "-c", script, path])
        guard result.status == 0 else { throw TestFailure(result.stderr) }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func peakRSS() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    @Test("a 256 MiB entry (deflated to a few hundred KiB) is hashed through fixed buffers: peak RSS grows far less than the entry")
    func boundedMemory() async throws {
        let directory = TestSupport.makeTemporaryDirectory("dirhash-big")
        defer { TestSupport.removeDirectory(directory) }
        let size = 256 << 20
        let path = try pythonZip(directory, [("m@v1.0.0/zeros", size, "ZIP_DEFLATED"), ("m@v1.0.0/go.mod", 10, "ZIP_STORED")])
        let expected = try pythonHash1(path)
        // Hashed in a child process of its own (an exit test): VmHWM is the whole process's peak, and in this one the
        // tests running at the same time (128 MiB uploads, 300 MiB zips read whole for comparison) raise it too.
        // The child prints its hash and its peak's growth; the checks are made here.
        let result = try await #require(processExitsWith: .success, observing: [\.standardOutputContent]) { [path = path as String] in
            let before = DirHashTests.peakRSS()
            let fd = open(path, O_RDONLY)
            var info = stat()
            fstat(fd, &info)
            let hash = try DirHash.hashZip(fd: fd, size: UInt64(info.st_size))
            let growth = DirHashTests.peakRSS() - before
            close(fd)
            FileHandle.standardOutput.write(Data("\(hash) \(growth)\n".utf8))
        }
        let fields = String(decoding: result.standardOutputContent, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        try #require(fields.count == 2, "the child printed: \(fields)")
        let growth = try #require(Int(fields[1]))
        #expect(String(fields[0]) == expected)
        #expect(growth < size / 4, "peak RSS grew by \(growth) bytes while hashing a \(size)-byte entry")
    }

    @Test("an entry that inflates past its declared size is refused after one buffer, not inflated to the end")
    func inflatesPastDeclaredSize() throws {
        let directory = TestSupport.makeTemporaryDirectory("dirhash-bomb")
        defer { TestSupport.removeDirectory(directory) }
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try pythonZip(directory, [("m@v1.0.0/bomb", 64 << 20, "ZIP_DEFLATED")]))))
        // Declare 1000 bytes in the central directory (uncompressed size at +24 of the 0x02014b50 header).
        let central = try #require(bytes.indices.last { bytes[$0] == 0x50 && bytes[$0 + 1] == 0x4b && bytes[$0 + 2] == 1 && bytes[$0 + 3] == 2 })
        bytes.replaceSubrange(central + 24..<central + 28, with: [0xE8, 0x03, 0, 0])
        #expect(throws: ZipError.self) { try DirHash.hashZip(bytes: bytes) }
        do {
            _ = try DirHash.hashZip(bytes: bytes)
        } catch {
            #expect(error.message.contains("more than its declared 1000 bytes"), "\(error)")
        }
    }

    @Test("a changed data byte fails the CRC check; truncated data, a bad local header and an unknown method are refused")
    func corruptEntries() throws {
        let directory = TestSupport.makeTemporaryDirectory("dirhash-corrupt")
        defer { TestSupport.removeDirectory(directory) }
        let stored = Array(try Data(contentsOf: URL(fileURLWithPath: try pythonZip(directory, [("m@v1.0.0/a", 100, "ZIP_STORED")], name: "s.zip"))))
        #expect(try DirHash.hashZip(bytes: stored) == (try pythonHash1(directory + "/s.zip")))
        var flipped = stored
        flipped[30 + "m@v1.0.0/a".utf8.count + 5] ^= 1  // a byte of the entry's data
        #expect(throws: ZipError(message: "zip: checksum error in entry \"m@v1.0.0/a\"")) { try DirHash.hashZip(bytes: flipped) }

        var badLocal = stored
        badLocal[0] = 0  // the local header signature
        #expect(throws: ZipError.self) { try DirHash.hashZip(bytes: badLocal) }

        // A local extra length that pushes the data past the end of the file.
        var longExtra = stored
        longExtra[28] = 0xFF
        longExtra[29] = 0xFF
        #expect(throws: ZipError.self) { try DirHash.hashZip(bytes: longExtra) }

        let deflated = Array(try Data(contentsOf: URL(fileURLWithPath: try pythonZip(directory, [("m@v1.0.0/a", 5000, "ZIP_DEFLATED")], name: "d.zip"))))
        #expect(try DirHash.hashZip(bytes: deflated) == (try pythonHash1(directory + "/d.zip")))
        var garbage = deflated
        for i in 30 + 10..<30 + 10 + 8 { garbage[i] = 0xFF }  // the start of the deflate stream
        #expect(throws: ZipError.self) { try DirHash.hashZip(bytes: garbage) }

        // Method 12 (bzip2) in both headers.
        var method = stored
        method[8] = 12
        let central = try #require(method.indices.last { method[$0] == 0x50 && method[$0 + 1] == 0x4b && method[$0 + 2] == 1 && method[$0 + 3] == 2 })
        method[central + 10] = 12
        #expect(throws: ZipError.self) { try DirHash.hashZip(bytes: method) }
    }

    @Test("a repeated name is hashed as dirhash does: once per entry, with the last entry's contents")
    func repeatedNames() throws {
        let directory = TestSupport.makeTemporaryDirectory("dirhash-dup")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/dup.zip"
        let script = """
            import sys, warnings, zipfile
            warnings.simplefilter("ignore")
            with zipfile.ZipFile(sys.argv[1], "w") as z:
                z.writestr("m@v1.0.0/a", b"first")
                z.writestr("m@v1.0.0/b", b"other")
                z.writestr("m@v1.0.0/a", b"second")
            """
        let made = try TestSupport.run("/usr/bin/env", ["python3", "-c", script, path])
        #expect(made.status == 0, "\(made.stderr)")
        let second = SHA256.hash(Array("second".utf8))
        let expected = try DirHash.hash1([("m@v1.0.0/a", second), ("m@v1.0.0/a", second), ("m@v1.0.0/b", SHA256.hash(Array("other".utf8)))])
        #expect(try DirHash.hashZip(bytes: Array(Data(contentsOf: URL(fileURLWithPath: path)))) == expected)
    }

    @Test("Hash1 sorts names bytewise and refuses a name with a newline")
    func hash1Rules() throws {
        let digest = SHA256.hash(Array("x".utf8))
        let forward = try DirHash.hash1([("a", digest), ("B", digest), ("_", digest)])
        let backward = try DirHash.hash1([("_", digest), ("B", digest), ("a", digest)])
        #expect(forward == backward)
        #expect(throws: ZipError.self) { try DirHash.hash1([("a\nb", digest)]) }
        // go.mod "module example.com/m\n" (make_fixture_proxy's example.com/m) as the go command hashes it.
        #expect(DirHash.hashGoMod(Array("module example.com/m\n".utf8)) == "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k=")
    }
}
