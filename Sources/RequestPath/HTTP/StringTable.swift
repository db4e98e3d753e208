import Glibc

/// The strings recent request heads decoded on one event loop (targets, header values, long header names), so a
/// head that repeats one gets the same `String` back (a retain) instead of a new heap buffer. Warm clients ask the
/// same paths again and again (the reason for `DownloadRequest`'s memo too): with this table a warm hit's parse
/// allocates nothing. Strings of up to 15 bytes never allocate (they are stored inline), but making one from bytes
/// costs ~200 instructions of UTF-8 validation, several times a lookup here: they are kept too.
///
/// Bounded: `slotCount` slots of at most `maxLength` bytes each, in buckets of `ways`, least recently used first
/// out (a direct-mapped table let two hot strings of one slot evict each other on every request: measured, one
/// path in twenty allocating each time). A slot answers only for the very bytes it holds (compared in full), so
/// the table never changes what a head parses to, only where its strings' bytes live. Touched only on its loop's
/// thread.
package final class StringTable {
    /// Longest string kept (longer ones are decoded each time): bounds the table at slotCount × maxLength bytes.
    package static let maxLength = 256
    /// Slots of a bucket, most recently used first.
    package static let ways = 4
    package let slotCount: Int
    private let slots: UnsafeMutablePointer<String>
    private let hashes: UnsafeMutablePointer<UInt64>
    /// Lookups answered from the table, and strings put in (tests and the bench read them).
    package private(set) var hits = 0, insertions = 0

    /// `slotCount`: a power of two, at least `ways`. The default holds a working set of ~1,000 strings per loop: with
    /// 1,024 slots, 420 hot paths (bench/run.sh's .info test) left ~7% of them in buckets of five or more, which
    /// evict each other on every round (0.07 allocs/req); with 2,048, ~0.2%. 48 KiB of slots per loop, plus the
    /// strings (at most `maxLength` each).
    package init(slotCount: Int = 2048) {
        precondition(slotCount >= Self.ways && slotCount & (slotCount - 1) == 0, "slotCount must be a power of two >= ways")
        self.slotCount = slotCount
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: "", count: slotCount)
        hashes = .allocate(capacity: slotCount)
        hashes.initialize(repeating: 0, count: slotCount)
    }

    deinit {
        slots.deinitialize(count: slotCount)
        slots.deallocate()
        hashes.deallocate()
    }

    /// `bytes` as a String, as `String(decoding:as: UTF8.self)` makes it (ill-formed UTF-8 repaired).
    package func string(_ bytes: UnsafeRawBufferPointer) -> String {
        let count = bytes.count
        guard count > 0, count <= Self.maxLength, let base = bytes.baseAddress else {
            return String(decoding: bytes, as: UTF8.self)
        }
        let hash = Self.hash(base, count)
        let bucket = (Int(truncatingIfNeeded: hash) & (slotCount / Self.ways - 1)) * Self.ways
        for way in 0..<Self.ways {
            let slot = bucket + way
            // Compared with the bytes of the decoded string: equal only when the input is well-formed, and then it
            // decodes to exactly these bytes. A repaired string never matches its (ill-formed) input: decoded anew.
            guard hashes[slot] == hash, slots[slot].utf8.count == count,
                  slots[slot].utf8.withContiguousStorageIfAvailable({ memcmp($0.baseAddress!, base, count) == 0 }) == true
            else { continue }
            hits += 1
            if way > 0 { moveToFront(bucket, from: slot) }
            return slots[bucket]
        }
        // A miss: the bucket's least recently used string goes.
        slots[bucket + Self.ways - 1] = String(decoding: bytes, as: UTF8.self)
        hashes[bucket + Self.ways - 1] = hash
        moveToFront(bucket, from: bucket + Self.ways - 1)
        insertions += 1
        return slots[bucket]
    }

    /// Moves the string in `slot` to the front of its bucket, the ones before it one place back.
    private func moveToFront(_ bucket: Int, from slot: Int) {
        let string = slots[slot], hash = hashes[slot]
        var i = slot
        while i > bucket {
            slots[i] = slots[i - 1]
            hashes[i] = hashes[i - 1]
            i -= 1
        }
        slots[bucket] = string
        hashes[bucket] = hash
    }

    /// `bytes` with ASCII letters lower-cased, as a String (header names).
    package func lowercased(_ bytes: UnsafeRawBufferPointer) -> String {
        let count = bytes.count
        guard count > 0, count <= Self.maxLength else { return Self.lowercased(bytes) }
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { out in
            for i in 0..<count { out[i] = Self.lower(bytes[i]) }
            return string(UnsafeRawBufferPointer(out))
        }
    }

    /// `bytes` with ASCII letters lower-cased, written straight into a new String (no table).
    package static func lowercased(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { out in
            for i in 0..<bytes.count { out[i] = lower(bytes[i]) }
            return bytes.count
        }
    }

    @inline(__always)
    private static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    /// A multiply-xor hash of 8-byte words (`count` > 0): a few instructions a word, where Hasher (SipHash)
    /// costs hundreds for a path. Collisions only cost a decode: slots are compared in full.
    @inline(__always)
    private static func hash(_ base: UnsafeRawPointer, _ count: Int) -> UInt64 {
        var h = UInt64(truncatingIfNeeded: count) &* 0x9E37_79B9_7F4A_7C15
        if count < 8 {
            var word: UInt64 = 0
            for i in 0..<count { word = word << 8 | UInt64(base.load(fromByteOffset: i, as: UInt8.self)) }
            h = (h ^ word) &* 0xC4CE_B9FE_1A85_EC53
            return h ^ (h >> 29)
        }
        var offset = 0
        while offset + 8 < count {
            h = (h ^ base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            offset += 8
        }
        // The last 8 bytes (overlapping the previous word when count is not a multiple of 8).
        h = (h ^ base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)) &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }
}
