import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// The zip a check saves: an `ath_reader` whose bytes come from a generator, with short reads and audits.
///
/// Reads return varying lengths (the ABI allows 1...cap) so that a plugin assuming full reads fails; the
/// source records whether the plugin read to the end and whether two calls ever overlapped.
package final class ZipSource: @unchecked Sendable {
    /// Bytes the plugin is told the zip has.
    package let size: UInt64
    /// Fills a buffer with the bytes at an offset.
    private let produce: (UInt64, UnsafeMutableRawBufferPointer) -> Void
    /// When set, the read that would pass this offset returns -1 (the host failed).
    private let failAt: UInt64?
    private let lock = PosixLock()
    private var inFlight = false
    private var position: UInt64 = 0
    private var calls = 0
    package private(set) var overlapped = false
    private static let chunkPattern: [UInt64] = [.max, 1, 4093, .max, 65536, 7, .max]

    package init(size: UInt64, failAt: UInt64? = nil, produce: @escaping (UInt64, UnsafeMutableRawBufferPointer) -> Void) {
        self.size = size
        self.failAt = failAt
        self.produce = produce
    }

    /// A source of fixed bytes.
    package convenience init(bytes: [UInt8], failAt: UInt64? = nil) {
        self.init(size: UInt64(bytes.count), failAt: failAt) { offset, buffer in
            bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[Int(offset)..<(Int(offset) + buffer.count)]))
            }
        }
    }

    /// Bytes handed to the plugin so far.
    package var delivered: UInt64 { lock.withLock { position } }

    /// The `ath_reader` callback's body.
    fileprivate func read(_ buffer: UnsafeMutablePointer<UInt8>, _ capacity: UInt64) -> Int64 {
        let (start, want, failing): (UInt64, UInt64, Bool) = lock.withLock {
            if inFlight { overlapped = true }
            inFlight = true
            calls += 1
            let chunk = min(capacity, Self.chunkPattern[calls % Self.chunkPattern.count], size - position)
            let failing = failAt.map { position + chunk >= $0 && chunk > 0 } ?? false
            return (position, chunk, failing)
        }
        defer { lock.withLock { inFlight = false } }
        if failing { return -1 }
        if want == 0 { return 0 }
        produce(start, UnsafeMutableRawBufferPointer(start: buffer, count: Int(want)))
        lock.withLock { position += want }
        return Int64(want)
    }

    /// Calls `body` with an `ath_reader` over this source, valid for the call only.
    package func withReader<R>(_ body: (UnsafePointer<ath_reader>) -> R) -> R {
        let context = Unmanaged.passRetained(self)
        defer { context.release() }
        var reader = ath_reader(size: size, read: { context, buffer, capacity in
            Unmanaged<ZipSource>.fromOpaque(context!).takeUnretainedValue().read(buffer, capacity)
        }, ctx: context.toOpaque())
        return withUnsafePointer(to: &reader) { body($0) }
    }
}

/// Deterministic pseudo-random bytes that can be produced or checked at any offset without keeping them:
/// word i is splitmix64(seed + i), so a 64 MiB zip is generated while saved and compared while read back.
package struct PatternBytes: Sendable {
    package let seed: UInt64

    private func word(_ index: UInt64) -> UInt64 {
        var z = seed &+ index &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Writes the bytes at `offset ..< offset + buffer.count` into `buffer`.
    package func fill(offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer) {
        var position = offset
        var index = 0
        let end = buffer.count
        while index < end {
            let w = word(position / 8)
            let shift = position % 8
            // Whole words when aligned; the byte loop only runs at the edges.
            if shift == 0 && end - index >= 8 {
                buffer.storeBytes(of: w.littleEndian, toByteOffset: index, as: UInt64.self)
                index += 8
                position += 8
            } else {
                buffer[index] = UInt8(truncatingIfNeeded: w >> (shift * 8))
                index += 1
                position += 1
            }
        }
    }

    /// The first `count` bytes as an array (for small files).
    package func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill(offset: 0, $0) }
        return out
    }

    /// Whether `bytes` equals the pattern at `offset`, using `scratch` (at least as large) for the expected bytes.
    package func matches(offset: UInt64, _ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) -> Bool {
        let expected = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<bytes.count])
        fill(offset: offset, expected)
        return bytes.count == 0 || memcmp(bytes.baseAddress!, expected.baseAddress!, bytes.count) == 0
    }
}
