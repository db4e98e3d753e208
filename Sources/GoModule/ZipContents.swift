// ZipContents: reads every entry of a zip in full (local header, data, data descriptor), inflating with zlib,
// so that a zip whose directory lies about sizes or whose data is corrupt is refused before it is stored.
//
// Memory is bounded whatever the zip: one input and one output buffer and one zlib window, reused for
// every entry. Output is never inflated past an entry's declared size (plus one byte, to see that it lies),
// and `ModuleZip.check` bounds the declared sizes' total by the go command's 500 MiB, so a zip bomb costs
// at most that much CPU and no memory.

import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Sees every entry's uncompressed bytes while `ZipContents` checks them (so a caller can hash them in the same
/// pass): `begin`, then `data` per chunk, then `end`, one entry after another in local-header order. `index` is the
/// entry's position in the entries checked. An entry that fails its check gets no `end`.
public protocol ZipEntryObserver: AnyObject {
    func begin(entry index: Int)
    func data(_ bytes: UnsafeRawBufferPointer)
    func end(entry index: Int)
}

/// Checks a zip's contents against its central directory.
public enum ZipContents {
    /// Bytes read or inflated per step.
    static let chunk = 1 << 16

    /// Reads every entry of the zip in `fd` (`size` bytes) and refuses it unless, for each entry: the local
    /// header agrees with the directory (signature, name, method, and CRC-32 and sizes unless a data descriptor
    /// follows), the data lies before the next entry and the directory, the data inflates to exactly the declared
    /// size with the declared CRC-32 (Go's "zip: checksum error" otherwise), and a data descriptor, if flagged,
    /// carries the same CRC-32. `entries` and `directoryOffset` come from `ZipDirectory`.
    /// `observer` sees each entry's uncompressed bytes.
    static func verify(fd: Int32, size: UInt64, entries: [ZipEntry], directoryOffset: UInt64,
                       observer: (any ZipEntryObserver)? = nil) throws(ZipError) {
        var reader = Reader(fd: fd, size: size)
        let order = entries.indices.sorted { entries[$0].localHeaderOffset < entries[$1].localHeaderOffset }
        var inflater = try Inflater()
        for (position, index) in order.enumerated() {
            let bound = position + 1 < order.count ? entries[order[position + 1]].localHeaderOffset : directoryOffset
            observer?.begin(entry: index)
            try verify(entries[index], before: bound, &reader, &inflater, observer)
            observer?.end(entry: index)
        }
    }

