import Foundation
import SumDB
import Synchronization
import Testing
import Digests

/// Against the test checksum database (x/mod's server): what verifies, and every way an answer can be wrong.
@Suite("SumDBVerifier against a real checksum database on 127.0.0.1", .blockingBodies)
struct SumDBVerifierTests {
    /// go.sum lines for `count` synthetic modules (gen/mNNN v1.0.0), with distinct fake hashes.
    static func syntheticGoSum(_ count: Int, salt: String = "") -> String {
        (0..<count).map { i in
            let hash = Base64.encode(SHA256.hash(Array("\(salt)\(i)".utf8)))
            let mod = Base64.encode(SHA256.hash(Array("\(salt)mod\(i)".utf8)))
            let name = "example.com/gen/m" + String(1000 + i).dropFirst()
            return "\(name) v1.0.0 h1:\(hash)\n\(name) v1.0.0/go.mod h1:\(mod)\n"
        }.joined()
    }

    static func name(_ i: Int) -> String { "example.com/gen/m" + String(1000 + i).dropFirst() }

    /// A verifier over `server`, with `tamper` applied to each answer (path, body) → body.
    static func verifier(_ server: SumDBServer, key: String? = nil, latest: TreeHead? = nil,
                         tamper: @escaping @Sendable (String, [UInt8]) -> [UInt8] = { $1 }) throws -> SumDBVerifier {
        SumDBVerifier(key: try VerifierKey(key ?? server.verifierKey), latest: latest) { path in tamper(path, try server.fetch(path)) }
    }

    @Test("records of a 300-record tree verify from full and partial tiles of two levels; a lazily added record proves the tree grew consistently")
    func verifiesRecords() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-ok")
        defer { TestSupport.removeDirectory(directory) }
        let tree = try SumDBFixtures.makeTree(in: directory)
        let gosum = Self.syntheticGoSum(300)
        let server = try SumDBServer(gosum: gosum, proxy: tree, directory: directory)
        defer { server.stop() }
        let verifier = try Self.verifier(server)
        let lines = gosum.split(separator: "\n").map(String.init)
        for i in [0, 1, 5, 127, 255, 256, 257, 298, 299] {
            let sums = try verifier.lookup(path: Self.name(i), version: "v1.0.0")
            #expect(sums.lines == [lines[2 * i], lines[2 * i + 1]])
            #expect(sums.recordID == Int64(i))
            #expect(sums.tree.size == 300)
            #expect(sums.zipHash.map { "\(Self.name(i)) v1.0.0 \($0)" } == lines[2 * i])
        }
        #expect(verifier.latest?.size == 300)
        let tiles = Set(server.requests.filter { $0.hasPrefix("/tile/") })
        #expect(tiles == ["/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/1/000.p/1"], "\(tiles)")

        let note300 = try server.fetch("latest")
        // A module only the proxy tree has: the server hashes it with x/mod's dirhash and appends it (record 300).
        let hello = try verifier.lookup(path: "example.com/hello", version: "v1.1.0")
        #expect(hello.recordID == 300)
        #expect(hello.tree.size == 301)
        #expect(verifier.latest?.size == 301)
        let zipPath = try SumDBFixtures.file(tree, "example.com/hello@v1.1.0", "zip")
        #expect(hello.zipHash == (try DirHash.hashZip(bytes: Array(Data(contentsOf: URL(fileURLWithPath: zipPath))))))
        let modPath = try SumDBFixtures.file(tree, "example.com/hello@v1.1.0", "mod")
        #expect(hello.goModHash == DirHash.hashGoMod(Array(try Data(contentsOf: URL(fileURLWithPath: modPath)))))

        // Cached full tiles are not fetched again; the new partial tile of 45 is.
        #expect(server.requests.filter { $0 == "/tile/8/0/000" }.count == 1)
        #expect(server.requests.contains("/tile/8/0/001.p/45"))

