// ZipDirectory: reads the central directory of a zip file, distrusting every field.
//
// Only the central directory is read: the end record (and its ZIP64 companions), then one header per entry.
// Local headers and file data are never touched here (ZipContents reads them). Every count, size and offset is checked against the
// file size before it is used, so a hostile zip can make `read` fail but never crash, hang, or allocate
// more than a small multiple of the central directory it actually contains.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Stricter than Go's `archive/zip` in ways that only reject zips no common writer produces:
/// the central directory must end exactly where the end record (or ZIP64 end record) starts,
/// so data prepended to the zip is refused; the entry count must match exactly; multi-disk and
/// encrypted zips are refused; a stored entry's two sizes must agree; entries' data ranges may not overlap or
/// reach into the central directory; names must be valid UTF-8.
public enum ZipDirectory {
    /// The most entries accepted; a larger count is refused before anything is allocated for it.
    public static let maxEntries = 1_000_000

    /// Reads the central directory of the zip in `fd` (file of `size` bytes) with pread; handles the EOCD comment and ZIP64.
    ///
    /// The file offset of `fd` is not used or moved, so the caller may share `fd` across threads.
    public static func read(fd: Int32, size: UInt64) throws(ZipError) -> [ZipEntry] {
        try listing(fd: fd, size: size).entries
    }

    /// What `read` returns, and where the central directory starts (where entries' data must end).
    struct Listing {
        var entries: [ZipEntry]
        var directoryOffset: UInt64
    }

    /// `read`, keeping the directory's offset for `ZipContents.verify`.
    static func listing(fd: Int32, size: UInt64) throws(ZipError) -> Listing {
        // pread takes a signed offset; a larger size cannot be a real file and would trap on conversion.
        guard size <= UInt64(Int64.max) else {
            throw ZipError(message: "zip: file size \(size) is out of range")
        }
        return try readEntries(FileSource(fd: fd, size: size))
    }

    /// Same over bytes in memory (for tests and small zips).
    public static func read(bytes: [UInt8]) throws(ZipError) -> [ZipEntry] {
        try readEntries(MemorySource(bytes: bytes)).entries
    }
}

// MARK: - Record layouts

private enum Layout {
    static let endSignature: UInt32 = 0x0605_4b50
    static let endLength = 22
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    static let zip64LocatorLength = 20
    static let zip64EndSignature: UInt32 = 0x0606_4b50
    static let zip64EndLength = 56
    static let centralHeaderSignature: UInt32 = 0x0201_4b50
    static let centralHeaderLength = 46
    static let localHeaderLength: UInt64 = 30
    static let zip64ExtraTag: UInt16 = 0x0001
    // Central directory records must follow the end record's comment, which holds at most 65535 bytes.
    static let maxEndSearch = endLength + 0xFFFF
}

// MARK: - Byte sources

/// Random access to the zip's bytes; every read is exact or fails.
private protocol ZipSource {
    var size: UInt64 { get }
    func read(at offset: UInt64, count: Int) throws(ZipError) -> [UInt8]
}

private struct MemorySource: ZipSource {
    let bytes: [UInt8]
    var size: UInt64 { UInt64(bytes.count) }

    func read(at offset: UInt64, count: Int) throws(ZipError) -> [UInt8] {
        guard count >= 0, offset <= size, UInt64(count) <= size - offset else { throw truncated(offset, count) }
        let start = Int(offset)
        return Array(bytes[start..<start + count])
    }
}

private struct FileSource: ZipSource {
    let fd: Int32
    let size: UInt64

    func read(at offset: UInt64, count: Int) throws(ZipError) -> [UInt8] {
        guard count >= 0, offset <= size, UInt64(count) <= size - offset else { throw truncated(offset, count) }
        var buffer = [UInt8](repeating: 0, count: count)
        try ZipFileRead.exactly(fd: fd, at: offset, into: &buffer, count: count, fileSize: size)
        return buffer
    }
}

private func truncated(_ offset: UInt64, _ count: Int) -> ZipError {
    ZipError(message: "zip: not a valid zip file: \(count) bytes at offset \(offset) run past the end of the file")
}

// MARK: - Little-endian fields

extension Array where Element == UInt8 {
    fileprivate func u16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    fileprivate func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    fileprivate func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}

