// The "h1:" hashes of golang.org/x/mod/sumdb/dirhash (Hash1), as go.sum and the checksum database record them.
//
// Hash1 is SHA-256 over one line "<sha256 hex>  <name>\n" per file, files sorted by name (bytewise), then "h1:" +
// base64. A module zip's files are its entries under their zip names (`module@version/...`); a go.mod is the single
// file "go.mod". Zips are streamed entry by entry (pread + inflate through fixed buffers), so memory stays bounded
// by the central directory whatever the zip's size.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CZlib
import GoModule
import Digests

/// Computes `h1:` hashes.
public enum DirHash {
    /// Bytes read (and inflated) per step.
    static let chunkSize = 64 << 10

    /// The h1 hash of the go.mod file with contents `goMod` (the `/go.mod` line of go.sum).
    public static func hashGoMod(_ goMod: some Collection<UInt8>) -> String {
        // Cannot fail: the one name has no newline.
        try! hash1([(name: "go.mod", sha256: SHA256.hash(goMod))])
    }

    /// Hash1 from per-file digests: sorts by name, refuses names with a newline (as dirhash does).
    public static func hash1(_ files: [(name: String, sha256: [UInt8])]) throws(ZipError) -> String {
        let sorted = files.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var summary = SHA256()
        var line: [UInt8] = []
        for file in sorted {
            guard !file.name.utf8.contains(UInt8(ascii: "\n")) else {
                throw ZipError(message: "dirhash: filenames with newlines are not supported")
            }
            // "<hex sha256>  <name>\n", built in one reused buffer.
            line.removeAll(keepingCapacity: true)
            line.append(contentsOf: Hex.encode(file.sha256).utf8)
            line.append(contentsOf: [0x20, 0x20])
            line.append(contentsOf: file.name.utf8)
            line.append(0x0A)
            summary.update(line)
        }
        return "h1:" + Base64.encode(summary.finish())
    }

    /// The h1 hash of the module zip in `fd` (`size` bytes), every entry decompressed and checked against its
    /// declared size and CRC-32 as Go's archive/zip does. The file offset of `fd` is not used.
    public static func hashZip(fd: Int32, size: UInt64) throws(ZipError) -> String {
        let entries = try ZipDirectory.read(fd: fd, size: size)
        return try hashEntries(entries, FileBytes(fd: fd, size: size))
    }

    /// Checks the zip in `fd` as `ArtifactValidator.checkZip` does and computes its h1 hash in the same pass (every
    /// entry is inflated once, for its CRC-32 and its SHA-256 together). Equal to `hashZip` for any zip it accepts.
    public static func checkAndHashZip(fd: Int32, size: UInt64, module: String, version: String) throws(ZipError)
        -> (entries: [ZipEntry], hash: String)
    {
        let digests = EntryDigests()
        let entries = try ArtifactValidator.checkZip(fd: fd, size: size, module: module, version: version, observer: digests)
        // ModuleZip.check refused repeated names, so each name has exactly one digest.
        return (entries, try hash1(entries.indices.map { (entries[$0].name, digests.finished[$0] ?? []) }))
    }

    /// Same for a zip in memory.
    public static func hashZip(bytes: [UInt8]) throws(ZipError) -> String {
        let entries = try ZipDirectory.read(bytes: bytes)
        return try hashEntries(entries, MemoryBytes(bytes: bytes))
    }

    private static func hashEntries<S: RandomAccessBytes>(_ entries: [ZipEntry], _ source: S) throws(ZipError) -> String {
        var input = [UInt8](repeating: 0, count: chunkSize)
        var output = [UInt8](repeating: 0, count: chunkSize)
        // dirhash opens files by name, so a repeated name (which ModuleZip.check refuses) counts once per entry,
        // each time with the contents of the last entry of that name.
        var last: [String: Int] = [:]
        for (index, entry) in entries.enumerated() { last[entry.name] = index }
        var digests: [String: [UInt8]] = [:]
        for (index, entry) in entries.enumerated() where last[entry.name] == index {
            digests[entry.name] = try hashEntry(entry, source, &input, &output)
        }
        return try hash1(entries.map { ($0.name, digests[$0.name]!) })
    }

    /// SHA-256 of one entry's uncompressed data.
    private static func hashEntry<S: RandomAccessBytes>(
        _ entry: ZipEntry, _ source: S, _ input: inout [UInt8], _ output: inout [UInt8]
    ) throws(ZipError) -> [UInt8] {
        let name = quoted(entry.name)
        var header = [UInt8](repeating: 0, count: 30)
        try source.read(at: entry.localHeaderOffset, into: &header, count: 30)
        let signature = UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24
        guard signature == 0x0403_4b50 else {
            throw ZipError(message: "zip: not a valid zip file: bad local header signature for entry \(name)")
        }
        // The local name and extra lengths may differ from the central directory's; the data follows the local ones.
        let localNameLength = UInt64(header[26]) | UInt64(header[27]) << 8
        let localExtraLength = UInt64(header[28]) | UInt64(header[29]) << 8
        let dataStart = entry.localHeaderOffset + 30 + localNameLength + localExtraLength
        guard dataStart <= source.size, entry.compressedSize <= source.size - dataStart else {
            throw ZipError(message: "zip: not a valid zip file: the data of entry \(name) runs past the end of the file")
        }
        switch entry.method {
        case 0:
            return try hashStored(entry, name, source, from: dataStart, &input)
        case 8:
            return try hashDeflated(entry, name, source, from: dataStart, &input, &output)
        default:
            throw ZipError(message: "zip: unsupported compression algorithm \(entry.method) for entry \(name)")
        }
    }

