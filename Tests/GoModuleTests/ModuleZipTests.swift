// Module zips: directory reading, CheckZip's rules, full-content validation. Longer than ~400 lines on purpose:
// tables of hostile zips built byte by byte by the builder at the top, one row per rule.
import GoModule
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - A tiny zip writer for tests

/// CRC-32 (IEEE), table-driven, as zip needs it.
private let crcTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

private func crc32(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
}

private func put16(_ out: inout [UInt8], _ v: UInt16) { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
private func put32(_ out: inout [UInt8], _ v: UInt32) { put16(&out, UInt16(v & 0xFFFF)); put16(&out, UInt16(v >> 16)) }
private func put64(_ out: inout [UInt8], _ v: UInt64) { put32(&out, UInt32(v & 0xFFFF_FFFF)); put32(&out, UInt32(v >> 32)) }

private func patch16(_ bytes: inout [UInt8], at: Int, _ v: UInt16) {
    bytes[at] = UInt8(v & 0xFF)
    bytes[at + 1] = UInt8(v >> 8)
}
private func patch32(_ bytes: inout [UInt8], at: Int, _ v: UInt32) {
    patch16(&bytes, at: at, UInt16(v & 0xFFFF))
    patch16(&bytes, at: at + 2, UInt16(v >> 16))
}
private func patch64(_ bytes: inout [UInt8], at: Int, _ v: UInt64) {
    patch32(&bytes, at: at, UInt32(v & 0xFFFF_FFFF))
    patch32(&bytes, at: at + 4, UInt32(v >> 32))
}

/// Writes stored zips, optionally with ZIP64 extra fields and end records, and says where each record went.
private struct TestZip {
    struct File {
        var name: [UInt8]
        var data: [UInt8]
        var zip64 = false

        init(_ name: String, _ data: String = "", zip64: Bool = false) {
            self.name = Array(name.utf8)
            self.data = Array(data.utf8)
            self.zip64 = zip64
        }

        init(rawName: [UInt8], _ data: String = "") {
            self.name = rawName
            self.data = Array(data.utf8)
        }
    }

    var files: [File]
    var comment: [UInt8] = []
    var zip64End = false

    /// The zip's bytes and the offsets tests patch.
    struct Built {
        var bytes: [UInt8]
        var centralHeaders: [Int] = []
        var directoryOffset = 0
        var zip64EndOffset: Int?
        var zip64LocatorOffset: Int?
        var endOffset = 0
    }

    func build() -> Built {
        var out: [UInt8] = []
        var locals: [Int] = []
        for file in files {
            locals.append(out.count)
            put32(&out, 0x0403_4b50)
            put16(&out, file.zip64 ? 45 : 20)
            put16(&out, 0x800)
            put16(&out, 0)  // stored
            put16(&out, 0)
            put16(&out, 0x21)  // 1980-01-01
            put32(&out, crc32(file.data))
            put32(&out, file.zip64 ? 0xFFFF_FFFF : UInt32(file.data.count))
            put32(&out, file.zip64 ? 0xFFFF_FFFF : UInt32(file.data.count))
            put16(&out, UInt16(file.name.count))
            put16(&out, file.zip64 ? 20 : 0)
            out += file.name
            if file.zip64 {
                put16(&out, 1)
                put16(&out, 16)
                put64(&out, UInt64(file.data.count))
                put64(&out, UInt64(file.data.count))
            }
            out += file.data
        }
        var built = Built(bytes: [])
        built.directoryOffset = out.count
        for (file, local) in zip(files, locals) {
            built.centralHeaders.append(out.count)
            put32(&out, 0x0201_4b50)
            put16(&out, 0x031E)
            put16(&out, file.zip64 ? 45 : 20)
            put16(&out, 0x800)
            put16(&out, 0)
            put16(&out, 0)
            put16(&out, 0x21)
            put32(&out, crc32(file.data))
            put32(&out, file.zip64 ? 0xFFFF_FFFF : UInt32(file.data.count))
            put32(&out, file.zip64 ? 0xFFFF_FFFF : UInt32(file.data.count))
            put16(&out, UInt16(file.name.count))
            put16(&out, file.zip64 ? 28 : 0)
            put16(&out, 0)  // comment
            put16(&out, 0)  // disk
            put16(&out, 0)  // internal attributes
            put32(&out, 0o100644 << 16)
            put32(&out, file.zip64 ? 0xFFFF_FFFF : UInt32(local))
            out += file.name
            if file.zip64 {
                put16(&out, 1)
                put16(&out, 24)
                put64(&out, UInt64(file.data.count))
                put64(&out, UInt64(file.data.count))
                put64(&out, UInt64(local))
            }
        }
        let directorySize = out.count - built.directoryOffset
        if zip64End {
            built.zip64EndOffset = out.count
            put32(&out, 0x0606_4b50)
            put64(&out, 44)
            put16(&out, 45)
            put16(&out, 45)
            put32(&out, 0)
            put32(&out, 0)
            put64(&out, UInt64(files.count))
            put64(&out, UInt64(files.count))
            put64(&out, UInt64(directorySize))
            put64(&out, UInt64(built.directoryOffset))
            built.zip64LocatorOffset = out.count
            put32(&out, 0x0706_4b50)
            put32(&out, 0)
            put64(&out, UInt64(built.zip64EndOffset!))
            put32(&out, 1)
        }
        built.endOffset = out.count
        put32(&out, 0x0605_4b50)
        put16(&out, 0)
        put16(&out, 0)
        put16(&out, zip64End ? 0xFFFF : UInt16(files.count))
        put16(&out, zip64End ? 0xFFFF : UInt16(files.count))
        put32(&out, zip64End ? 0xFFFF_FFFF : UInt32(directorySize))
        put32(&out, zip64End ? 0xFFFF_FFFF : UInt32(built.directoryOffset))
        put16(&out, UInt16(comment.count))
        out += comment
        built.bytes = out
        return built
    }
}

private let module = "example.com/m"
private let version = "v1.0.0"
private let prefix = "example.com/m@v1.0.0/"

private func sampleZip(zip64: Bool = false) -> TestZip {
    TestZip(
        files: [
            .init(prefix + "go.mod", "module example.com/m\n", zip64: zip64),
            .init(prefix + "m.go", "package m\n", zip64: zip64),
            .init(prefix + "sub/s.go", "package sub\n"),
        ],
        zip64End: zip64)
}

private func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    func nibble(_ c: UInt8) -> UInt8 { c >= 0x61 ? c - 0x61 + 10 : c - 0x30 }
    return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
}

