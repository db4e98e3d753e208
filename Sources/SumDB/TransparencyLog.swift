// The checksum database's transparency log (golang.org/x/mod/sumdb/tlog): tree heads, records, tiles and proofs.
//
// The log is a Merkle tree over record hashes (RFC 6962 style: leaf = SHA-256(0x00 || record), node =
// SHA-256(0x01 || left || right)). A node is named here by (level, index): the root of the complete, aligned
// subtree over records [index << level, (index + 1) << level). Tiles of height H store the level-(L*H) nodes
// in groups of 2^H; any node of level L*H + r is the Merkle root of 2^r consecutive entries of one tile.
//
// Proofs are computed from whatever node hashes the caller supplies (typically read from tiles) and then
// checked against a signed tree hash, so a wrong tile makes the check fail; it can never make it pass.
import Digests

/// A 32-byte log hash.
public struct LogHash: Hashable, Sendable, CustomStringConvertible {
    /// The 32 bytes.
    public let bytes: [UInt8]

    /// Wraps 32 bytes; nil for any other length.
    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        self.bytes = Array(bytes)
    }

    /// Base64, as tree notes write it.
    public var description: String { Base64.encode(bytes) }
}

/// A tree head: the log's size and root hash, the text a signed tree note carries.
public struct TreeHead: Equatable, Sendable {
    /// Number of records.
    public let size: Int64
    /// The root hash over all of them.
    public let hash: LogHash

    static let prefix = Array("go.sum database tree\n".utf8)

    /// A tree head from its parts.
    public init(size: Int64, hash: LogHash) {
        self.size = size
        self.hash = hash
    }

    /// Parses "go.sum database tree\n<size>\n<base64 hash>\n" (further lines are allowed and ignored, as in x/mod).
    public init(text: some Collection<UInt8>) throws(SumDBError) {
        let text = Array(text)
        guard text.starts(with: Self.prefix), text.count <= 1_000_000 else { throw .malformed("not a go.sum database tree note") }
        let lines = text[Self.prefix.count...].split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count == 3 else { throw .malformed("tree note has fewer than three lines") }
        guard let size = canonicalDecimal(lines[0]) else { throw .malformed("tree size is not a decimal number") }
        guard let raw = Base64.decode(bytes: lines[1]), let hash = LogHash(raw) else {
            throw .malformed("tree hash is not 32 bytes of base64")
        }
        self.init(size: size, hash: hash)
    }

    /// The note text.
    public var text: String { "go.sum database tree\n\(size)\n\(hash)\n" }
}

/// One record as a lookup answers it: "<id>\n<text>\n" followed by the signed tree note.
public struct LookupResponse: Sendable {
    /// The record's index in the log.
    public let id: Int64
    /// The record text: go.sum lines, each ending in "\n".
    public let text: [UInt8]
    /// The signed tree note that follows (still to be verified).
    public let signedTree: [UInt8]

    /// Splits a lookup body; checks the record text's form (valid UTF-8, no control characters, no empty line,
    /// ends with "\n").
    public init(_ body: some Collection<UInt8>) throws(SumDBError) {
        let body = Array(body)
        guard let newline = body.firstIndex(of: 0x0A), let id = canonicalDecimal(body[..<newline]) else {
            throw .malformed("lookup answer does not start with a record id line")
        }
        let rest = body[(newline + 1)...]
        var end: Int? = nil
        var index = rest.startIndex
        while index + 1 < rest.endIndex {
            if rest[index] == 0x0A && rest[index + 1] == 0x0A { end = index; break }
            index += 1
        }
        guard let end else { throw .malformed("lookup answer has no blank line after the record") }
        let text = Array(rest[...end])
        guard Self.isValidRecordText(text) else { throw .malformed("record text is not well-formed") }
        self.id = id
        self.text = text
        self.signedTree = Array(rest[(end + 2)...])
    }

    /// Valid UTF-8, no control characters but "\n", no empty line, ends with "\n".
    public static func isValidRecordText(_ text: [UInt8]) -> Bool {
        guard let last = text.last, last == 0x0A, text.first != 0x0A, String(validating: text, as: UTF8.self) != nil else {
            return false
        }
        var previous: UInt8 = 0
        for byte in text {
            if byte < 0x20 && byte != 0x0A { return false }
            if byte == 0x0A && previous == 0x0A { return false }
            previous = byte
        }
        return true
    }
}

