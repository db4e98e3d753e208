// A checksum-database client that trusts nothing it fetches: every lookup's tree note is signature-checked,
// proved consistent with the newest tree seen before, and the record proved included in it, from tiles.

import GoModule
import Synchronization

/// The go.sum lines the checksum database holds for one module version, after every check passed.
public struct VerifiedSums: Equatable, Sendable {
    /// The record's lines without their "\n", e.g. "example.com/m v1.0.0 h1:…" and "example.com/m v1.0.0/go.mod h1:…".
    public let lines: [String]
    /// The h1 hash of the module zip, if the record has one.
    public let zipHash: String?
    /// The h1 hash of the go.mod, if the record has one.
    public let goModHash: String?
    /// The record's index in the log.
    public let recordID: Int64
    /// The signed tree the record was proved in.
    public let tree: TreeHead
}

/// Verifies checksum-database answers fetched through a caller's transport.
///
/// `fetch` gets a path relative to the database's base URL ("lookup/…", "tile/8/…", "latest") and returns the body
/// of a successful answer or throws (a `SumDBError` as is, such as `.notFound` for a 404; anything else is wrapped). The verifier keeps the newest verified tree head and refuses any later one
/// that is not an extension of it (or an earlier one that it does not extend): a server cannot show different
/// clients different histories without one of them noticing.
public final class SumDBVerifier: Sendable {
    /// The key every tree note must be signed with.
    public let key: VerifierKey
    /// Tile height; the go command and sum.golang.org use 8.
    public let tileHeight: Int
    private let fetch: @Sendable (String) throws -> [UInt8]
    private let state: Mutex<State>

    private struct State {
        var latest: TreeHead?
        /// Full tiles from successful verifications (immutable once full); bounded.
        var tiles: [Tile: [UInt8]] = [:]
    }

    /// Most full tiles kept between calls (8 KiB each).
    static let tileCacheLimit = 512

    /// A verifier for `key`, optionally resuming from a tree head verified earlier (persisted by the caller).
    public init(key: VerifierKey, latest: TreeHead? = nil, tileHeight: Int = 8, fetch: @escaping @Sendable (String) throws -> [UInt8]) {
        self.key = key
        self.tileHeight = tileHeight
        self.fetch = fetch
        self.state = Mutex(State(latest: latest))
    }

    /// The newest tree head verified so far.
    public var latest: TreeHead? { state.withLock { $0.latest } }

    /// Looks up `path`@`version` and returns its verified go.sum lines.
    public func lookup(path: String, version: String) throws(SumDBError) -> VerifiedSums {
        let escaped: String
        do {
            escaped = try ModulePath.escapePath(path) + "@" + ModulePath.escapeVersion(version)
        } catch {
            throw .malformed("module \(quote(path))@\(quote(version)): \(error.message)")
        }
        let body = try get("lookup/" + escaped)
        let response = try LookupResponse(body)
        let tree = try verifyTree(note: response.signedTree)
        guard response.id < tree.size else {
            throw .proofFailed("record \(response.id) is past the end of the signed tree of \(tree.size) records")
        }
        let tiles = TileSession(verifier: self, treeSize: tree.size)
        let recordHash = TransparencyLog.recordHash(response.text)
        let proof = try TransparencyLog.recordProof(index: response.id, treeSize: tree.size, nodes: tiles.reader())
        try TransparencyLog.checkRecord(proof: proof, treeSize: tree.size, treeHash: tree.hash, index: response.id, recordHash: recordHash)
        keep(tiles.fetched)
        return try Self.sums(from: response, path: path, version: version, tree: tree)
    }

    /// Fetches "latest", verifies it and its consistency with what was seen before; returns it.
    @discardableResult
    public func refreshLatest() throws(SumDBError) -> TreeHead {
        try verifyTree(note: try get("latest"))
    }

    /// Verifies a signed tree note, proves it consistent with the newest known tree, and makes it the newest if it is.
    public func verifyTree(note: [UInt8]) throws(SumDBError) -> TreeHead {
        let tree = try TreeHead(text: Note.open(note, key: key).text)
        // Proving needs fetches, done without the lock; if another call moved `latest` meanwhile, prove again against it.
        for _ in 0..<8 {
            let known = latest
            if let known { try checkConsistent(known, tree) }
            let stored = state.withLock { state -> Bool in
                guard state.latest == known else { return false }
                if known == nil || tree.size > known!.size { state.latest = tree }
                return true
            }
            if stored { return tree }
        }
        throw .proofFailed("the newest tree kept changing while proving consistency")
    }