/// Made by Python 3.11 `zipfile` (deflate, a directory entry, and an archive comment containing "PK\x05\x06":
/// Python's own reader takes that fake end record and fails with "Bad offset for central directory").
private let pythonZip = hexBytes(
    "504b0304140000000800cf7a7b5db071418f17000000150000001b0000006578616d706c652e636f6d2f6d4076312e302e302f676f2e6d6f64cbcd4f"
    + "29cd495548ad48cc2dc849d54bcecfd5cfe50200504b0304140000000800cf7a7b5d000000000200000000000000190000006578616d706c652e636f"
    + "6d2f6d4076312e302e302f7375622f0300504b0304140000000800cf7a7b5d4a422b7011000000f00000001d0000006578616d706c652e636f6d2f6d"
    + "4076312e302e302f7375622f6d2e676f2b484cce4e4c4f55282e4de22a18016c00504b01021403140000000800cf7a7b5db071418f17000000150000"
    + "001b00000000000000000000008001000000006578616d706c652e636f6d2f6d4076312e302e302f676f2e6d6f64504b01021403140000000800cf7a"
    + "7b5d000000000200000000000000190000000000000000001000fd41500000006578616d706c652e636f6d2f6d4076312e302e302f7375622f504b01"
    + "021403140000000800cf7a7b5d4a422b7011000000f00000001d00000000000000000000008001890000006578616d706c652e636f6d2f6d4076312e"
    + "302e302f7375622f6d2e676f504b05060000000003000300db000000d5000000270066616b6520504b050620656e64207265636f726420696e736964"
    + "652074686520636f6d6d656e74")

/// Made by Go 1.19 `archive/zip` (deflate, data descriptors).
private let goZip = hexBytes(
    "504b0304140008000800000000000000000000000000000000001b0000006578616d706c652e636f6d2f6d4076312e302e302f676f2e6d6f64cacd4f"
    + "29cd495548ad48cc2dc849d54bcecfd5cfe502040000ffff504b0708b071418f1b00000015000000504b030414000800080000000000000000000000"
    + "000000000000190000006578616d706c652e636f6d2f6d4076312e302e302f6d2e676f2a484cce4e4c4f55c8e502040000ffff504b0708c90d876510"
    + "0000000a000000504b0102140014000800080000000000b071418f1b000000150000001b00000000000000000000000000000000006578616d706c65"
    + "2e636f6d2f6d4076312e302e302f676f2e6d6f64504b0102140014000800080000000000c90d8765100000000a000000190000000000000000000000"
    + "0000640000006578616d706c652e636f6d2f6d4076312e302e302f6d2e676f504b0506000000000200020090000000bb0000000000")

@Suite("ZipDirectory reads central directories")
struct ZipDirectoryTests {
    @Test("a stored zip reads back with names, sizes, CRCs and offsets")
    func readsStoredZip() throws {
        let built = sampleZip().build()
        let entries = try ZipDirectory.read(bytes: built.bytes)
        #expect(entries.map(\.name) == [prefix + "go.mod", prefix + "m.go", prefix + "sub/s.go"])
        #expect(entries[0].uncompressedSize == 21)
        #expect(entries[0].compressedSize == 21)
        #expect(entries[0].crc32 == 0x8F41_71B0)
        #expect(entries[0].method == 0)
        #expect(entries[0].localHeaderOffset == 0)
        #expect(entries[1].localHeaderOffset == UInt64(30 + (prefix + "go.mod").utf8.count + 21))
        #expect(entries[1].crc32 == 0x6587_0DC9)
        #expect(entries.allSatisfy { !$0.isDirectory })
    }

