// The spool files of fetches are reused: no inode is created or released per fetch, an idle file holds no
// disk blocks, the pool keeps at most its capacity, and everything is closed when the pool goes.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

@Suite("spool files reused across fetches")
struct SpoolPoolTests {
    /// Descriptors of this process open on (unlinked) files of `directory`. readdir + readlink, tolerating
    /// descriptors that other tests close meanwhile (FileManager's listing throws then).
    static func spoolDescriptors(_ directory: String) -> Int {
        // readlink gives the canonical path (makeTemporaryDirectory's has a double slash).
        guard let real = realpath(directory, nil) else { return -1 }
        let prefix = String(cString: real) + "/athens-spool-"
        free(real)
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            var target = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            guard n > 0 else { continue }
            if String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self).hasPrefix(prefix) { count += 1 }
        }
        return count
    }

    @Test("a returned spool comes back empty, at offset 0, unlinked, with its blocks freed")
    func reuse() throws {
        let directory = TestSupport.makeTemporaryDirectory("spool-reuse")
        defer { TestSupport.removeDirectory(directory) }
        let pool = SpoolPool(directory: directory, capacity: 4)
        var first: Int32 = -1
        do {
            let spool = try pool.take()
            first = spool.fd
            let bytes = [UInt8](repeating: 7, count: 300_000)
            #expect(bytes.withUnsafeBytes { spool.append($0) })
        }
        #expect(pool.idleCount == 1)
        let again = try pool.take()
        #expect(again.fd == first, "the idle file was not reused")
        var st = stat()
        #expect(fstat(again.fd, &st) == 0)
        #expect(st.st_size == 0 && st.st_blocks == 0, "size \(st.st_size), blocks \(st.st_blocks)")
        #expect(st.st_nlink == 0, "a spool file must stay unlinked")
        #expect(lseek(again.fd, 0, SEEK_CUR) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [])
        #expect(pool.idleCount == 0)
    }

    @Test("buffered appends reach the file whole and in order, whatever the piece sizes")
    func bufferedAppends() throws {
        let directory = TestSupport.makeTemporaryDirectory("spool-buffered")
        defer { TestSupport.removeDirectory(directory) }
        let size = Spool.bufferSize
        // Pieces as curl hands them (16 KiB), odd ones that straddle the buffer's end, one larger than the buffer
        // while bytes are pending, one larger than the buffer with none pending, and single bytes.
        let pieces = [16384, 16384, 1, size - 5, 10, 3 * size + 7, 1, 1] + Array(repeating: 16384, count: 9) + [2 * size]
        var expected: [UInt8] = []
        let spool = try Spool(directory: directory)
        for (index, count) in pieces.enumerated() {
            let piece = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            expected += piece
            #expect(piece.withUnsafeBytes { spool.appendBuffered($0) })
        }
        #expect(spool.flush() && spool.flush(), "a second flush has nothing to write and succeeds")
        var st = stat()
        #expect(fstat(spool.fd, &st) == 0 && Int(st.st_size) == expected.count)
        var read = [UInt8](repeating: 0, count: expected.count)
        #expect(pread(spool.fd, &read, read.count, 0) == expected.count)
        #expect(read == expected)
        // An unbuffered append after buffered ones writes what is pending first.
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { spool.appendBuffered($0) })
        #expect([UInt8]([4]).withUnsafeBytes { spool.append($0) })
        var tail = [UInt8](repeating: 0, count: 4)
        #expect(pread(spool.fd, &tail, 4, off_t(expected.count)) == 4 && tail == [1, 2, 3, 4])
    }

    @Test("the pool keeps at most its capacity of idle files and closes them all when it goes")
    func bounded() throws {
        let directory = TestSupport.makeTemporaryDirectory("spool-bound")
        defer { TestSupport.removeDirectory(directory) }
        do {
            let pool = SpoolPool(directory: directory, capacity: 3)
            do {
                let spools = try (0..<8).map { _ in try pool.take() }
                #expect(Self.spoolDescriptors(directory) == 8)
                _ = spools
            }
            #expect(pool.idleCount == 3)
            #expect(Self.spoolDescriptors(directory) == 3, "the spools beyond the capacity were not closed")
            for _ in 0..<100 { _ = try pool.take() }
            #expect(Self.spoolDescriptors(directory) == 3)
        }
        #expect(Self.spoolDescriptors(directory) == 0, "the pool's idle files outlived it")
    }

    @Test("fetches reuse one spool file, and a smaller zip after a larger one is stored exactly")
    func stasherReusesSpools() throws {
        let directory = TestSupport.makeTemporaryDirectory("spool-stash")
        defer { TestSupport.removeDirectory(directory) }
        let storage = FakeStorage(), fetcher = FakeFetcher()
        let modules = (0..<50).map { "example.com/spool/m\($0)" }
        for module in modules { fetcher.add(module, "v1.0.0") }
        let bigMod = Array("module example.com/spool/big\n".utf8)
        let big = FakeVersion(info: Array(#"{"Version":"v1.0.0"}"#.utf8), mod: bigMod,
                              zip: FakeZip.stored(["example.com/spool/big@v1.0.0/go.mod": bigMod,
                                                   "example.com/spool/big@v1.0.0/data.bin": [UInt8](repeating: 1, count: 200_000)]))
        fetcher.add("example.com/spool/big", "v1.0.0", big)
        let stasher = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: directory)
        try stasher.stash(module: "example.com/spool/big", version: "v1.0.0")
        for module in modules {
            try stasher.stash(module: module, version: "v1.0.0")
            #expect(storage.stored(module, "v1.0.0") == FakeVersion.honest(module: module, version: "v1.0.0").ingested)
        }
        withExtendedLifetime(stasher) {
            #expect(Self.spoolDescriptors(directory) == 1, "sequential fetches should share one spool file")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [])
    }
}