    /// Proves the smaller of the two trees a prefix of the larger, from the larger tree's tiles.
    private func checkConsistent(_ a: TreeHead, _ b: TreeHead) throws(SumDBError) {
        let (old, new) = a.size <= b.size ? (a, b) : (b, a)
        if old.size == new.size {
            guard old.hash == new.hash else {
                throw .proofFailed("two signed trees of \(old.size) records have different hashes: the log forked")
            }
            return
        }
        guard old.size > 0 else { return }
        let tiles = TileSession(verifier: self, treeSize: new.size)
        let proof = try TransparencyLog.treeProof(oldSize: old.size, newSize: new.size, nodes: tiles.reader())
        // The proof's hashes come from unverified tiles; checking it against both signed hashes is what verifies them.
        try TransparencyLog.checkTree(proof: proof, newSize: new.size, newHash: new.hash, oldSize: old.size, oldHash: old.hash)
        keep(tiles.fetched)
    }

    private static func sums(from response: LookupResponse, path: String, version: String, tree: TreeHead) throws(SumDBError)
        -> VerifiedSums
    {
        let zipPrefix = path + " " + version + " "
        let modPrefix = path + " " + version + "/go.mod "
        var lines: [String] = []
        var zipHash: String?
        var goModHash: String?
        // Bytes, not Characters: String comparison would equate canonically equivalent spellings.
        for bytes in response.text.split(separator: 0x0A) {
            let line = String(decoding: bytes, as: UTF8.self)
            if bytes.starts(with: modPrefix.utf8), goModHash == nil {
                goModHash = String(decoding: bytes.dropFirst(modPrefix.utf8.count), as: UTF8.self)
            } else if bytes.starts(with: zipPrefix.utf8), zipHash == nil {
                zipHash = String(decoding: bytes.dropFirst(zipPrefix.utf8.count), as: UTF8.self)
            } else {
                throw .recordMismatch("record \(response.id) has line \(quote(line)), not one for \(path) \(version)")
            }
            lines.append(line)
        }
        guard zipHash != nil || goModHash != nil else { throw .recordMismatch("record \(response.id) is empty") }
        for hash in [zipHash, goModHash].compactMap({ $0 }) where hash.contains(" ") || hash.isEmpty {
            throw .recordMismatch("record \(response.id) has a malformed hash \(quote(hash))")
        }
        return VerifiedSums(lines: lines, zipHash: zipHash, goModHash: goModHash, recordID: response.id, tree: tree)
    }

    fileprivate func get(_ path: String) throws(SumDBError) -> [UInt8] {
        do {
            return try fetch(path)
        } catch let error as SumDBError {
            throw error  // the transport's own verdict (notFound), not wrapped twice
        } catch {
            throw .fetchFailed(path: path, reason: "\(error)")
        }
    }

    fileprivate func cachedTile(_ tile: Tile) -> [UInt8]? { state.withLock { $0.tiles[tile] } }

    /// Keeps full tiles that took part in a successful proof.
    private func keep(_ fetched: [Tile: [UInt8]]) {
        state.withLock { state in
            for (tile, data) in fetched where tile.width == 1 << tile.height {
                if state.tiles.count >= Self.tileCacheLimit { state.tiles.removeAll(keepingCapacity: true) }
                state.tiles[tile] = data
            }
        }
    }
}

/// The tiles of one tree size, fetched at most once per verification.
private final class TileSession {
    let verifier: SumDBVerifier
    let treeSize: Int64
    private(set) var fetched: [Tile: [UInt8]] = [:]

    init(verifier: SumDBVerifier, treeSize: Int64) {
        self.verifier = verifier
        self.treeSize = treeSize
    }

    /// Node hashes read from this tree's tiles.
    func reader() -> TransparencyLog.NodeReader {
        { (level: Int, index: Int64) throws(SumDBError) -> LogHash in try self.node(level: level, index: index) }
    }

    func node(level: Int, index: Int64) throws(SumDBError) -> LogHash {
        guard let tile = Tile.holding(level: level, index: index, height: verifier.tileHeight, treeSize: treeSize) else {
            throw .proofFailed("node (\(level), \(index)) is not in a tree of \(treeSize) records")
        }
        return try tile.nodeHash(level: level, index: index, data: data(of: tile))
    }

    private func data(of tile: Tile) throws(SumDBError) -> [UInt8] {
        if let data = fetched[tile] ?? verifier.cachedTile(tile) {
            fetched[tile] = data
            return data
        }
        var data: [UInt8]
        do {
            data = try verifier.get(tile.path)
        } catch {
            // A server may drop a partial tile once the full one exists; the full tile's prefix holds the same hashes.
            guard tile.width < 1 << tile.height,
                let full = Tile(height: tile.height, level: tile.level, number: tile.number, width: 1 << tile.height),
                let fullData = try? verifier.get(full.path), fullData.count == full.width * 32
            else { throw error }
            data = Array(fullData[0..<tile.width * 32])
        }
        guard data.count == tile.width * 32 else {
            throw .malformed("tile \(tile.path) has \(data.count) bytes, not \(tile.width * 32)")
        }
        fetched[tile] = data
        return data
    }
}