    @Test("an empty zip is just an end record and has no entries")
    func readsEmptyZip() throws {
        let entries = try ZipDirectory.read(bytes: TestZip(files: []).build().bytes)
        #expect(entries.isEmpty)
    }

    @Test("ZIP64 end records and extra fields are read")
    func readsZip64() throws {
        let plain = try ZipDirectory.read(bytes: sampleZip().build().bytes)
        let wide = try ZipDirectory.read(bytes: sampleZip(zip64: true).build().bytes)
        #expect(wide.map(\.name) == plain.map(\.name))
        #expect(wide.map(\.uncompressedSize) == plain.map(\.uncompressedSize))
        #expect(wide.map(\.compressedSize) == plain.map(\.compressedSize))
        #expect(wide.map(\.crc32) == plain.map(\.crc32))
        #expect(wide[0].localHeaderOffset == 0)
        // ZIP64 local headers carry a 20-byte extra field.
        #expect(wide[1].localHeaderOffset == UInt64(30 + (prefix + "go.mod").utf8.count + 20 + 21))
    }

    @Test("a directory entry is reported as a directory")
    func readsDirectoryEntry() throws {
        let entries = try ZipDirectory.read(bytes: TestZip(files: [.init(prefix + "sub/"), .init(prefix + "sub/a.go", "package sub\n")]).build().bytes)
        #expect(entries.map(\.isDirectory) == [true, false])
    }

    @Test("a comment holding a fake end-record signature does not fool the reader")
    func fakeSignatureInComment() throws {
        var zip = sampleZip()
        // A complete fake end record claiming one entry at offset 0: its directory would not end where it stands.
        var fake: [UInt8] = []
        put32(&fake, 0x0605_4b50)
        put16(&fake, 0); put16(&fake, 0); put16(&fake, 1); put16(&fake, 1)
        put32(&fake, 46); put32(&fake, 0); put16(&fake, 0)
        zip.comment = Array("junk".utf8) + fake
        let entries = try ZipDirectory.read(bytes: zip.build().bytes)
        #expect(entries.count == 3)
        #expect(entries[2].name == prefix + "sub/s.go")
    }

    @Test("a zip written by Python's zipfile, deflated, with a fake signature in its comment")
    func readsPythonZip() throws {
        let entries = try ZipDirectory.read(bytes: pythonZip)
        #expect(entries.map(\.name) == [prefix + "go.mod", prefix + "sub/", prefix + "sub/m.go"])
        #expect(entries.map(\.method) == [8, 8, 8])
        #expect(entries.map(\.uncompressedSize) == [21, 0, 240])
        #expect(entries.map(\.compressedSize) == [23, 2, 17])
        #expect(entries.map(\.crc32) == [0x8F41_71B0, 0, 0x702B_424A])
        #expect(entries.map(\.localHeaderOffset) == [0, 80, 137])
        #expect(entries.map(\.isDirectory) == [false, true, false])
        try ModuleZip.check(module: module, version: version, entries: entries, zipSize: UInt64(pythonZip.count))
    }

    @Test("a zip written by Go's archive/zip, with data descriptors")
    func readsGoZip() throws {
        let entries = try ZipDirectory.read(bytes: goZip)
        #expect(entries.map(\.name) == [prefix + "go.mod", prefix + "m.go"])
        #expect(entries.map(\.method) == [8, 8])
        #expect(entries.map(\.uncompressedSize) == [21, 10])
        #expect(entries.map(\.compressedSize) == [27, 16])
        #expect(entries.map(\.crc32) == [0x8F41_71B0, 0x6587_0DC9])
        #expect(entries.map(\.localHeaderOffset) == [0, 100])
        try ModuleZip.check(module: module, version: version, entries: entries, zipSize: UInt64(goZip.count))
        #expect(ModuleZip.goModEntry(module: module, version: version, entries: entries)?.uncompressedSize == 21)
    }

    @Test("reading through a file descriptor gives the same entries as reading bytes")
    func readsFromFileDescriptor() throws {
        let bytes = sampleZip(zip64: true).build().bytes
        let fd = try TemporaryFile(bytes)
        defer { fd.close() }
        #expect(try ZipDirectory.read(fd: fd.fd, size: UInt64(bytes.count)) == ZipDirectory.read(bytes: bytes))
    }

    @Test("a size larger than the file behind the descriptor is an error, not a hang")
    func fileShorterThanDeclared() throws {
        let bytes = sampleZip().build().bytes
        let fd = try TemporaryFile(bytes)
        defer { fd.close() }
        let error = #expect(throws: ZipError.self) { try ZipDirectory.read(fd: fd.fd, size: UInt64(bytes.count) + 100) }
        #expect(error?.message.hasPrefix("zip: ") == true)
    }

    @Test("a file size no file can have is an error, not a trap")
    func impossibleSize() throws {
        let bytes = sampleZip().build().bytes
        let fd = try TemporaryFile(bytes)
        defer { fd.close() }
        for size in [UInt64.max, UInt64(Int64.max) + 1] {
            let error = #expect(throws: ZipError.self) { try ZipDirectory.read(fd: fd.fd, size: size) }
            #expect(error?.message == "zip: file size \(size) is out of range")
        }
        #expect(throws: ZipError.self) { try ZipDirectory.read(fd: fd.fd, size: UInt64(Int64.max)) }
    }