/// Adds without wrapping; nil on overflow, which callers treat as "past the end".
private func sum(_ values: UInt64...) -> UInt64? {
    var total: UInt64 = 0
    for value in values {
        let (next, overflow) = total.addingReportingOverflow(value)
        if overflow { return nil }
        total = next
    }
    return total
}

// MARK: - End of central directory

/// Where the central directory is and how many entries it claims.
private struct DirectoryLocation {
    var entryCount: UInt64
    var offset: UInt64
    var size: UInt64
}

private func locateDirectory<S: ZipSource>(_ source: S) throws(ZipError) -> DirectoryLocation {
    guard source.size >= UInt64(Layout.endLength) else {
        throw ZipError(message: "zip: not a valid zip file: \(source.size) bytes is too short for an end record")
    }
    let tailLength = Int(min(source.size, UInt64(Layout.maxEndSearch)))
    let tailStart = source.size - UInt64(tailLength)
    let tail = try source.read(at: tailStart, count: tailLength)

    // Search backwards, as Go does, but a signature found inside the comment is only taken when the
    // directory it describes is where it says: a comment may contain "PK\x05\x06" by accident or malice.
    var firstError: ZipError?
    var index = tailLength - Layout.endLength
    while index >= 0 {
        defer { index -= 1 }
        guard tail.u32(index) == Layout.endSignature else { continue }
        let commentLength = Int(tail.u16(index + 20))
        guard index + Layout.endLength + commentLength <= tailLength else { continue }
        do throws(ZipError) {
            return try directory(fromEndAt: tailStart + UInt64(index), fields: Array(tail[index..<index + Layout.endLength]), source)
        } catch {
            if firstError == nil { firstError = error }
        }
    }
    throw firstError ?? ZipError(message: "zip: not a valid zip file: no end of central directory record")
}

private func directory<S: ZipSource>(fromEndAt endOffset: UInt64, fields end: [UInt8], _ source: S) throws(ZipError)
    -> DirectoryLocation
{
    var disk = UInt64(end.u16(4))
    var directoryDisk = UInt64(end.u16(6))
    var entriesOnDisk = UInt64(end.u16(8))
    var location = DirectoryLocation(entryCount: UInt64(end.u16(10)), offset: UInt64(end.u32(16)), size: UInt64(end.u32(12)))
    var directoryEnd = endOffset

    if let zip64End = try zip64EndOffset(before: endOffset, source) {
        let record = try source.read(at: zip64End, count: Layout.zip64EndLength)
        guard record.u32(0) == Layout.zip64EndSignature else {
            throw ZipError(message: "zip: not a valid zip file: the ZIP64 locator points to no ZIP64 end record")
        }
        // The record's own size field counts from after itself; it must end where the locator starts.
        guard record.u64(4) >= UInt64(Layout.zip64EndLength - 12),
            sum(zip64End, 12, record.u64(4)) == endOffset - UInt64(Layout.zip64LocatorLength)
        else {
            throw ZipError(message: "zip: not a valid zip file: the ZIP64 end record does not end at the ZIP64 locator")
        }
        disk = UInt64(record.u32(16))
        directoryDisk = UInt64(record.u32(20))
        entriesOnDisk = record.u64(24)
        location = DirectoryLocation(entryCount: record.u64(32), offset: record.u64(48), size: record.u64(40))
        directoryEnd = zip64End
    }

    guard disk == 0, directoryDisk == 0, entriesOnDisk == location.entryCount else {
        throw ZipError(message: "zip: multi-disk archives are not supported")
    }
    guard location.entryCount <= UInt64(ZipDirectory.maxEntries) else {
        throw ZipError(
            message: "zip: central directory claims \(location.entryCount) entries; at most \(ZipDirectory.maxEntries) are accepted")
    }
    guard sum(location.offset, location.size) == directoryEnd else {
        throw ZipError(
            message: "zip: not a valid zip file: central directory at offset \(location.offset) of size \(location.size) "
                + "does not end at offset \(directoryEnd), where its end record starts")
    }
    // Each header takes at least 46 bytes, so the count is bounded by the bytes really there.
    guard location.entryCount * UInt64(Layout.centralHeaderLength) <= location.size else {
        throw ZipError(
            message: "zip: not a valid zip file: \(location.entryCount) entries cannot fit in a central directory of \(location.size) bytes")
    }
    return location
}