    private static func verify(_ entry: ZipEntry, before bound: UInt64, _ reader: inout Reader, _ inflater: inout Inflater,
                               _ observer: (any ZipEntryObserver)?) throws(ZipError) {
        // Quoted only for a message: most entries never need it.
        var name: String { GoQuote.string(entry.name) }
        let header = try reader.read(at: entry.localHeaderOffset, count: 30, what: "the local header of \(name)")
        guard header.u32(0) == 0x0403_4b50 else { throw ZipError(message: "zip: entry \(name) has no local header at offset \(entry.localHeaderOffset)") }
        let flags = header.u16(6)
        let method = header.u16(8)
        let nameLength = UInt64(header.u16(26))
        let extraLength = UInt64(header.u16(28))
        guard method == entry.method else {
            throw ZipError(message: "zip: entry \(name): local header says method \(method), directory says \(entry.method)")
        }
        guard flags & 0x1 == 0 else { throw ZipError(message: "zip: entry \(name) is encrypted") }
        let localName = try reader.read(at: entry.localHeaderOffset + 30, count: Int(nameLength), what: "the local name of \(name)")
        guard localName.elementsEqual(entry.name.utf8) else {
            throw ZipError(message: "zip: entry \(name): the local header names it \(GoQuote.string(String(decoding: localName, as: UTF8.self)))")
        }
        let dataStart = entry.localHeaderOffset + 30 + nameLength + extraLength
        guard dataStart <= bound, entry.compressedSize <= bound - dataStart else {
            throw ZipError(message: "zip: the data of entry \(name) runs into the next entry or the central directory")
        }
        let hasDescriptor = flags & 0x8 != 0
        var localCRC = UInt64(header.u32(14))
        var localCompressed = UInt64(header.u32(18))
        var localUncompressed = UInt64(header.u32(22))
        if localCompressed == 0xFFFF_FFFF || localUncompressed == 0xFFFF_FFFF {
            let extra = try reader.read(at: entry.localHeaderOffset + 30 + nameLength, count: Int(extraLength), what: "the local extra field of \(name)")
            // In a local header the ZIP64 field holds both sizes, uncompressed first (APPNOTE 4.5.3).
            var at = 0
            while extra.count - at >= 4 {
                let tag = extra.u16(at), length = Int(extra.u16(at + 2))
                at += 4
                guard length <= extra.count - at else { break }
                if tag == 0x0001, length >= 16 {
                    localUncompressed = extra.u64(at)
                    localCompressed = extra.u64(at + 8)
                }
                at += length
            }
        }
        if hasDescriptor {
            // Streaming writers (the go command's among them) leave zeros here; anything else must agree.
            if localCRC == 0 && localCompressed == 0 && localUncompressed == 0 {
                localCRC = UInt64(entry.crc32); localCompressed = entry.compressedSize; localUncompressed = entry.uncompressedSize
            }
        }
        guard localCRC == UInt64(entry.crc32), localCompressed == entry.compressedSize, localUncompressed == entry.uncompressedSize else {
            throw ZipError(
                message: "zip: entry \(name): local header (CRC-32 \(hex(localCRC)), \(localCompressed) bytes stored, \(localUncompressed) unpacked) "
                    + "disagrees with the central directory (CRC-32 \(hex(UInt64(entry.crc32))), \(entry.compressedSize) stored, \(entry.uncompressedSize) unpacked)")
        }

        let crc: UInt32
        switch entry.method {
        case 0: crc = try stored(entry, at: dataStart, &reader, observer)
        case 8: crc = try inflater.inflate(entry, at: dataStart, &reader, observer)
        default: throw ZipError(message: "zip: entry \(name): unsupported compression method \(entry.method)")
        }
        guard crc == entry.crc32 else { throw ZipError(message: "zip: checksum error in entry \(name)") }

        if hasDescriptor {
            // As Go's archive/zip: an optional signature, then the CRC-32 that must match (the sizes are not read).
            let end = dataStart + entry.compressedSize
            let available = min(bound - end, 8)
            let descriptor = try reader.read(at: end, count: Int(available), what: "the data descriptor of \(name)")
            let crcAt = descriptor.count >= 4 && descriptor.u32(0) == 0x0807_4b50 ? 4 : 0
            guard descriptor.count >= crcAt + 4 else { throw ZipError(message: "zip: entry \(name): its data descriptor is missing") }
            guard descriptor.u32(crcAt) == entry.crc32 else { throw ZipError(message: "zip: checksum error in the data descriptor of entry \(name)") }
        }
    }