    @Test("a bad descriptor is an error")
    func badDescriptor() {
        let error = #expect(throws: ZipError.self) { try ZipDirectory.read(fd: -1, size: 100) }
        #expect(error?.message.contains("read failed") == true)
    }

    @Test("hostile zips are refused with a reason", arguments: HostileZip.all)
    func refusesHostileZip(_ hostile: HostileZip) {
        let error = #expect(throws: ZipError.self) { try ZipDirectory.read(bytes: hostile.bytes) }
        #expect(error?.message.contains(hostile.reason) == true, "\(error?.message ?? "")")
    }

    @Test("every truncation of a valid zip is refused")
    func truncations() {
        for zip in [sampleZip().build().bytes, sampleZip(zip64: true).build().bytes] {
            for length in 0..<zip.count {
                #expect(throws: ZipError.self) { try ZipDirectory.read(bytes: Array(zip[..<length])) }
            }
        }
    }

    @Test("random corruption never crashes, and whatever is accepted stays inside the file")
    func randomCorruption() {
        var random = XorShift(seed: 0x5EED)
        let originals = [sampleZip().build().bytes, sampleZip(zip64: true).build().bytes, pythonZip, goZip]
        var accepted = 0
        for round in 0..<4000 {
            var bytes = originals[round % originals.count]
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let at = Int(random.next() % UInt64(bytes.count))
                bytes[at] = random.next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: random.next())
            }
            guard let entries = try? ZipDirectory.read(bytes: bytes) else { continue }
            accepted += 1
            for entry in entries {
                #expect(entry.localHeaderOffset + 30 + entry.compressedSize <= UInt64(bytes.count))
            }
        }
        // Flips inside file data or timestamps leave the directory valid, so some must be accepted.
        #expect(accepted > 0)
    }

    @Test("a central directory claiming a billion entries is refused before allocating")
    func billionEntries() throws {
        var built = sampleZip(zip64: true).build()
        let record = try #require(built.zip64EndOffset)
        patch64(&built.bytes, at: record + 24, 1_000_000_000)
        patch64(&built.bytes, at: record + 32, 1_000_000_000)
        let error = #expect(throws: ZipError.self) { try ZipDirectory.read(bytes: built.bytes) }
        #expect(error?.message == "zip: central directory claims 1000000000 entries; at most 1000000 are accepted")
    }
}

