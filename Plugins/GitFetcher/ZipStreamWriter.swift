// ZipStreamWriter: writes a zip archive front to back into a sink, deflating each file with the system zlib.
// Nothing is ever sought back: sizes and CRCs follow each file in a data descriptor, as Go's zip.Writer does,
// so memory stays at one deflate state plus small buffers whatever the archive's size.
import CZlib
import PluginKit

/// Streams a zip archive to `output`.
final class ZipStreamWriter {
    /// Where finished bytes go, in order.
    typealias Output = (UnsafeRawBufferPointer) throws(PluginFailure) -> Void

    private struct CentralEntry {
        var name: [UInt8]
        var crc: UInt32
        var compressed: UInt64
        var uncompressed: UInt64
        var offset: UInt64
        var flags: UInt16
    }

    private let output: Output
    private var stream = z_stream()
    private var entries: [CentralEntry] = []
    private var pending: [UInt8] = []
    private var offset: UInt64 = 0
    private let deflateBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 64 << 10)
    private var current: CentralEntry?
    private var finished = false
    /// The level asked for, and the one the stream uses now (0 while storing an incompressible file).
    private let level: Int32
    private var currentLevel: Int32
    /// Whether the current file's compressibility was judged already.
    private var judged = false
    /// Input seen before judging a file: deflate that saves under 3% of it switches to storing.
    private static let judgeAfter: UInt64 = 256 << 10
    /// Bytes kept before handing them to `output`.
    private static let flushThreshold = 256 << 10

    /// Prepares a zlib raw-deflate stream at `level` (zlib's 0...9, or -1 for its default).
    init(level: Int32, output: @escaping Output) throws(PluginFailure) {
        self.output = output
        self.level = level
        currentLevel = level
        pending.reserveCapacity(Self.flushThreshold + (64 << 10))
        // Negative window bits: raw deflate, no zlib header, as zip wants.
        let status = deflateInit2_(&stream, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                                   ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            deflateBuffer.deallocate()
            throw .internal("zlib deflateInit2 failed (\(status))")
        }
    }

    deinit {
        deflateEnd(&stream)
        deflateBuffer.deallocate()
    }

    /// Starts a file named `name` (its bytes follow with `write`, then `endFile`).
    func beginFile(_ name: String) throws(PluginFailure) {
        precondition(current == nil && !finished)
        let nameBytes = Array(name.utf8)
        // Bit 3: sizes and CRC follow the data; bit 11: the name is UTF-8 (set when it is not plain ASCII).
        let flags: UInt16 = 0x0008 | (nameBytes.contains { $0 >= 0x80 } ? 0x0800 : 0)
        current = CentralEntry(name: nameBytes, crc: 0, compressed: 0, uncompressed: 0, offset: offset, flags: flags)
        append32(0x0403_4b50)
        append16(20)            // version needed: 2.0 (deflate)
        append16(flags)
        append16(8)             // deflate
        append16(0)             // time 00:00
        append16(0x21)          // date 1980-01-01
        append32(0)             // CRC, sizes: in the data descriptor
        append32(0)
        append32(0)
        append16(UInt16(nameBytes.count))
        append16(0)
        pending.append(contentsOf: nameBytes)
        offset += 30 + UInt64(nameBytes.count)
        deflateReset(&stream)
        judged = false
        if currentLevel != level { try setLevel(level) }
    }

    /// Adds bytes to the current file.
    func write(_ bytes: UnsafeRawBufferPointer) throws(PluginFailure) {
        guard !bytes.isEmpty, let base = bytes.baseAddress else { return }
        current!.crc = UInt32(crc32(uLong(current!.crc), base.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
        current!.uncompressed += UInt64(bytes.count)
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(bytes.count)
        try pump(flush: Z_NO_FLUSH)
        // Already-compressed data (images, archives, random test data) costs deflate the most and gains
        // nothing: once a file shows that, the rest of it is stored (still inside the deflate stream).
        if !judged, current!.uncompressed >= Self.judgeAfter {
            judged = true
            // deflate holds up to a block back: count its pending output too.
            var held: UInt32 = 0
            var bits: Int32 = 0
            deflatePending(&stream, &held, &bits)
            let produced = current!.compressed + UInt64(held)
            if currentLevel != 0, produced * 100 >= current!.uncompressed * 97 { try setLevel(0) }
        }
    }

    /// deflateParams, giving it room for what it flushes at the old level.
    private func setLevel(_ newLevel: Int32) throws(PluginFailure) {
        while true {
            stream.next_out = deflateBuffer
            stream.avail_out = uInt(64 << 10)
            let status = deflateParams(&stream, newLevel, Z_DEFAULT_STRATEGY)
            let produced = (64 << 10) - Int(stream.avail_out)
            if produced > 0 {
                pending.append(contentsOf: UnsafeBufferPointer(start: deflateBuffer, count: produced))
                current?.compressed += UInt64(produced)
                offset += UInt64(produced)
            }
            if status == Z_OK { break }
            guard status == Z_BUF_ERROR else { throw .internal("zlib deflateParams failed (\(status))") }
        }
        currentLevel = newLevel
        try flushIfFull()
    }

    /// Ends the current file: flushes the deflate stream and writes the data descriptor.
    func endFile() throws(PluginFailure) {
        stream.next_in = nil
        stream.avail_in = 0
        try pump(flush: Z_FINISH)
        let entry = current!
        append32(0x0807_4b50)
        append32(entry.crc)
        append32(UInt32(truncatingIfNeeded: entry.compressed))
        append32(UInt32(truncatingIfNeeded: entry.uncompressed))
        offset += 16
        entries.append(entry)
        current = nil
        try flushIfFull()
    }

    /// Writes the central directory and hands over every remaining byte.
    func finish() throws(PluginFailure) {
        precondition(current == nil && !finished)
        finished = true
        let directoryStart = offset
        for entry in entries {
            append32(0x0201_4b50)
            append16(20)        // made by: 2.0, MS-DOS attributes (none)
            append16(20)
            append16(entry.flags)
            append16(8)
            append16(0)
            append16(0x21)
            append32(entry.crc)
            append32(UInt32(truncatingIfNeeded: entry.compressed))
            append32(UInt32(truncatingIfNeeded: entry.uncompressed))
            append16(UInt16(entry.name.count))
            append16(0)         // extra
            append16(0)         // comment
            append16(0)         // disk
            append16(0)         // internal attributes
            append32(0)         // external attributes
            append32(UInt32(truncatingIfNeeded: entry.offset))
            pending.append(contentsOf: entry.name)
            offset += 46 + UInt64(entry.name.count)
            try flushIfFull()
        }
        let directorySize = offset - directoryStart
        let count = UInt64(entries.count)
        if count >= 0xFFFF {
            // Zip64 end record and locator: more entries than the classic record can count.
            let zip64Start = offset
            append32(0x0606_4b50)
            append64(44)
            append16(45)
            append16(45)
            append32(0)
            append32(0)
            append64(count)
            append64(count)
            append64(directorySize)
            append64(directoryStart)
            append32(0x0706_4b50)
            append32(0)
            append64(zip64Start)
            append32(1)
        }
        append32(0x0605_4b50)
        append16(0)
        append16(0)
        append16(UInt16(min(count, 0xFFFF)))
        append16(UInt16(min(count, 0xFFFF)))
        append32(UInt32(truncatingIfNeeded: directorySize))
        append32(UInt32(truncatingIfNeeded: directoryStart))
        append16(0)
        try flush()
    }

    /// Runs deflate until it has consumed its input (and, with Z_FINISH, ended the stream).
    private func pump(flush: Int32) throws(PluginFailure) {
        while true {
            stream.next_out = deflateBuffer
            stream.avail_out = uInt(64 << 10)
            let status = deflate(&stream, flush)
            guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                throw .internal("zlib deflate failed (\(status))")
            }
            let produced = (64 << 10) - Int(stream.avail_out)
            if produced > 0 {
                pending.append(contentsOf: UnsafeBufferPointer(start: deflateBuffer, count: produced))
                current!.compressed += UInt64(produced)
                offset += UInt64(produced)
                try flushIfFull()
            }
            if flush == Z_FINISH {
                if status == Z_STREAM_END { return }
            } else if stream.avail_in == 0 && stream.avail_out != 0 {
                return
            }
        }
    }

    private func flushIfFull() throws(PluginFailure) {
        if pending.count >= Self.flushThreshold { try flush() }
    }

    private func flush() throws(PluginFailure) {
        guard !pending.isEmpty else { return }
        var failure: PluginFailure?
        pending.withUnsafeBytes { raw in
            do throws(PluginFailure) { try output(raw) } catch { failure = error }
        }
        pending.removeAll(keepingCapacity: true)
        if let failure { throw failure }
    }

    private func append16(_ value: UInt16) {
        pending.append(UInt8(value & 0xFF))
        pending.append(UInt8(value >> 8))
    }

    private func append32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { pending.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
    }

    private func append64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { pending.append(UInt8((value >> UInt64(shift)) & 0xFF)) }
    }
}