/// A tile: `width` hashes of level `level * height` of the tree, the `number`th group of 2^height.
public struct Tile: Hashable, Sendable {
    /// Log2 of the hashes a full tile holds (the go command and sum.golang.org use 8).
    public let height: Int
    /// The tile level; -1 names record data tiles ("data").
    public let level: Int
    /// The tile's number within its level.
    public let number: Int64
    /// How many hashes it holds (2^height for a full tile).
    public let width: Int

    /// A tile from its parts; nil outside the ranges x/mod accepts (1 ≤ height ≤ 30, -1 ≤ level ≤ 63,
    /// 1 ≤ width ≤ 2^height, number ≥ 0).
    public init?(height: Int, level: Int, number: Int64, width: Int) {
        guard (1...30).contains(height), (-1...63).contains(level), number >= 0, width >= 1, width <= 1 << height else {
            return nil
        }
        self.height = height
        self.level = level
        self.number = number
        self.width = width
    }

    /// "tile/H/L/NNN" with the number in groups of three digits, all but the last prefixed "x"
    /// (1234067 → x001/x234/067), and ".p/W" for a partial tile.
    public var path: String {
        var n = number
        var elements = [threeDigits(n % 1000)]
        while n >= 1000 {
            n /= 1000
            elements.insert("x" + threeDigits(n % 1000), at: 0)
        }
        let partial = width == 1 << height ? "" : ".p/\(width)"
        return "tile/\(height)/\(level == -1 ? "data" : String(level))/" + elements.joined(separator: "/") + partial
    }

    /// Parses a tile path; only the exact form `path` writes is accepted.
    public init(path: String) throws(SumDBError) {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4, parts[0] == "tile", let height = Int(parts[1]), (1...30).contains(height) else {
            throw .malformed("tile path \(quote(path))")
        }
        let level: Int
        if parts[2] == "data" {
            level = -1
        } else if let value = Int(parts[2]), (0...63).contains(value) {
            level = value
        } else {
            throw .malformed("tile path \(quote(path))")
        }
        var width = 1 << height
        if parts[parts.count - 2].hasSuffix(".p") {
            guard let value = Int(parts[parts.count - 1]), value > 0, value < width else { throw .malformed("tile path \(quote(path))") }
            width = value
            parts[parts.count - 2].removeLast(2)
            parts.removeLast()
        }
        var number: Int64 = 0
        for element in parts[3...] {
            let digits = element.hasPrefix("x") ? element.dropFirst() : Substring(element)
            guard digits.utf8.count == 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int64(digits) else {
                throw .malformed("tile path \(quote(path))")
            }
            let (scaled, overflow) = number.multipliedReportingOverflow(by: 1000)
            guard !overflow else { throw .malformed("tile path \(quote(path)): number out of range") }
            number = scaled + value
        }
        guard let tile = Tile(height: height, level: level, number: number, width: width), tile.path.utf8.elementsEqual(path.utf8) else {
            throw .malformed("tile path \(quote(path)) is not in canonical form")
        }
        self = tile
    }

    /// The hash of the node (`nodeLevel`, `index`) from this tile's `data` (width × 32 bytes): the Merkle root of
    /// the 2^(nodeLevel − level·height) entries below it. Fails if the node is not in this tile or `data` is short.
    public func nodeHash(level nodeLevel: Int, index: Int64, data: [UInt8]) throws(SumDBError) -> LogHash {
        guard level >= 0, data.count == width * 32 else {
            throw .malformed("tile \(path) holds \(data.count) bytes, not \(width * 32)")
        }
        let within = nodeLevel - level * height
        guard within >= 0, within < height, index >= 0, index <= (Int64.max >> within) - 1 else {
            throw .malformed("node (\(nodeLevel), \(index)) is not in tile \(path)")
        }
        let first = index << within
        let count = 1 << within
        guard first >> height == number else { throw .malformed("node (\(nodeLevel), \(index)) is not in tile \(path)") }
        let offset = Int(first & Int64((1 << height) - 1))
        guard offset + count <= width else { throw .malformed("node (\(nodeLevel), \(index)) is past the width of tile \(path)") }
        return merkleRoot(data, from: offset, count: count)
    }

