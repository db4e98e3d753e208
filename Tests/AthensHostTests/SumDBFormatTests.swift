import Foundation
import SumDB
import Testing
import Digests

@Suite("SumDB formats: verifier keys, signed notes, tree heads, records, tiles, proofs")
struct SumDBFormatTests {
    // The published example of golang.org/x/mod/sumdb/note's documentation and tests.
    static let peterKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let peterText = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    static let peterSignature = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    static var peterNote: [UInt8] { Array((peterText + "\n" + peterSignature).utf8) }

    @Test("a verifier key parses into name, key hash and Ed25519 key")
    func verifierKey() throws {
        let key = try VerifierKey(Self.peterKey)
        #expect(key.name == "PeterNeumann")
        #expect(key.keyHash == 0xc74f20a3)
        #expect(key.publicKey.count == 32)
    }

    @Test("every proper substring and every one-byte change of a verifier key is refused, as x/mod refuses them")
    func verifierKeyManglings() {
        let bytes = Array(Self.peterKey.utf8)
        for i in 0...bytes.count {
            for j in (i + 1)..<(bytes.count + 1) where i != 0 || j != bytes.count {
                #expect(throws: SumDBError.self) { try VerifierKey(String(decoding: bytes[i..<j], as: UTF8.self)) }
            }
        }
        for i in bytes.indices {
            var changed = bytes
            changed[i] &+= 1
            #expect(throws: SumDBError.self) { try VerifierKey(String(decoding: changed, as: UTF8.self)) }
        }
        // Wrong key length and unknown algorithm, each with a key hash that matches.
        #expect(throws: SumDBError.self) { try VerifierKey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==") }
        #expect(throws: SumDBError.self) { try VerifierKey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") }
        #expect(throws: SumDBError.self) { try VerifierKey("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") }
        #expect(throws: SumDBError.self) { try VerifierKey("") }
    }

    @Test("the published signed note verifies; its text is what was signed")
    func openPublishedNote() throws {
        let note = try Note.open(Self.peterNote, key: VerifierKey(Self.peterKey))
        #expect(note.text == Array(Self.peterText.utf8))
        #expect(note.otherSigners.isEmpty)
    }