        // An older signed tree is still accepted (it is a prefix of the newest) and leaves the newest in place.
        #expect(try verifier.verifyTree(note: note300).size == 300)
        #expect(verifier.latest?.size == 301)
        #expect(throws: SumDBError.self) { try verifier.lookup(path: "example.com/absent", version: "v1.0.0") }
    }

    @Test("concurrent lookups on one verifier while the tree grows all verify, and the newest tree wins")
    func concurrentLookups() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-concurrent")
        defer { TestSupport.removeDirectory(directory) }
        let tree = try SumDBFixtures.makeTree(in: directory)
        let server = try SumDBServer(gosum: Self.syntheticGoSum(300), proxy: tree, directory: directory)
        defer { server.stop() }
        let verifier = try Self.verifier(server)
        // Each fixture module is appended on its first lookup, so trees of 301…310 are signed while others are checked.
        let work = SumDBFixtures.modules + (0..<10).map { Self.name($0 * 29) + "@v1.0.0" }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: work.count) { i in
            let module = work[i]
            let at = module.firstIndex(of: "@")!
            do {
                _ = try verifier.lookup(path: String(module[..<at]), version: String(module[module.index(after: at)...]))
            } catch {
                failures.withLock { $0.append("\(module): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(verifier.latest?.size == 310)
    }

    @Test("an altered record text fails its inclusion proof")
    func tamperedRecord() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-record")
        defer { TestSupport.removeDirectory(directory) }
        let server = try SumDBServer(gosum: Self.syntheticGoSum(20), directory: directory)
        defer { server.stop() }
        let verifier = try Self.verifier(server) { path, body in
            guard path.hasPrefix("lookup/") else { return body }
            var bytes = body
            let h1 = bytes.indices.dropLast().first { bytes[$0] == UInt8(ascii: "h") && bytes[$0 + 1] == UInt8(ascii: "1") }!
            bytes[h1 + 3] = bytes[h1 + 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            return bytes
        }
        #expect(throws: SumDBError.proofFailed("record 7 is not in the signed tree of 20 records")) {
            try verifier.lookup(path: Self.name(7), version: "v1.0.0")
        }
    }

    @Test("a genuine record of another module is a record mismatch")
    func recordOfAnotherModule() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-mismatch")
        defer { TestSupport.removeDirectory(directory) }
        let server = try SumDBServer(gosum: Self.syntheticGoSum(20), directory: directory)
        defer { server.stop() }
        let verifier = SumDBVerifier(key: try VerifierKey(server.verifierKey)) { path in
            try server.fetch(path.replacingOccurrences(of: "m007@", with: "m008@"))
        }
        #expect {
            try verifier.lookup(path: Self.name(7), version: "v1.0.0")
        } throws: { error in
            guard case .recordMismatch(let message) = error as? SumDBError else { return false }
            return message.contains("example.com/gen/m008 v1.0.0")
        }
    }

    @Test("a different key of the same name is an unknown key; an altered tree note is a bad signature")
    func wrongKeyAndAlteredNote() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-key")
        defer { TestSupport.removeDirectory(directory) }
        let server = try SumDBServer(gosum: Self.syntheticGoSum(5), directory: directory)
        defer { server.stop() }
        let other = try SumDBServer(gosum: Self.syntheticGoSum(1), directory: directory)
        let otherKey = other.verifierKey
        other.stop()
        #expect(otherKey.hasPrefix("sumdb.test+") && otherKey != server.verifierKey)
        let wrongKey = try Self.verifier(server, key: otherKey)
        #expect {
            try wrongKey.lookup(path: Self.name(1), version: "v1.0.0")
        } throws: { error in
            guard case .unknownKey = error as? SumDBError else { return false }
            return true
        }
        // The tree size in the note changed from 5 to 6: the text no longer matches its signature.
        let altered = try Self.verifier(server) { path, body in
            Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "tree\n5\n", with: "tree\n6\n").utf8)
        }
        #expect {
            try altered.lookup(path: Self.name(1), version: "v1.0.0")
        } throws: { error in
            guard case .badSignature = error as? SumDBError else { return false }
            return true
        }
        #expect(altered.latest == nil)
    }

    @Test("an altered tile hash fails the proof; a short tile is malformed; a failed fetch says which path")
    func tamperedTiles() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-tile")
        defer { TestSupport.removeDirectory(directory) }
        let server = try SumDBServer(gosum: Self.syntheticGoSum(300), directory: directory)
        defer { server.stop() }
        // One bit of one hash of the level-0 tile the proof of record 10 reads its siblings from (record 11's leaf).
        let flipped = try Self.verifier(server) { path, body in
            guard path == "tile/8/0/000" else { return body }
            var bytes = body
            bytes[11 * 32] ^= 1
            return bytes
        }
        #expect {
            try flipped.lookup(path: Self.name(10), version: "v1.0.0")
        } throws: { error in
            guard case .proofFailed = error as? SumDBError else { return false }
            return true
        }
        #expect(flipped.latest?.size == 300)  // the note itself was genuine and is kept
        let short = try Self.verifier(server) { path, body in path.hasPrefix("tile/") ? Array(body.dropLast()) : body }
        #expect {
            try short.lookup(path: Self.name(10), version: "v1.0.0")
        } throws: { error in
            guard case .malformed(let message) = error as? SumDBError else { return false }
            return message.contains("bytes, not")
        }
        let failing = SumDBVerifier(key: try VerifierKey(server.verifierKey)) { path in
            guard !path.hasPrefix("tile/") else { throw TestFailure("connection refused") }
            return try server.fetch(path)
        }
        #expect {
            try failing.lookup(path: Self.name(10), version: "v1.0.0")
        } throws: { error in
            guard case .fetchFailed(let path, _) = error as? SumDBError else { return false }
            return path.hasPrefix("tile/8/")
        }
    }

    @Test("a partial tile the server no longer has is read from the full tile's prefix")
    func partialTileFallback() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-partial")
        defer { TestSupport.removeDirectory(directory) }
        let server = try SumDBServer(gosum: Self.syntheticGoSum(300), directory: directory)
        defer { server.stop() }
        // Same first 300 records, so its full tile 001 begins with the 44 hashes of the partial tile 001.p/44.
        let bigger = try SumDBServer(gosum: Self.syntheticGoSum(600), signerKey: server.signerKey, directory: directory)
        defer { bigger.stop() }
        let refused = Mutex<[String]>([])
        let verifier = SumDBVerifier(key: try VerifierKey(server.verifierKey)) { path in
            if path.hasPrefix("tile/8/0/") && path.contains(".p/") {
                refused.withLock { $0.append(path) }
                throw TestFailure("404 not found")
            }
            return try path.hasPrefix("tile/8/0/") ? bigger.fetch(path) : server.fetch(path)
        }
        let sums = try verifier.lookup(path: Self.name(270), version: "v1.0.0")
        #expect(sums.tree.size == 300)
        #expect(sums.recordID == 270)
        #expect(refused.withLock { $0 } == ["tile/8/0/001.p/44"])
    }

    @Test("a tree head that is not an extension of the one seen before is a proof failure (history rewritten, or forked)")
    func inconsistentTrees() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-fork")
        defer { TestSupport.removeDirectory(directory) }
        let honest = try SumDBServer(gosum: Self.syntheticGoSum(300), directory: directory)
        defer { honest.stop() }
        let seen = try Self.verifier(honest).lookup(path: Self.name(1), version: "v1.0.0").tree

        // Same key, the same 300 records but record 3 rewritten, then 10 more: a longer tree that does not extend `seen`.
        var lines = Self.syntheticGoSum(310).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[6] = "\(Self.name(3)) v1.0.0 h1:\(Base64.encode(SHA256.hash(Array("moved tag".utf8))))"
        let rewritten = try SumDBServer(gosum: lines.joined(separator: "\n"), signerKey: honest.signerKey, directory: directory)
        defer { rewritten.stop() }
        let longer = try Self.verifier(rewritten, key: honest.verifierKey, latest: seen)
        #expect {
            try longer.lookup(path: Self.name(305), version: "v1.0.0")
        } throws: { error in
            guard case .proofFailed(let message) = error as? SumDBError else { return false }
            return message.contains("is not a prefix of the signed tree of 310")
        }
        #expect(longer.latest == seen)

        // The same size with different contents: a fork.
        var same = Self.syntheticGoSum(300).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        same[6] = lines[6]
        let forked = try SumDBServer(gosum: same.joined(separator: "\n"), signerKey: honest.signerKey, directory: directory)
        defer { forked.stop() }
        let fork = try Self.verifier(forked, key: honest.verifierKey, latest: seen)
        #expect(throws: SumDBError.proofFailed("two signed trees of 300 records have different hashes: the log forked")) {
            try fork.lookup(path: Self.name(3), version: "v1.0.0")
        }
        // Alone (no earlier tree), the rewritten log is self-consistent: only history exposes it.
        #expect(try Self.verifier(rewritten, key: honest.verifierKey).lookup(path: Self.name(3), version: "v1.0.0").zipHash
            == "h1:" + Base64.encode(SHA256.hash(Array("moved tag".utf8))))
        // And `latest` answers through the same checks.
        #expect(throws: SumDBError.self) { try Self.verifier(rewritten, key: honest.verifierKey, latest: seen).refreshLatest() }
        #expect(try Self.verifier(honest, latest: seen).refreshLatest() == seen)
    }

    @Test("the sumdb_note fuzz seeds are genuine answers: they verify, so mutations start past the signature")
    func fuzzSeedsVerify() throws {
        for (seed, module, records) in [("tree20", "example.com/gen/m005", 20), ("tree300", "example.com/gen/m270", 300)] {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: TestSupport.packageRoot + "/fuzz/corpus/sumdb_note/" + seed)))
            let marker = Array("\0TILES\0".utf8)
            let start = try #require((0..<bytes.count - marker.count).first { bytes[$0..<$0 + marker.count].elementsEqual(marker) })
            var tiles: [String: [UInt8]] = [:]
            var at = start + marker.count
            while let newline = bytes[at...].firstIndex(of: 0x0A) {
                let length = bytes[(newline + 1)..<(newline + 5)].reduce(0) { $0 << 8 | Int($1) }
                tiles[String(decoding: bytes[at..<newline], as: UTF8.self)] = Array(bytes[(newline + 5)..<(newline + 5 + length)])
                at = newline + 5 + length
            }
            let lookup = Array(bytes[..<start])
            let found = tiles
            let verifier = SumDBVerifier(key: try VerifierKey("sumdb.test+848c9b58+AXQQYj7saARpY2glxo91VZJYiH5FqTkTWGAW8dmlvjkT")) { path in
                if path.hasPrefix("lookup/") { return lookup }
                guard let tile = found[path] else { throw TestFailure("no tile \(path) in the seed") }
                return tile
            }
            let sums = try verifier.lookup(path: module, version: "v1.0.0")
            #expect(sums.tree.size == Int64(records))
            #expect(sums.lines.count == 2)
        }
    }

    @Test("bad module paths and versions are refused before anything is fetched")
    func badInput() throws {
        let fetched = Mutex(0)
        let verifier = SumDBVerifier(key: try VerifierKey(SumDBFormatTests.peterKey)) { _ in
            fetched.withLock { $0 += 1 }
            return []
        }
        for (path, version) in [("", "v1.0.0"), ("example.com/m", "v1.0.0\n"), ("../x", "v1.0.0"), ("example.com/m", "")] {
            #expect(throws: SumDBError.self) { try verifier.lookup(path: path, version: version) }
        }
        #expect(fetched.withLock { $0 } == 0)
    }

    @Test("the go command accepts the same server as GOSUMDB and refuses a module whose hash the server disagrees with")
    func goCommandCrossCheck() throws {
        let directory = TestSupport.makeTemporaryDirectory("sumdb-go")
        defer { TestSupport.removeDirectory(directory) }
        let tree = try SumDBFixtures.makeTree(in: directory)
        // hello v1.1.0's zip hash is served wrong (as if its tag had moved upstream); the rest comes from the tree.
        let wrong = "example.com/hello v1.1.0 h1:\(Base64.encode(SHA256.hash(Array("moved".utf8))))\n"
            + "example.com/hello v1.1.0/go.mod h1:RslnPMa/nR3RpskRbvoDBlr6/b2RhFS0EEnq72RQTo0=\n"
        let server = try SumDBServer(gosum: wrong, proxy: tree, directory: directory)
        defer { server.stop() }
        let environment = ["GOSUMDB": "\(server.verifierKey) \(server.url)", "GONOSUMDB": ""]
        let good = try GoCommand.run(["mod", "download", "-json", "example.com/hello@v1.0.0", "example.com/Upper/Case@v0.1.0"],
                                     proxy: "file://" + tree, extraEnvironment: environment)
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
        #expect(server.requests.contains { $0.hasPrefix("/lookup/example.com/hello@v1.0.0") }, "the go command asked our server")
        let bad = try GoCommand.run(["mod", "download", "-json", "example.com/hello@v1.1.0"], proxy: "file://" + tree,
                                    extraEnvironment: environment)
        #expect(bad.status != 0)
        #expect((bad.stdout + bad.stderr).contains("SECURITY ERROR"), "\(bad.stdout) \(bad.stderr)")

        // Our verifier reads the same records: verified, and unequal to the zip's real hash — the disagreement
        // ingest verification will act on.
        let verifier = try Self.verifier(server)
        let helloZip = Array(try Data(contentsOf: URL(fileURLWithPath: try SumDBFixtures.file(tree, "example.com/hello@v1.1.0", "zip"))))
        let served = try verifier.lookup(path: "example.com/hello", version: "v1.1.0")
        #expect(served.zipHash != (try DirHash.hashZip(bytes: helloZip)))
        let upper = try verifier.lookup(path: "example.com/Upper/Case", version: "v0.1.0")
        let upperZip = Array(try Data(contentsOf: URL(fileURLWithPath: try SumDBFixtures.file(tree, "example.com/Upper/Case@v0.1.0", "zip"))))
        #expect(upper.zipHash == (try DirHash.hashZip(bytes: upperZip)))
    }
}