    private func merkleRoot(_ data: [UInt8], from offset: Int, count: Int) -> LogHash {
        if count == 1 { return LogHash(data[offset * 32..<(offset + 1) * 32])! }
        let half = count / 2
        return TransparencyLog.nodeHash(merkleRoot(data, from: offset, count: half), merkleRoot(data, from: offset + half, count: half))
    }

    /// The tile of height `height` that holds node (`level`, `index`) in a tree of `treeSize` records, as wide as
    /// that tree makes it. Nil if the node is not a complete subtree of that tree.
    public static func holding(level: Int, index: Int64, height: Int, treeSize: Int64) -> Tile? {
        guard level >= 0, level < 63, index >= 0, index < (treeSize >> level) else { return nil }
        let tileLevel = level / height
        let first = index << (level - tileLevel * height)  // index of the first entry, at level tileLevel*height
        let number = first >> height
        let entries = treeSize >> (tileLevel * height)  // complete nodes at that level
        let width = Int(min(Int64(1 << height), entries - number << height))
        return Tile(height: height, level: tileLevel, number: number, width: width)
    }
}

/// Hashing and proofs over the log, given node hashes.
public enum TransparencyLog {
    /// Supplies the hash of complete node (level, index).
    public typealias NodeReader = (_ level: Int, _ index: Int64) throws(SumDBError) -> LogHash

    /// The leaf hash of a record: SHA-256(0x00 || text).
    public static func recordHash(_ text: some Collection<UInt8>) -> LogHash {
        var digest = SHA256()
        digest.update([0x00])
        digest.update(text)
        return LogHash(digest.finish())!
    }

    /// An interior node: SHA-256(0x01 || left || right).
    public static func nodeHash(_ left: LogHash, _ right: LogHash) -> LogHash {
        LogHash(SHA256.hash([0x01] + left.bytes + right.bytes))!
    }

    /// The root hash of a tree of `size` records.
    public static func treeHash(size: Int64, nodes: NodeReader) throws(SumDBError) -> LogHash {
        guard size > 0 else { return LogHash([UInt8](repeating: 0, count: 32))! }
        return try rangeHash(0, size, nodes)
    }

    /// The inclusion proof of record `index` in a tree of `treeSize` records.
    public static func recordProof(index: Int64, treeSize: Int64, nodes: NodeReader) throws(SumDBError) -> [LogHash] {
        guard index >= 0, index < treeSize else { throw .proofFailed("record \(index) is not in a tree of \(treeSize)") }
        return try leafProof(0, treeSize, index, nodes)
    }

    /// Checks that `recordHash` is record `index` of the tree (`treeSize`, `treeHash`) by `proof`.
    public static func checkRecord(proof: [LogHash], treeSize: Int64, treeHash: LogHash, index: Int64, recordHash: LogHash)
        throws(SumDBError)
    {
        guard index >= 0, index < treeSize else { throw .proofFailed("record \(index) is not in a tree of \(treeSize)") }
        guard let root = runRecordProof(proof[...], 0, treeSize, index, recordHash), root == treeHash else {
            throw .proofFailed("record \(index) is not in the signed tree of \(treeSize) records")
        }
    }

    /// The consistency proof that a tree of `oldSize` records is a prefix of the tree of `newSize`.
    public static func treeProof(oldSize: Int64, newSize: Int64, nodes: NodeReader) throws(SumDBError) -> [LogHash] {
        guard oldSize >= 1, oldSize <= newSize else { throw .proofFailed("no consistency proof from \(oldSize) to \(newSize) records") }
        return try consistencyProof(0, newSize, oldSize, nodes)
    }

    /// Checks that (`oldSize`, `oldHash`) is a prefix of (`newSize`, `newHash`) by `proof`.
    public static func checkTree(proof: [LogHash], newSize: Int64, newHash: LogHash, oldSize: Int64, oldHash: LogHash)
        throws(SumDBError)
    {
        guard oldSize >= 1, oldSize <= newSize else { throw .proofFailed("no consistency proof from \(oldSize) to \(newSize) records") }
        guard let (old, new) = runTreeProof(proof[...], 0, newSize, oldSize, oldHash), old == oldHash, new == newHash else {
            throw .proofFailed("the tree of \(oldSize) records is not a prefix of the signed tree of \(newSize)")
        }
    }

    // MARK: - Recursions over [lo, hi)