/// The offset of the ZIP64 end record if a well-formed ZIP64 locator sits just before the end record.
private func zip64EndOffset<S: ZipSource>(before endOffset: UInt64, _ source: S) throws(ZipError) -> UInt64? {
    guard endOffset >= UInt64(Layout.zip64LocatorLength) else { return nil }
    let locatorOffset = endOffset - UInt64(Layout.zip64LocatorLength)
    let locator = try source.read(at: locatorOffset, count: Layout.zip64LocatorLength)
    // Same acceptance test as Go: signature, disk 0, one disk in total.
    guard locator.u32(0) == Layout.zip64LocatorSignature, locator.u32(4) == 0, locator.u32(16) == 1 else { return nil }
    let recordOffset = locator.u64(8)
    guard let recordEnd = sum(recordOffset, UInt64(Layout.zip64EndLength)), recordEnd <= locatorOffset else {
        throw ZipError(message: "zip: not a valid zip file: the ZIP64 locator points outside the file")
    }
    return recordOffset
}

// MARK: - Central directory entries

/// Sequential reads over the central directory through a bounded window, so a large directory
/// costs a few big preads instead of two per entry, and never more memory than the window.
private struct DirectoryCursor<S: ZipSource> {
    static var windowSize: Int { 1 << 20 }

    let source: S
    let end: UInt64
    private(set) var position: UInt64
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0

    init(source: S, start: UInt64, end: UInt64) {
        self.source = source
        self.position = start
        self.end = end
    }

    mutating func take(_ count: Int, for what: @autoclosure () -> String) throws(ZipError) -> ArraySlice<UInt8> {
        guard UInt64(count) <= end - position else {
            throw ZipError(message: "zip: not a valid zip file: \(what()) runs past the end of the central directory")
        }
        let windowEnd = windowStart + UInt64(window.count)
        if position < windowStart || position + UInt64(count) > windowEnd {
            let length = Int(min(UInt64(max(count, Self.windowSize)), end - position))
            window = try source.read(at: position, count: length)
            windowStart = position
        }
        let from = Int(position - windowStart)
        position += UInt64(count)
        return window[from..<from + count]
    }

    mutating func skip(_ count: Int, for what: @autoclosure () -> String) throws(ZipError) {
        guard UInt64(count) <= end - position else {
            throw ZipError(message: "zip: not a valid zip file: \(what()) runs past the end of the central directory")
        }
        position += UInt64(count)
    }
}

extension ArraySlice where Element == UInt8 {
    fileprivate func u16(_ at: Int) -> UInt16 {
        UInt16(self[startIndex + at]) | UInt16(self[startIndex + at + 1]) << 8
    }
    fileprivate func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    fileprivate func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}

private func readEntries<S: ZipSource>(_ source: S) throws(ZipError) -> ZipDirectory.Listing {
    let location = try locateDirectory(source)
    var cursor = DirectoryCursor(source: source, start: location.offset, end: location.offset + location.size)
    var entries: [ZipEntry] = []
    entries.reserveCapacity(Int(location.entryCount))
    for index in 0..<Int(location.entryCount) {
        entries.append(try readEntry(index, &cursor, directoryOffset: location.offset))
    }
    guard cursor.position == cursor.end else {
        throw ZipError(
            message: "zip: not a valid zip file: \(cursor.end - cursor.position) bytes follow the last of "
                + "\(location.entryCount) central directory entries")
    }
    try checkNoOverlap(entries)
    return ZipDirectory.Listing(entries: entries, directoryOffset: location.offset)
}