/// One hostile zip and a fragment of the message it must be refused with.
struct HostileZip: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    var reason: String
    var testDescription: String { label }

    static var all: [HostileZip] {
        var cases: [HostileZip] = []
        func add(_ label: String, _ reason: String, zip: TestZip = sampleZip(), _ edit: (inout TestZip.Built) -> Void) {
            var built = zip.build()
            edit(&built)
            cases.append(HostileZip(label: label, bytes: built.bytes, reason: reason))
        }
        cases.append(HostileZip(label: "empty file", bytes: [], reason: "too short for an end record"))
        cases.append(HostileZip(label: "21 bytes", bytes: [UInt8](repeating: 0, count: 21), reason: "too short"))
        cases.append(
            HostileZip(
                label: "no end record", bytes: (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) },
                reason: "no end of central directory record"))
        add("comment length past the end", "no end of central directory record") { b in
            patch16(&b.bytes, at: b.endOffset + 20, 10)
        }
        add("entry count larger than the directory", "cannot fit in a central directory") { b in
            patch16(&b.bytes, at: b.endOffset + 8, 9)
            patch16(&b.bytes, at: b.endOffset + 10, 9)
        }
        add("entry count one too many", "runs past the end of the central directory") { b in
            patch16(&b.bytes, at: b.endOffset + 8, 4)
            patch16(&b.bytes, at: b.endOffset + 10, 4)
        }
        add("entry count one too few", "bytes follow the last of 2 central directory entries") { b in
            patch16(&b.bytes, at: b.endOffset + 8, 2)
            patch16(&b.bytes, at: b.endOffset + 10, 2)
        }
        add("directory offset past the end", "does not end at offset") { b in
            patch32(&b.bytes, at: b.endOffset + 16, 0x7FFF_0000)
        }
        add("directory size past the end", "does not end at offset") { b in
            patch32(&b.bytes, at: b.endOffset + 12, 0xFFFF_FFF0)
        }
        add("data prepended to the zip", "does not end at offset") { b in
            b.bytes = [UInt8](repeating: 0x20, count: 64) + b.bytes
        }
        add("multi-disk archive", "multi-disk archives are not supported") { b in
            patch16(&b.bytes, at: b.endOffset + 4, 1)
        }
        add("bad central header signature", "bad signature for central directory entry 1") { b in
            b.bytes[b.centralHeaders[1]] = 0x51
        }
        add("name length past the end of the directory", "runs past the end of the central directory") { b in
            patch16(&b.bytes, at: b.centralHeaders[2] + 28, 0xFFFF)
        }
        add("extra length past the end of the directory", "runs past the end of the central directory") { b in
            patch16(&b.bytes, at: b.centralHeaders[2] + 30, 0x1000)
        }
        add("local header offset past the directory", "runs into the central directory") { b in
            patch32(&b.bytes, at: b.centralHeaders[1] + 42, 0xFFFF_FF00)
        }
        add("compressed size past the directory", "runs into the central directory") { b in
            patch16(&b.bytes, at: b.centralHeaders[0] + 10, 8)
            patch32(&b.bytes, at: b.centralHeaders[0] + 20, 0x1000_0000)
        }
        add("two entries share one local header", "overlap") { b in
            patch32(&b.bytes, at: b.centralHeaders[1] + 42, 0)
        }
        add("encrypted entry", "is encrypted") { b in
            patch16(&b.bytes, at: b.centralHeaders[0] + 8, 0x801)
        }
        add("stored entry with different sizes", "has compressed size 21 but uncompressed size 22") { b in
            patch32(&b.bytes, at: b.centralHeaders[0] + 24, 22)
        }
        add("saturated sizes without a ZIP64 extra field", "no ZIP64 extra field") { b in
            patch32(&b.bytes, at: b.centralHeaders[0] + 20, 0xFFFF_FFFF)
        }
        add(
            "non-UTF-8 name", "is not valid UTF-8",
            zip: TestZip(files: [.init(rawName: Array(prefix.utf8) + [0xC3, 0x28] + Array(".go".utf8))])
        ) { _ in }
        add("ZIP64 extra field too short", "ZIP64 extra field of entry", zip: sampleZip(zip64: true)) { b in
            // Claim 16 bytes instead of 24: the offset no longer fits. The 8 bytes freed become an unknown field.
            patch16(&b.bytes, at: b.centralHeaders[0] + 46 + (prefix + "go.mod").utf8.count + 2, 16)
            patch16(&b.bytes, at: b.centralHeaders[0] + 46 + (prefix + "go.mod").utf8.count + 4 + 16, 0x7777)
            patch16(&b.bytes, at: b.centralHeaders[0] + 46 + (prefix + "go.mod").utf8.count + 4 + 18, 4)
        }
        add("ZIP64 extra field missing", "no ZIP64 extra field", zip: sampleZip(zip64: true)) { b in
            patch16(&b.bytes, at: b.centralHeaders[0] + 46 + (prefix + "go.mod").utf8.count, 0x7777)
        }
        add("ZIP64 locator points past the end", "ZIP64 locator points outside the file", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64LocatorOffset! + 8, 0xFFFF_FFFF_FFFF_0000)
        }
        add("ZIP64 locator points at no record", "points to no ZIP64 end record", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64LocatorOffset! + 8, 0)
        }
        add("ZIP64 end record with a huge size field", "does not end at the ZIP64 locator", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64EndOffset! + 4, UInt64.max - 4)
        }
        add("ZIP64 directory offset past the end", "does not end at offset", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64EndOffset! + 48, UInt64.max - 10)
        }
        add("ZIP64 entry count past the directory", "cannot fit in a central directory", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64EndOffset! + 24, 999_999)
            patch64(&b.bytes, at: b.zip64EndOffset! + 32, 999_999)
        }
        add("ZIP64 counts disagree between disks", "multi-disk archives are not supported", zip: sampleZip(zip64: true)) { b in
            patch64(&b.bytes, at: b.zip64EndOffset! + 24, 2)
        }
        return cases
    }
}

/// A deterministic generator for corruption tests (xorshift64).
private struct XorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

/// A temporary file holding `bytes`, unlinked at once so nothing is left behind.
private struct TemporaryFile {
    let fd: Int32

    init(_ bytes: [UInt8]) throws {
        var template = Array("/tmp/athens-zip-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        try #require(written == bytes.count)
        self.fd = fd
    }

    func close() { _ = Glibc.close(fd) }
}

// MARK: - Module zip rules

private func entry(_ name: String, size: UInt64 = 10, method: UInt16 = 8) -> ZipEntry {
    ZipEntry(
        name: name, method: method, crc32: 0, compressedSize: size, uncompressedSize: size, localHeaderOffset: 0,
        isDirectory: name.hasSuffix("/"))
}

private func checkMessage(_ names: [String], module: String = module, version: String = version) -> String? {
    do {
        try ModuleZip.check(module: module, version: version, entries: names.map { entry($0) }, zipSize: 1000)
        return nil
    } catch {
        return error.message
    }
}

/// What ModulePath.checkFilePath says about `name`, to build the expected message without depending on its wording.
private func filePathError(_ name: String) -> String? {
    do {
        try ModulePath.checkFilePath(name)
        return nil
    } catch {
        return error.message
    }
}

@Suite("ModuleZip.check applies CheckZip's rules")
struct ModuleZipCheckTests {
    @Test("a well-formed module zip passes and its go.mod is found")
    func validZip() throws {
        let bytes = sampleZip().build().bytes
        let entries = try ZipDirectory.read(bytes: bytes)
        try ModuleZip.check(module: module, version: version, entries: entries, zipSize: UInt64(bytes.count))
        let goMod = try #require(ModuleZip.goModEntry(module: module, version: version, entries: entries))
        #expect(goMod.name == prefix + "go.mod")
        #expect(goMod.uncompressedSize == 21)
    }