    /// CRC-32 of a stored entry's bytes (its two sizes were checked equal by `ZipDirectory`).
    private static func stored(_ entry: ZipEntry, at start: UInt64, _ reader: inout Reader,
                               _ observer: (any ZipEntryObserver)?) throws(ZipError) -> UInt32 {
        var crc: UInt = 0
        var done: UInt64 = 0
        while done < entry.compressedSize {
            let count = Int(min(UInt64(chunk), entry.compressedSize - done))
            try reader.withChunk(at: start + done, count: count, what: "the data of \(GoQuote.string(entry.name))") { bytes in
                crc = CZlib.crc32(crc, bytes.baseAddress, uInt(bytes.count))
                observer?.data(bytes)
            }
            done += UInt64(count)
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    private static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}

/// A raw-deflate inflater, reset between entries.
private struct Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutableRawBufferPointer
    private let owner: Owner

    /// Frees zlib's state when the inflater goes.
    private final class Owner {
        let stream: UnsafeMutablePointer<z_stream>
        let output: UnsafeMutableRawBufferPointer
        init(_ stream: UnsafeMutablePointer<z_stream>, _ output: UnsafeMutableRawBufferPointer) { self.stream = stream; self.output = output }
        deinit {
            inflateEnd(stream)
            stream.deallocate()
            output.deallocate()
        }
    }

    init() throws(ZipError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateInit2_(stream, -MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            throw ZipError(message: "zip: zlib inflateInit2 failed (\(status))")
        }
        output = .allocate(byteCount: ZipContents.chunk, alignment: 16)
        owner = Owner(stream, output)
    }

    /// Inflates the entry's data; returns its CRC-32. Refuses as soon as the output passes the declared size.
    mutating func inflate(_ entry: ZipEntry, at start: UInt64, _ reader: inout Reader,
                          _ observer: (any ZipEntryObserver)?) throws(ZipError) -> UInt32 {
        var name: String { GoQuote.string(entry.name) }
        guard inflateReset(stream) == Z_OK else { throw ZipError(message: "zip: zlib inflateReset failed") }
        var crc: UInt = 0
        var produced: UInt64 = 0
        var consumed: UInt64 = 0
        var finished = false
        let out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        while !finished {
            let count = Int(min(UInt64(ZipContents.chunk), entry.compressedSize - consumed))
            guard count > 0 else {
                throw ZipError(message: "zip: entry \(name): its deflate data ends before the stream does (corrupt or truncated)")
            }
            var failure: ZipError?
            try reader.withChunk(at: start + consumed, count: count, what: "the data of \(name)") { input in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(input.count)
                repeat {
                    // Never more than one byte past the declared size: enough to see the lie, not to be bombed.
                    let room = min(UInt64(ZipContents.chunk), entry.uncompressedSize - produced + 1)
                    stream.pointee.next_out = out
                    stream.pointee.avail_out = uInt(room)
                    let status = CZlib.inflate(stream, Z_NO_FLUSH)
                    let made = Int(room) - Int(stream.pointee.avail_out)
                    produced += UInt64(made)
                    crc = CZlib.crc32(crc, out, uInt(made))
                    if produced > entry.uncompressedSize {
                        failure = ZipError(message: "zip: entry \(name) inflates to more than the \(entry.uncompressedSize) bytes its directory declares")
                        return
                    }
                    if made > 0 { observer?.data(UnsafeRawBufferPointer(start: out, count: made)) }
                    switch status {
                    case Z_STREAM_END:
                        finished = true
                        return
                    case Z_OK:
                        continue
                    case Z_BUF_ERROR where made == 0:
                        return  // needs more input
                    case Z_BUF_ERROR:
                        continue
                    default:
                        let why = stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
                        failure = ZipError(message: "zip: entry \(name): corrupt deflate data: \(why)")
                        return
                    }
                } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
            }
            if let failure { throw failure }
            consumed += UInt64(count) - UInt64(stream.pointee.avail_in)
        }
        guard produced == entry.uncompressedSize else {
            throw ZipError(message: "zip: entry \(name) inflates to \(produced) bytes, not the \(entry.uncompressedSize) its directory declares")
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}

/// Exact preads through one reusable buffer.
private struct Reader {
    let fd: Int32
    let size: UInt64
    /// No read is longer than the file or than a chunk: a small zip zeroes a small buffer.
    private var buffer: [UInt8]

    init(fd: Int32, size: UInt64) {
        self.fd = fd
        self.size = size
        buffer = [UInt8](repeating: 0, count: Int(min(UInt64(ZipContents.chunk), size)))
    }

    /// Small reads (headers, names): a fresh array.
    mutating func read(at offset: UInt64, count: Int, what: @autoclosure () -> String) throws(ZipError) -> [UInt8] {
        var result: [UInt8] = []
        try withChunk(at: offset, count: count, what: what()) { result = Array($0) }
        return result
    }

    /// Calls `body` with exactly `count` (at most `chunk`) bytes at `offset`.
    mutating func withChunk(at offset: UInt64, count: Int, what: @autoclosure () -> String,
                            _ body: (UnsafeRawBufferPointer) -> Void) throws(ZipError) {
        guard count <= buffer.count, offset <= size, UInt64(count) <= size - offset else {
            throw ZipError(message: "zip: not a valid zip file: \(what()) runs past the end of the file")
        }
        var failure: Int32 = 0
        var done = 0
        let fd = fd
        buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n > 0 { done += n } else if n == 0 { return } else if errno != EINTR { failure = errno; return }
            }
        }
        if failure != 0 { throw ZipError(message: "zip: read failed at offset \(offset): \(String(cString: strerror(failure)))") }
        guard done == count else { throw ZipError(message: "zip: \(what()) is cut short: the file ends at offset \(offset + UInt64(done))") }
        buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

extension Array where Element == UInt8 {
    fileprivate func u16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    fileprivate func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    fileprivate func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}
