// Fuzz target: the checksum-database client (Sources/SumDB): lookup answers, signed notes, tree heads, tile paths,
// verifier keys, base64, and SumDBVerifier.lookup end to end over fetched bytes that are all hostile.
//
// Input: a lookup answer, then optionally "\0TILES\0" and tiles, each "<path>\n" + 4-byte big-endian length + bytes.
// The seeds are real answers of the test checksum database (Tests/Fixtures/sumdb) signed with `seedKey` below,
// so mutations reach past the signature check into the proofs. Besides "never traps", checks: parsers that accept
// an input give it back when re-formatted; a verified lookup's lines all name the module asked for and its record
// lies inside the signed tree, which became the verifier's newest.
import SumDB
import Digests

/// The verifier key of the signer that made fuzz/corpus/sumdb_note/tree* (a test key, signs nothing else).
let seedKey = try! VerifierKey("sumdb.test+848c9b58+AXQQYj7saARpY2glxo91VZJYiH5FqTkTWGAW8dmlvjkT")
let separator = Array("\0TILES\0".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    let text = String(decoding: bytes, as: UTF8.self)

    // The pure parsers on the whole input.
    if let response = try? LookupResponse(bytes) {
        let rebuilt = Array("\(response.id)\n".utf8) + response.text + [0x0A] + response.signedTree
        require(rebuilt == bytes, "lookup answer does not re-assemble")
        require(LookupResponse.isValidRecordText(response.text), "accepted record text is not valid")
    }
    if let tree = try? TreeHead(text: bytes) {
        require(bytes.starts(with: Array(tree.text.utf8)), "tree \(tree.text.debugDescription) is not the input's start")
    }
    if let tile = try? Tile(path: text) {
        require(tile.path == text && Array(text.utf8) == bytes, "tile path \(text.debugDescription) reprints as \(tile.path)")
    }
    if let key = try? VerifierKey(text) {
        require(key.publicKey.count == 32 && bytes.starts(with: Array((key.name + "+").utf8)), "verifier key \(text.debugDescription)")
    }
    if let decoded = Base64.decode(bytes: bytes) {
        require(Base64.decode(Base64.encode(decoded)) == decoded, "base64 does not round-trip")
    }
    if let note = try? Note.open(bytes, key: seedKey) {
        require(bytes.starts(with: note.text), "note text is not the input's start")
    }

    // The verifier over the input as a server's answers.
    let (lookup, tiles) = split(bytes)
    let verifier = SumDBVerifier(key: seedKey) { path in
        if path.hasPrefix("lookup/") { return lookup }
        guard let tile = tiles[path] else { throw SumDBError.fetchFailed(path: path, reason: "404") }
        return tile
    }
    let (module, version) = moduleOf(lookup)
    if let sums = try? verifier.lookup(path: module, version: version) {
        require(!sums.lines.isEmpty && sums.lines.allSatisfy { $0.hasPrefix(module + " " + version) }, "lines \(sums.lines)")
        require(sums.recordID >= 0 && sums.recordID < sums.tree.size, "record \(sums.recordID) outside \(sums.tree.size)")
        require(verifier.latest == sums.tree, "the verified tree is not the newest")
    }
    return 0
}

/// The lookup part and the tiles by path.
func split(_ bytes: [UInt8]) -> ([UInt8], [String: [UInt8]]) {
    guard let start = (0..<max(0, bytes.count - separator.count + 1)).first(where: { bytes[$0..<$0 + separator.count].elementsEqual(separator) })
    else { return (bytes, [:]) }
    var tiles: [String: [UInt8]] = [:]
    var at = start + separator.count
    while let newline = bytes[at...].firstIndex(of: 0x0A), newline + 5 <= bytes.count {
        let path = String(decoding: bytes[at..<newline], as: UTF8.self)
        let length = bytes[(newline + 1)..<(newline + 5)].reduce(0) { $0 << 8 | Int($1) }
        let dataStart = newline + 5
        guard length <= bytes.count - dataStart else { break }
        tiles[path] = Array(bytes[dataStart..<dataStart + length])
        at = dataStart + length
    }
    return (Array(bytes[..<start]), tiles)
}

/// The module and version the record's first line names ("<path> <version>[/go.mod] <hash>").
func moduleOf(_ lookup: [UInt8]) -> (String, String) {
    let lines = lookup.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
    guard lines.count > 1 else { return ("example.com/gen/m005", "v1.0.0") }
    let fields = lines[1].split(separator: 0x20)
    guard fields.count >= 2 else { return ("example.com/gen/m005", "v1.0.0") }
    var version = String(decoding: fields[1], as: UTF8.self)
    if version.hasSuffix("/go.mod") { version.removeLast(7) }
    return (String(decoding: fields[0], as: UTF8.self), version)
}