    /// The largest power of two strictly below `n` (n ≥ 2): where a range of n leaves splits.
    static func split(_ n: Int64) -> Int64 { 1 << (63 - (n - 1).leadingZeroBitCount) }

    /// The hash over records [lo, hi): the complete subtrees it decomposes into, largest first, folded from the right.
    static func rangeHash(_ lo: Int64, _ hi: Int64, _ nodes: NodeReader) throws(SumDBError) -> LogHash {
        var parts: [LogHash] = []
        var start = lo
        while start < hi {
            let level = 63 - (hi - start).leadingZeroBitCount  // largest power of two ≤ hi - start
            // The decomposition of an aligned range keeps every part aligned to its size.
            parts.append(try nodes(level, start >> level))
            start += 1 << level
        }
        var hash = parts.removeLast()
        while let left = parts.popLast() { hash = nodeHash(left, hash) }
        return hash
    }

    private static func leafProof(_ lo: Int64, _ hi: Int64, _ n: Int64, _ nodes: NodeReader) throws(SumDBError) -> [LogHash] {
        if hi - lo == 1 { return [] }
        let k = split(hi - lo)
        if n < lo + k {
            return try leafProof(lo, lo + k, n, nodes) + [rangeHash(lo + k, hi, nodes)]
        }
        return try leafProof(lo + k, hi, n, nodes) + [rangeHash(lo, lo + k, nodes)]
    }

    /// The root the proof leads to, or nil if it has the wrong length.
    private static func runRecordProof(_ proof: ArraySlice<LogHash>, _ lo: Int64, _ hi: Int64, _ n: Int64, _ leaf: LogHash)
        -> LogHash?
    {
        if hi - lo == 1 { return proof.isEmpty ? leaf : nil }
        guard let sibling = proof.last else { return nil }
        let k = split(hi - lo)
        if n < lo + k {
            guard let inner = runRecordProof(proof.dropLast(), lo, lo + k, n, leaf) else { return nil }
            return nodeHash(inner, sibling)
        }
        guard let inner = runRecordProof(proof.dropLast(), lo + k, hi, n, leaf) else { return nil }
        return nodeHash(sibling, inner)
    }

    private static func consistencyProof(_ lo: Int64, _ hi: Int64, _ n: Int64, _ nodes: NodeReader) throws(SumDBError)
        -> [LogHash]
    {
        if n == hi { return lo == 0 ? [] : [try rangeHash(lo, hi, nodes)] }
        let k = split(hi - lo)
        if n <= lo + k {
            return try consistencyProof(lo, lo + k, n, nodes) + [rangeHash(lo + k, hi, nodes)]
        }
        return try consistencyProof(lo + k, hi, n, nodes) + [rangeHash(lo, lo + k, nodes)]
    }

    /// The (old, new) roots the proof leads to over [lo, hi) with the old tree ending at n, or nil.
    private static func runTreeProof(_ proof: ArraySlice<LogHash>, _ lo: Int64, _ hi: Int64, _ n: Int64, _ old: LogHash)
        -> (LogHash, LogHash)?
    {
        if n == hi {
            if lo == 0 { return proof.isEmpty ? (old, old) : nil }
            return proof.count == 1 ? (proof[proof.startIndex], proof[proof.startIndex]) : nil
        }
        guard let sibling = proof.last else { return nil }
        let k = split(hi - lo)
        if n <= lo + k {
            guard let (oldRoot, newRoot) = runTreeProof(proof.dropLast(), lo, lo + k, n, old) else { return nil }
            return (oldRoot, nodeHash(newRoot, sibling))
        }
        guard let (oldRoot, newRoot) = runTreeProof(proof.dropLast(), lo + k, hi, n, old) else { return nil }
        return (nodeHash(sibling, oldRoot), nodeHash(sibling, newRoot))
    }
}

/// A non-negative decimal without sign or leading zeros (as the server writes it), or nil.
func canonicalDecimal(_ bytes: some Collection<UInt8>) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 19, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    guard bytes.first != 0x30 || bytes.count == 1 else { return nil }
    return Int64(String(decoding: bytes, as: UTF8.self))
}

private func threeDigits(_ n: Int64) -> String {
    n < 10 ? "00\(n)" : n < 100 ? "0\(n)" : "\(n)"
}