    @Test("an altered text is a bad signature; a note signed by other keys only is an unknown key")
    func noteSignatureFailures() throws {
        let key = try VerifierKey(Self.peterKey)
        let altered = Array((Self.peterText.replacingOccurrences(of: "problem,", with: "problem;") + "\n" + Self.peterSignature).utf8)
        #expect(throws: SumDBError.badSignature("invalid signature for key PeterNeumann+c74f20a3")) { try Note.open(altered, key: key) }
        let other = Array((Self.peterText + "\n" + "— Someone AAAAAQAAAAAAAAAA\n").utf8)
        #expect(throws: SumDBError.unknownKey("note is not signed by PeterNeumann+c74f20a3 (signed by: Someone+00000001)")) {
            try Note.open(other, key: key)
        }
        // Another key's signature besides a good one is skipped and reported.
        let both = Array((Self.peterText + "\n" + "— Someone AAAAAQAAAAAAAAAA\n" + Self.peterSignature).utf8)
        #expect(try Note.open(both, key: key).otherSigners == ["Someone+00000001"])
    }

    @Test("malformed notes are refused without crashing", arguments: [
        "", "no signatures\n", "text\n\n", "text\n\n— PeterNeumann x08go\n", "text\n\n-- PeterNeumann AAAAAAAA\n",
        "text\n\n— PeterNeumann\n", "text\n\n— PeterNeumann AAAA\n", "text\n\n— PeterNeumann !!!!\n",
        "text\r\n\n— PeterNeumann AAAAAAAA\n", "text\n\n— PeterNeumann AAAAAAAA", "\n\n\n",
    ])
    func malformedNotes(_ text: String) throws {
        let key = try VerifierKey(Self.peterKey)
        #expect(throws: SumDBError.self) { try Note.open(Array(text.utf8), key: key) }
    }

    @Test("invalid UTF-8 and more than 100 signature lines are refused")
    func hostileNotes() throws {
        let key = try VerifierKey(Self.peterKey)
        #expect(throws: SumDBError.malformed("note is not valid UTF-8")) { try Note.open(Array("a\n\n".utf8) + [0xFF, 0x0A], key: key) }
        let many = Self.peterText + "\n" + String(repeating: "— Someone AAAAAQAAAAAAAAAA\n", count: 101) + Self.peterSignature
        #expect(throws: SumDBError.malformed("note has more than 100 signatures")) { try Note.open(Array(many.utf8), key: key) }
    }

    @Test("tree heads parse and print in the note format")
    func treeHeads() throws {
        let hash = "LTwQfEa4n4rMuHKfJ59viduO1wS6I2jvONAz6ttH61I="
        let tree = try TreeHead(text: Array("go.sum database tree\n4\n\(hash)\n".utf8))
        #expect(tree.size == 4)
        #expect(tree.hash.description == hash)
        #expect(tree.text == "go.sum database tree\n4\n\(hash)\n")
        for bad in ["go.sum database tree\n04\n\(hash)\n", "go.sum database tree\n-4\n\(hash)\n", "go.sum database tree\n+4\n\(hash)\n",
                    "go.sum database tree\n4\n\(hash)", "go.sum database tree\n4\nAAAA\n", "go.sum database trees\n4\n\(hash)\n",
                    "go.sum database tree\n99999999999999999999\n\(hash)\n", ""] {
            #expect(throws: SumDBError.self, "\(bad)") { try TreeHead(text: Array(bad.utf8)) }
        }
    }

    @Test("fuzz finding (sumdb_note): a tree hash in non-canonical base64 is refused, so an accepted note re-prints exactly")
    func nonCanonicalTreeHash() {
        // The seed's hash ends "…61I="; "…61a=" decodes to the same 32 bytes through non-zero padding bits.
        let text = Array("go.sum database tree\n4\nLTwQfEa4n4rMuHKfJ59viduO1wS6I2jvONAz6ttH61a=\n".utf8) + [0xFF, 0xFF]
        #expect(throws: SumDBError.malformed("tree hash is not 32 bytes of base64")) { try TreeHead(text: text) }
    }

    @Test("lookup answers split into record id, text and signed note; malformed ones are refused")
    func lookupResponses() throws {
        let response = try LookupResponse(Array("12\nexample.com/m v1.0.0 h1:x\nexample.com/m v1.0.0/go.mod h1:y\n\ngo.sum database tree\n".utf8))
        #expect(response.id == 12)
        #expect(response.text == Array("example.com/m v1.0.0 h1:x\nexample.com/m v1.0.0/go.mod h1:y\n".utf8))
        #expect(response.signedTree == Array("go.sum database tree\n".utf8))
        for bad in ["", "12", "12\n", "x\nline\n\nnote", "012\nline\n\nnote", "-1\nline\n\nnote", "12\nline\nno blank line",
                    "12\n\n\nnote", "12\nli\u{01}ne\n\nnote", "99999999999999999999\nline\n\nnote"] {
            #expect(throws: SumDBError.self, "\(bad)") { try LookupResponse(Array(bad.utf8)) }
        }
    }

    @Test("tile paths: three-digit groups with x prefixes, .p/W for partial tiles, data tiles")
    func tilePaths() throws {
        let cases: [(Tile, String)] = [
            (Tile(height: 8, level: 0, number: 0, width: 256)!, "tile/8/0/000"),
            (Tile(height: 8, level: 0, number: 1, width: 44)!, "tile/8/0/001.p/44"),
            (Tile(height: 8, level: 2, number: 1234067, width: 256)!, "tile/8/2/x001/x234/067"),
            (Tile(height: 8, level: 1, number: 1000, width: 1)!, "tile/8/1/x001/000.p/1"),
            (Tile(height: 8, level: -1, number: 5, width: 3)!, "tile/8/data/005.p/3"),
            (Tile(height: 2, level: 63, number: 999, width: 4)!, "tile/2/63/999"),
        ]
        for (tile, path) in cases {
            #expect(tile.path == path)
            #expect(try Tile(path: path) == tile)
        }
        for bad in ["tile/8/0/1", "tile/8/0/x001", "tile/8/0/0001", "tile/8/0/001.p/256", "tile/8/0/001.p/0", "tile/8/0/001.p/",
                    "tile/08/0/001", "tile/8/64/001", "tile/31/0/001", "tile/0/0/001", "tile/8/-1/001", "tile/8/0/x000/001",
                    "tiles/8/0/001", "tile/8/0", "tile/8/0/+01", "tile/8/0/001/", "tile/8/0/x999/x999/x999/x999/x999/x999/x999/999"] {
            #expect(throws: SumDBError.self, "\(bad)") { try Tile(path: bad) }
        }
        #expect(Tile(height: 8, level: 0, number: 0, width: 257) == nil)
        #expect(Tile(height: 8, level: 0, number: -1, width: 1) == nil)
    }

    /// Record hashes of a tree of `count` records, and node hashes computed directly from them.
    private struct ReferenceTree {
        let leaves: [LogHash]
        init(count: Int) { leaves = (0..<count).map { TransparencyLog.recordHash(Array("record \($0)\n".utf8)) } }

        func node(_ level: Int, _ index: Int64) -> LogHash {
            if level == 0 { return leaves[Int(index)] }
            return TransparencyLog.nodeHash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))
        }

        /// RFC 6962's MTH over leaves [lo, hi), by its own recursive definition.
        func root(_ lo: Int, _ hi: Int) -> LogHash {
            if hi - lo == 1 { return leaves[lo] }
            var k = 1
            while k * 2 < hi - lo { k *= 2 }
            return TransparencyLog.nodeHash(root(lo, lo + k), root(lo + k, hi))
        }
    }

    @Test("inclusion and consistency proofs verify for every record and every pair of sizes up to 40, and fail when altered")
    func proofsExhaustive() throws {
        let tree = ReferenceTree(count: 40)
        let nodes: TransparencyLog.NodeReader = { (level: Int, index: Int64) throws(SumDBError) -> LogHash in tree.node(level, index) }
        let junk = TransparencyLog.recordHash([1, 2, 3])
        for size in 1...40 {
            let root = try TransparencyLog.treeHash(size: Int64(size), nodes: nodes)
            #expect(root == tree.root(0, size))
            for index in 0..<size {
                let proof = try TransparencyLog.recordProof(index: Int64(index), treeSize: Int64(size), nodes: nodes)
                try TransparencyLog.checkRecord(proof: proof, treeSize: Int64(size), treeHash: root, index: Int64(index), recordHash: tree.leaves[index])
                #expect(throws: SumDBError.self) {
                    try TransparencyLog.checkRecord(proof: proof, treeSize: Int64(size), treeHash: root, index: Int64(index), recordHash: junk)
                }
                if !proof.isEmpty {
                    var altered = proof
                    altered[proof.count / 2] = junk
                    #expect(throws: SumDBError.self) {
                        try TransparencyLog.checkRecord(proof: altered, treeSize: Int64(size), treeHash: root, index: Int64(index), recordHash: tree.leaves[index])
                    }
                    #expect(throws: SumDBError.self) {
                        try TransparencyLog.checkRecord(proof: Array(proof.dropLast()), treeSize: Int64(size), treeHash: root, index: Int64(index), recordHash: tree.leaves[index])
                    }
                }
            }
            for old in 1...size {
                let oldRoot = tree.root(0, old)
                let proof = try TransparencyLog.treeProof(oldSize: Int64(old), newSize: Int64(size), nodes: nodes)
                try TransparencyLog.checkTree(proof: proof, newSize: Int64(size), newHash: root, oldSize: Int64(old), oldHash: oldRoot)
                #expect(throws: SumDBError.self) {
                    try TransparencyLog.checkTree(proof: proof, newSize: Int64(size), newHash: root, oldSize: Int64(old), oldHash: junk)
                }
                #expect(throws: SumDBError.self) {
                    try TransparencyLog.checkTree(proof: proof + [junk], newSize: Int64(size), newHash: root, oldSize: Int64(old), oldHash: oldRoot)
                }
            }
        }
        #expect(throws: SumDBError.self) { try TransparencyLog.recordProof(index: 5, treeSize: 5, nodes: nodes) }
        #expect(throws: SumDBError.self) { try TransparencyLog.treeProof(oldSize: 6, newSize: 5, nodes: nodes) }
        #expect(throws: SumDBError.self) {
            try TransparencyLog.checkRecord(proof: [], treeSize: Int64.max, treeHash: junk, index: Int64.max - 1, recordHash: junk)
        }
    }

    @Test("node hashes read from tiles of height 2 equal the reference tree's, full and partial")
    func hashesFromTiles() throws {
        let tree = ReferenceTree(count: 23)
        let height = 2
        for level in 0..<5 {
            for index in 0..<Int64(23 >> level) {
                let tile = try #require(Tile.holding(level: level, index: index, height: height, treeSize: 23))
                let tileLevel = tile.level * height
                let data = (0..<tile.width).flatMap { tree.node(tileLevel, tile.number << height + Int64($0)).bytes }
                #expect(try tile.nodeHash(level: level, index: index, data: data) == tree.node(level, index), "(\(level), \(index)) in \(tile.path)")
                #expect(throws: SumDBError.self) { try tile.nodeHash(level: level, index: index, data: Array(data.dropLast())) }
            }
        }
        // Tree of 23 with height 2: level 0 has 5 full tiles and a partial one of 3; level 1 (tree level 2) one full and one of 1.
        #expect(Tile.holding(level: 0, index: 22, height: 2, treeSize: 23)?.path == "tile/2/0/005.p/3")
        #expect(Tile.holding(level: 2, index: 4, height: 2, treeSize: 23)?.path == "tile/2/1/001.p/1")
        #expect(Tile.holding(level: 0, index: 23, height: 2, treeSize: 23) == nil)
        #expect(Tile.holding(level: 3, index: 2, height: 2, treeSize: 23) == nil)  // records 16..<24: incomplete
    }

    @Test("base64 round-trips and refuses what Go's StdEncoding refuses")
    func base64() {
        for count in 0..<70 {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("hi".utf8)) == "aGk=")
        // "aGl=" and "aR==" spell "hi" and "i" with non-zero padding bits: not canonical.
        for bad in ["aGk", "aG=k", "a===", "aGk=aGk=", "aG\nk=", "aGk*", "aGl=", "aR=="] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }
}