    @Test("a zip without go.mod passes and has no go.mod entry")
    func noGoMod() throws {
        let entries = [entry(prefix + "m.go")]
        try ModuleZip.check(module: module, version: version, entries: entries, zipSize: 100)
        #expect(ModuleZip.goModEntry(module: module, version: version, entries: entries) == nil)
        #expect(ModuleZip.goModEntry(module: module, version: version, entries: [entry(prefix + "sub/go.mod")]) == nil)
    }

    @Test(
        "a non-canonical version is refused with the canonical form",
        arguments: [
            ("v1", "v1.0.0"), ("v1.2", "v1.2.0"), ("v1.0.0+build", "v1.0.0"), ("1.0.0", ""), ("v1.0.0-01", ""),
            ("v01.0.0", ""), ("v1.0.0-", ""), ("v1.0.0-a..b", ""), ("v1.2-pre", ""), ("v1.0.0+", ""),
        ])
    func nonCanonicalVersion(version: String, canonical: String) {
        let message = checkMessage([prefix + "m.go"], version: version)
        #expect(message == "version \"\(version)\" is not canonical (should be \"\(canonical)\")")
    }

    @Test("canonical versions pass the canonical test", arguments: ["v1.0.0", "v1.2.3-pre.1", "v0.0.0-20240101000000-abcdefabcdef"])
    func canonicalVersion(version: String) {
        let names = ["example.com/m@\(version)/m.go"]
        #expect(checkMessage(names, version: version) == nil)
    }

    @Test("+incompatible is kept as canonical")
    func incompatible() {
        let message = checkMessage(["example.com/m@v2.0.0+incompatible/m.go"], version: "v2.0.0+incompatible")
        #expect(message?.contains("not canonical") != true)
    }

    @Test("a module path or version that ModulePath.check refuses is refused with its message")
    func moduleCheckFails() throws {
        var expected = ""
        do {
            try ModulePath.check(path: "example.com/m/v2", version: "v1.0.0")
        } catch {
            expected = error.message
        }
        try #require(!expected.isEmpty)
        #expect(checkMessage(["example.com/m/v2@v1.0.0/m.go"], module: "example.com/m/v2") == expected)
    }