private func readEntry<S: ZipSource>(_ index: Int, _ cursor: inout DirectoryCursor<S>, directoryOffset: UInt64) throws(ZipError)
    -> ZipEntry
{
    let header = try cursor.take(Layout.centralHeaderLength, for: "central directory entry \(index)")
    guard header.u32(0) == Layout.centralHeaderSignature else {
        throw ZipError(message: "zip: not a valid zip file: bad signature for central directory entry \(index)")
    }
    let flags = header.u16(8)
    let method = header.u16(10)
    let crc = header.u32(16)
    var compressedSize = UInt64(header.u32(20))
    var uncompressedSize = UInt64(header.u32(24))
    let nameLength = Int(header.u16(28))
    let extraLength = Int(header.u16(30))
    let commentLength = Int(header.u16(32))
    var localHeaderOffset = UInt64(header.u32(42))

    let nameBytes = try cursor.take(nameLength, for: "the name of central directory entry \(index)")
    guard let name = String(validating: nameBytes, as: UTF8.self) else {
        throw ZipError(message: "zip: the name of entry \(index) is not valid UTF-8")
    }
    let extra = try cursor.take(extraLength, for: "the extra field of entry \(GoQuote.string(name))")
    try cursor.skip(commentLength, for: "the comment of entry \(GoQuote.string(name))")

    // As in Go, only fields saturated at 0xFFFFFFFF come from the ZIP64 extra field, in this order.
    var needUncompressed = uncompressedSize == 0xFFFF_FFFF
    var needCompressed = compressedSize == 0xFFFF_FFFF
    var needOffset = localHeaderOffset == 0xFFFF_FFFF
    var at = 0
    while extra.count - at >= 4 {
        let tag = extra.u16(at)
        let size = Int(extra.u16(at + 2))
        at += 4
        // A field running past the extra data ends the scan, as in Go; a needed ZIP64 value is then missing.
        guard size <= extra.count - at else { break }
        if tag == Layout.zip64ExtraTag {
            var field = at
            let fieldEnd = at + size
            func next() throws(ZipError) -> UInt64 {
                guard fieldEnd - field >= 8 else {
                    throw ZipError(message: "zip: the ZIP64 extra field of entry \(GoQuote.string(name)) is too short")
                }
                defer { field += 8 }
                return extra.u64(field)
            }
            if needUncompressed { uncompressedSize = try next(); needUncompressed = false }
            if needCompressed { compressedSize = try next(); needCompressed = false }
            if needOffset { localHeaderOffset = try next(); needOffset = false }
        }
        at += size
    }
    // An uncompressed size of exactly 0xFFFFFFFF without ZIP64 is plausible (Go accepts it); the others are not.
    guard !needCompressed, !needOffset else {
        throw ZipError(message: "zip: entry \(GoQuote.string(name)) has saturated sizes or offset but no ZIP64 extra field")
    }
    guard flags & 0x1 == 0 else {
        throw ZipError(message: "zip: entry \(GoQuote.string(name)) is encrypted")
    }
    guard method != 0 || compressedSize == uncompressedSize else {
        throw ZipError(
            message: "zip: stored entry \(GoQuote.string(name)) has compressed size \(compressedSize) "
                + "but uncompressed size \(uncompressedSize)")
    }
    guard let dataEnd = sum(localHeaderOffset, Layout.localHeaderLength, UInt64(nameLength), compressedSize),
        dataEnd <= directoryOffset
    else {
        throw ZipError(message: "zip: not a valid zip file: the data of entry \(GoQuote.string(name)) runs into the central directory")
    }
    return ZipEntry(
        name: name, method: method, crc32: crc, compressedSize: compressedSize, uncompressedSize: uncompressedSize,
        localHeaderOffset: localHeaderOffset, isDirectory: name.utf8.last == UInt8(ascii: "/"))
}

/// Refuses entries whose [local header, end of data) ranges overlap: the trick behind overlapping-file zip bombs,
/// and never produced by a real writer.
private func checkNoOverlap(_ entries: [ZipEntry]) throws(ZipError) {
    let order = entries.indices.sorted { entries[$0].localHeaderOffset < entries[$1].localHeaderOffset }
    for (previous, next) in zip(order, order.dropFirst()) {
        let first = entries[previous]
        // Cannot overflow: readEntry checked this sum against the directory offset.
        let firstEnd = first.localHeaderOffset + Layout.localHeaderLength + UInt64(first.name.utf8.count) + first.compressedSize
        if entries[next].localHeaderOffset < firstEnd {
            throw ZipError(message: "zip: entries \(GoQuote.string(first.name)) and \(GoQuote.string(entries[next].name)) overlap")
        }
    }
}
