import Foundation
import PluginABI
@testable import PluginHost

/// Stream-shaped blobs (the `read` callback shape) of `size` pattern bytes made as they are read, for tests of
/// how the server pulls them: how much was read, whether each blob was released, and a gate that can hold
/// every read (a storage `read` that blocks).
final class StreamSource: @unchecked Sendable {
    let size: UInt64
    /// Every read passes it first.
    let gate = Gate()
    private let lock = NSLock()
    private var pulledBytes: UInt64 = 0
    private var releases = 0
    private var opened = 0

    init(size: UInt64) { self.size = size }

    /// The pattern repeats every `period` bytes: a prime, so a chunk of any power-of-two size sent twice or
    /// out of order shows.
    static let period = 65521
    /// Two periods of the pattern, so any run of up to `period` bytes is contiguous in it.
    static let pattern: [UInt8] = (0..<(2 * period)).map { i in
        let x = UInt64(i % period)
        return UInt8(truncatingIfNeeded: (x &* 0x9E37_79B9) >> 13 ^ x >> 7)
    }

    /// Whether `bytes` are the pattern from `offset` on.
    static func matches(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) -> Bool {
        var done = 0
        while done < bytes.count {
            let start = Int((offset + UInt64(done)) % UInt64(period))
            let n = min(bytes.count - done, period)
            let same = pattern.withUnsafeBytes { memcmp($0.baseAddress! + start, bytes.baseAddress! + done, n) == 0 }
            if !same { return false }
            done += n
        }
        return true
    }

    /// Bytes read so far, over all blobs.
    var pulled: UInt64 { lock.withLock { pulledBytes } }
    /// Blobs released so far.
    var released: Int { lock.withLock { releases } }
    /// Blobs made so far.
    var made: Int { lock.withLock { opened } }

    /// A new blob reading from offset 0.
    func blob() -> Blob {
        let reader = Reader(source: self)
        var raw = ath_blob()
        raw.fd = -1
        raw.size = size
        raw.private_data = Unmanaged.passRetained(reader).toOpaque()
        raw.read = { context, buffer, capacity in
            let reader = Unmanaged<Reader>.fromOpaque(context!).takeUnretainedValue()
            return reader.read(into: buffer, capacity: capacity)
        }
        raw.release = { context in
            let reader = Unmanaged<Reader>.fromOpaque(context!).takeRetainedValue()
            reader.source.lock.withLock { reader.source.releases += 1 }
        }
        lock.withLock { opened += 1 }
        return try! Blob(taking: raw, plugin: "stream-source")
    }

    private final class Reader {
        let source: StreamSource
        var position: UInt64 = 0
        init(source: StreamSource) { self.source = source }

        func read(into buffer: UnsafeMutablePointer<UInt8>, capacity: UInt64) -> Int64 {
            source.gate.pass()
            let n = min(capacity, source.size - position)
            var done: UInt64 = 0
            while done < n {
                let start = Int((position + done) % UInt64(StreamSource.period))
                let piece = Int(min(n - done, UInt64(StreamSource.period)))
                StreamSource.pattern.withUnsafeBytes { (buffer + Int(done)).update(from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, count: piece) }
                done += UInt64(piece)
            }
            position += n
            source.lock.withLock { source.pulledBytes += n }
            return Int64(n)
        }
    }
}