    @Test("a zip file over 500 MiB is refused before its entries are looked at")
    func zipTooLarge() {
        let error = #expect(throws: ZipError.self) {
            try ModuleZip.check(module: module, version: version, entries: [], zipSize: ModuleZip.maxZipFile + 1)
        }
        #expect(error?.message == "module zip file is too large (524288001 bytes; limit is 524288000 bytes)")
        #expect(throws: Never.self) {
            try ModuleZip.check(module: module, version: version, entries: [], zipSize: ModuleZip.maxZipFile)
        }
    }

    @Test(
        "an invalid entry is refused with Go's message",
        arguments: [
            (["other.com/x@v1.0.0/m.go"], "other.com/x@v1.0.0/m.go: path does not have prefix \"example.com/m@v1.0.0/\""),
            (["example.com/m@v1.0.1/m.go"], "example.com/m@v1.0.1/m.go: path does not have prefix \"example.com/m@v1.0.0/\""),
            (["example.com/m/m.go"], "example.com/m/m.go: path does not have prefix \"example.com/m@v1.0.0/\""),
            ([prefix + "a/../b.go"], prefix + "a/../b.go: file path is not clean"),
            ([prefix + "a//b.go"], prefix + "a//b.go: file path is not clean"),
            ([prefix + "./a.go"], prefix + "./a.go: file path is not clean"),
            ([prefix + "a/./b.go"], prefix + "a/./b.go: file path is not clean"),
            ([prefix + "a/../../x.go"], prefix + "a/../../x.go: file path is not clean"),
            ([prefix + "a/b/"] + [prefix + "a/b//"], prefix + "a/b//: file path is not clean"),
            ([prefix + "/"], prefix + "/: file path is not clean"),
            ([prefix + "a.go", prefix + "A.go"], prefix + "A.go: case-insensitive file name collision: \"a.go\" and \"A.go\""),
            ([prefix + "a.go", prefix + "a.go"], prefix + "a.go: multiple entries for file \"a.go\""),
            ([prefix + "a", prefix + "a/b.go"], prefix + "a/b.go: entry \"a\" is both a file and a directory"),
            ([prefix + "a/b.go", prefix + "a"], prefix + "a: entry \"a\" is both a file and a directory"),
            ([prefix + "a/", prefix + "a"], prefix + "a: entry \"a\" is both a file and a directory"),
            ([prefix + "Sub/a.go", prefix + "sub/b.go"], prefix + "sub/b.go: case-insensitive file name collision: \"Sub\" and \"sub\""),
            ([prefix + "k.go", prefix + "\u{212A}.go"], prefix + "\u{212A}.go: case-insensitive file name collision: \"k.go\" and \"\u{212A}.go\""),
            ([prefix + "s.go", prefix + "\u{17F}.go"], prefix + "\u{17F}.go: case-insensitive file name collision: \"s.go\" and \"\u{17F}.go\""),
            ([prefix + "σ.go", prefix + "ς.go"], prefix + "ς.go: case-insensitive file name collision: \"σ.go\" and \"ς.go\""),
            ([prefix + "Σ.go", prefix + "ς.go"], prefix + "ς.go: case-insensitive file name collision: \"Σ.go\" and \"ς.go\""),
            ([prefix + "ǆ.go", prefix + "ǅ.go"], prefix + "ǅ.go: case-insensitive file name collision: \"ǆ.go\" and \"ǅ.go\""),
            ([prefix + "ß.go", prefix + "ẞ.go"], prefix + "ẞ.go: case-insensitive file name collision: \"ß.go\" and \"ẞ.go\""),
            ([prefix + "θ.go", prefix + "ϑ.go"], prefix + "ϑ.go: case-insensitive file name collision: \"θ.go\" and \"ϑ.go\""),
            ([prefix + "GO.MOD"], prefix + "GO.MOD: go.mod files must have lowercase names"),
            ([prefix + "Go.mod"], prefix + "Go.mod: go.mod files must have lowercase names"),
            ([prefix + "sub/go.mod"], prefix + "sub/go.mod: go.mod file not in module root directory"),
            ([prefix + "sub/GO.MOD"], prefix + "sub/GO.MOD: go.mod file not in module root directory"),
        ])
    func invalidEntry(names: [String], message: String) {
        #expect(checkMessage(names) == message)
    }

    @Test(
        "names that CheckFilePath refuses are refused with its message",
        arguments: ["../x.go", "..", "/abs.go", "a\u{0}b.go", "a\\b.go", "a:b.go", "COM1.go", "a.", "x/.../y", "tab\t.go"])
    func badFilePath(name: String) throws {
        let reason = try #require(filePathError(name), "checkFilePath should refuse \(name)")
        #expect(checkMessage([prefix + name]) == "\(prefix + name): \(reason)")
    }

    @Test(
        "names Go keeps apart are not collisions",
        arguments: [
            ["\u{AC00}.go", "\u{1100}\u{1161}.go"],  // canonically equivalent (Hangul), but different bytes
            ["İ.go", "i.go"],  // İ folds only to itself in Go's caseOrbit
            ["ı.go", "i.go"],
            ["ß.go", "ss.go"],  // full case folding would merge these; simple folding does not
            ["a.go", "a.go.go", "b/a.go"],
        ])
    func distinctNames(names: [String]) {
        #expect(checkMessage(names.map { prefix + $0 }) == nil)
    }

    @Test("directory entries are allowed, repeated directories too, and the bare prefix entry is skipped")
    func directoryEntries() {
        #expect(checkMessage([prefix, prefix + "sub/", prefix + "sub/", prefix + "sub/a.go", prefix + "sub/x/"]) == nil)
    }

    @Test("the total uncompressed size is limited to 500 MiB, and that error wins over invalid files")
    func totalTooLarge() {
        let entries = [entry(prefix + "a.bin", size: 300 << 20), entry(prefix + "GO.MOD"), entry(prefix + "b.bin", size: 300 << 20)]
        let error = #expect(throws: ZipError.self) {
            try ModuleZip.check(module: module, version: version, entries: entries, zipSize: 1000)
        }
        #expect(error?.message == "total uncompressed size of module contents too large (max size is 524288000 bytes)")
        #expect(throws: Never.self) {
            try ModuleZip.check(
                module: module, version: version,
                entries: [entry(prefix + "a.bin", size: 250 << 20), entry(prefix + "b.bin", size: 250 << 20)], zipSize: 1000)
        }
        #expect(throws: ZipError.self) {
            try ModuleZip.check(module: module, version: version, entries: [entry(prefix + "a.bin", size: .max)], zipSize: 1000)
        }
    }

    @Test("go.mod and LICENSE at the root are limited to 16 MiB; elsewhere they are ordinary files")
    func goModAndLicenseLimits() {
        func message(_ entries: [ZipEntry]) -> String? {
            do {
                try ModuleZip.check(module: module, version: version, entries: entries, zipSize: 1000)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message([entry(prefix + "go.mod", size: ModuleZip.maxGoMod + 1)])
            == prefix + "go.mod: go.mod file too large (max size is 16777216 bytes)")
        #expect(message([entry(prefix + "LICENSE", size: ModuleZip.maxLICENSE + 1)])
            == prefix + "LICENSE: LICENSE file too large (max size is 16777216 bytes)")
        #expect(message([entry(prefix + "go.mod", size: ModuleZip.maxGoMod), entry(prefix + "LICENSE", size: ModuleZip.maxLICENSE)]) == nil)
        #expect(message([entry(prefix + "sub/LICENSE", size: ModuleZip.maxLICENSE + 1)]) == nil)
    }

    @Test("a file compressed with a method the go command cannot extract is refused")
    func unsupportedMethod() throws {
        let error = #expect(throws: ZipError.self) {
            try ModuleZip.check(module: module, version: version, entries: [entry(prefix + "a.go", method: 12)], zipSize: 1000)
        }
        #expect(error?.message == prefix + "a.go: unsupported compression method 12")
        try ModuleZip.check(module: module, version: version, entries: [entry(prefix + "a.go", method: 0)], zipSize: 1000)
    }

    @Test("several invalid files are listed one per line, and a long list is cut after ten")
    func manyInvalidFiles() {
        #expect(checkMessage([prefix + "GO.MOD", prefix + "ok.go", prefix + "a//b"])
            == "\(prefix)GO.MOD: go.mod files must have lowercase names\n\(prefix)a//b: file path is not clean")
        let names = (0..<25).map { "x/\($0).go" }
        let message = checkMessage(names) ?? ""
        let lines = message.split(separator: "\n")
        #expect(lines.count == 11)
        #expect(lines.first == "x/0.go: path does not have prefix \"example.com/m@v1.0.0/\"")
        #expect(lines.last == "(and 15 more invalid files)")
    }

    @Test("strings in messages are quoted as Go's %q would")
    func quoting() {
        #expect(checkMessage([prefix + "m.go"], version: "v1.0\u{0}\n\"x\"\\\u{7F}\u{85}\u{200B}\u{1F600}é")
            == "version \"v1.0\\x00\\n\\\"x\\\"\\\\\\x7f\\u0085\\u200b\u{1F600}é\" is not canonical (should be \"\")")
    }
}