    private static func hashStored<S: RandomAccessBytes>(
        _ entry: ZipEntry, _ name: String, _ source: S, from start: UInt64, _ input: inout [UInt8]
    ) throws(ZipError) -> [UInt8] {
        var digest = SHA256()
        var crc = crc32(0, nil, 0)
        var done: UInt64 = 0
        while done < entry.compressedSize {
            let count = Int(min(UInt64(chunkSize), entry.compressedSize - done))
            try source.read(at: start + done, into: &input, count: count)
            input.withUnsafeBytes { raw in
                let part = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                digest.update(part)
                crc = crc32(crc, part.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(count))
            }
            done += UInt64(count)
        }
        try checkCRC(entry, name, crc)
        return digest.finish()
    }

    private static func hashDeflated<S: RandomAccessBytes>(
        _ entry: ZipEntry, _ name: String, _ source: S, from start: UInt64, _ input: inout [UInt8], _ output: inout [UInt8]
    ) throws(ZipError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ZipError(message: "zlib: inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var digest = SHA256()
        var crc = crc32(0, nil, 0)
        var consumed: UInt64 = 0  // compressed bytes read into `input`
        var produced: UInt64 = 0
        var inputFilled = 0  // bytes of `input` holding data
        var inputNext = 0  // the first of them zlib has not taken yet
        var finished = false
        while !finished {
            if inputNext == inputFilled {
                guard consumed < entry.compressedSize else {
                    throw ZipError(message: "zip: entry \(name): compressed data ends before the deflate stream does")
                }
                inputFilled = Int(min(UInt64(chunkSize), entry.compressedSize - consumed))
                try source.read(at: start + consumed, into: &input, count: inputFilled)
                consumed += UInt64(inputFilled)
                inputNext = 0
            }
            // Pointers into the arrays are only valid inside these closures, so zlib's cursors are set afresh each step.
            let status: Int32 = input.withUnsafeMutableBytes { inRaw in
                output.withUnsafeMutableBytes { outRaw in
                    stream.next_in = inRaw.baseAddress!.assumingMemoryBound(to: Bytef.self) + inputNext
                    stream.avail_in = uInt(inputFilled - inputNext)
                    stream.next_out = outRaw.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(outRaw.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
            }
            inputNext = inputFilled - Int(stream.avail_in)
            let count = output.count - Int(stream.avail_out)
            produced += UInt64(count)
            // Stop at once when the data outgrows its declared size: a zip bomb costs no more than one buffer.
            guard produced <= entry.uncompressedSize else {
                throw ZipError(message: "zip: entry \(name) inflates to more than its declared \(entry.uncompressedSize) bytes")
            }
            output.withUnsafeBytes { raw in
                let part = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                digest.update(part)
                crc = crc32(crc, part.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(count))
            }
            switch status {
            case Z_STREAM_END: finished = true
            case Z_OK: break
            case Z_BUF_ERROR where stream.avail_in == 0: break  // wants more input
            default:
                throw ZipError(message: "zip: entry \(name): invalid deflate data (zlib status \(status))")
            }
        }
        guard produced == entry.uncompressedSize else {
            throw ZipError(
                message: "zip: entry \(name) inflates to \(produced) bytes, not its declared \(entry.uncompressedSize)")
        }
        try checkCRC(entry, name, crc)
        return digest.finish()
    }

    private static func checkCRC(_ entry: ZipEntry, _ name: String, _ crc: uLong) throws(ZipError) {
        guard UInt32(truncatingIfNeeded: crc) == entry.crc32 else {
            throw ZipError(message: "zip: checksum error in entry \(name)")
        }
    }

    private static func quoted(_ name: String) -> String { "\"" + name + "\"" }
}

/// SHA-256 of each entry's uncompressed bytes, fed by `ZipContents` while it checks them.
private final class EntryDigests: ZipEntryObserver {
    private var current: SHA256?
    private(set) var finished: [Int: [UInt8]] = [:]

    func begin(entry index: Int) { current = SHA256() }

    func data(_ bytes: UnsafeRawBufferPointer) {
        guard var digest = current.take() else { return }
        digest.update(bytes)
        current = consume digest
    }

    func end(entry index: Int) {
        if let digest = current.take() { finished[index] = digest.finish() }
    }
}

/// Exact reads at an offset.
private protocol RandomAccessBytes {
    var size: UInt64 { get }
    func read(at offset: UInt64, into buffer: inout [UInt8], count: Int) throws(ZipError)
}

private func pastEnd(_ offset: UInt64, _ count: Int) -> ZipError {
    ZipError(message: "zip: not a valid zip file: \(count) bytes at offset \(offset) run past the end of the file")
}

private struct MemoryBytes: RandomAccessBytes {
    let bytes: [UInt8]
    var size: UInt64 { UInt64(bytes.count) }

    func read(at offset: UInt64, into buffer: inout [UInt8], count: Int) throws(ZipError) {
        guard offset <= size, UInt64(count) <= size - offset else { throw pastEnd(offset, count) }
        let start = Int(offset)
        buffer.replaceSubrange(0..<count, with: bytes[start..<start + count])
    }
}

private struct FileBytes: RandomAccessBytes {
    let fd: Int32
    let size: UInt64

    func read(at offset: UInt64, into buffer: inout [UInt8], count: Int) throws(ZipError) {
        guard offset <= size, UInt64(count) <= size - offset else { throw pastEnd(offset, count) }
        try ZipFileRead.exactly(fd: fd, at: offset, into: &buffer, count: count, fileSize: size)
    }
}