@Suite("ArtifactValidator.checkZip reads local headers and data, not only the directory")
struct ZipContentsCheckTests {
    func check(_ bytes: [UInt8]) throws {
        let file = try TemporaryFile(bytes)
        defer { file.close() }
        try ArtifactValidator.checkZip(fd: file.fd, size: UInt64(bytes.count), module: module, version: version)
    }

    @Test("zips written by Go (data descriptors), Python (deflate) and ours (stored, ZIP64) pass")
    func realWriters() throws {
        try check(goZip)
        try check(pythonZip)
        try check(sampleZip().build().bytes)
        try check(sampleZip(zip64: true).build().bytes)
    }

    /// sampleZip with one byte XORed with `mask` at `offset` (from the start of the first local header).
    func patched(_ offset: Int, _ mask: UInt8) -> [UInt8] {
        var bytes = sampleZip().build().bytes
        bytes[offset] ^= mask
        return bytes
    }

    @Test("a local header that disagrees with the directory, or data that does not match its CRC-32, is refused", arguments: [
        // Local header 0: method at 8, CRC-32 at 14, uncompressed size at 22, the 27-byte name at 30, data at 57.
        (8, 8, "local header says method 8, directory says 0"),
        (14, 0x01, "disagrees with the central directory"),
        (22, 0x40, "disagrees with the central directory"),
        (30 + 26, UInt8(ascii: "d") ^ UInt8(ascii: "e"), "the local header names it \"example.com/m@v1.0.0/go.moe\""),
        (0, 0xFF, "has no local header at offset 0"),
        (57 + 3, 0x20, "zip: checksum error in entry \"example.com/m@v1.0.0/go.mod\""),
        (28, 0x40, "the data of entry \"example.com/m@v1.0.0/go.mod\" runs into the next entry or the central directory"),
    ] as [(Int, UInt8, String)])
    func lies(offset: Int, value: UInt8, message: String) throws {
        let error = #expect(throws: ZipError.self) { try check(patched(offset, value)) }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test("an entry that inflates to less than its declared size is refused")
    func overstated() throws {
        // pythonZip's go.mod: 21 bytes unpacked. Declare 22 in its local header (offset 22) and its central header.
        var bytes = pythonZip
        let central = try #require((0..<bytes.count - 4).first { bytes[$0..<$0 + 4].elementsEqual([0x50, 0x4B, 0x01, 0x02]) })
        #expect(bytes[22] == 21 && bytes[central + 24] == 21)
        bytes[22] = 22
        bytes[central + 24] = 22
        let error = #expect(throws: ZipError.self) { try check(bytes) }
        #expect(error?.message == #"zip: entry "example.com/m@v1.0.0/go.mod" inflates to 21 bytes, not the 22 its directory declares"#)
    }

    @Test("a data descriptor whose CRC-32 differs from the directory's is refused")
    func descriptorCRC() throws {
        // goZip's first entry: local header at 0, 27-byte name, 27 bytes of data at 57, then "PK\x07\x08" and the CRC-32 at 88.
        var bytes = goZip
        #expect(Array(bytes[84..<88]) == [0x50, 0x4B, 0x07, 0x08])
        bytes[88] ^= 0x01
        let error = #expect(throws: ZipError.self) { try check(bytes) }
        #expect(error?.message == #"zip: checksum error in the data descriptor of entry "example.com/m@v1.0.0/go.mod""#)
    }
}
