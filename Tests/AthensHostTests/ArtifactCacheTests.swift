// The file cache keeps small files of an fd-backed storage as the storage's open files (sendfile'd, no memory):
// bounded in open files as in bytes, released when evicted or forgotten, and served byte for byte by athens.
import Foundation
import Testing
import PluginABI
@testable import PluginHost
@testable import RequestPath

@Suite("file cache: storage files kept open instead of in memory", .blockingBodies)
struct ArtifactCacheTests {
    /// Counts the releases of the blobs it made (the host must release each exactly once).
    final class Releases: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func add() { lock.withLock { count += 1 } }
    }

    /// An fd blob of `size` bytes of a fresh unlinked file; its release closes the file and counts.
    static func fileBlob(_ size: Int, _ releases: Releases) throws -> Blob {
        var template = Array((NSTemporaryDirectory() + "/cache-blob-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0, "mkstemp: \(String(cString: strerror(errno)))")
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        let bytes = [UInt8](repeating: 0x5A, count: size)
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == size)
        final class Box { let fd: Int32; let releases: Releases; init(_ fd: Int32, _ r: Releases) { self.fd = fd; releases = r } }
        var raw = ath_blob()
        raw.fd = fd
        raw.size = UInt64(size)
        raw.private_data = Unmanaged.passRetained(Box(fd, releases)).toOpaque()
        raw.release = { (context: UnsafeMutableRawPointer?) in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            close(box.fd)
            box.releases.add()
        }
        return try Blob(taking: raw, plugin: "test")
    }

    @Test("open files are bounded by maxFiles, take no bytes of the budget, and evicted ones are released")
    func boundedAndReleased() throws {
        let releases = Releases()
        let cache = ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 1 << 16, maxFiles: 3)
        for i in 0..<5 { cache.put("m\(i)@v1.0.0.zip", file: try Self.fileBlob(8192, releases)) }
        #expect(cache.heldFiles == 3)
        #expect(cache.heldBytes == 0, "an open file holds no memory of the cache's budget")
        #expect(releases.value == 2, "the two oldest were evicted and released")
        #expect(cache.get("m0@v1.0.0.zip") == nil && cache.get("m1@v1.0.0.zip") == nil)
        guard case let .file(blob)? = cache.get("m4@v1.0.0.zip") else { Issue.record("m4 not kept as a file"); return }
        #expect(blob.size == 8192)
        cache.put("m4@v1.0.0.info", [1, 2, 3])
        #expect(cache.heldBytes == 3 && cache.heldFiles == 3)
        cache.forget(module: "m4", version: "v1.0.0")
        #expect(cache.heldBytes == 0 && cache.heldFiles == 2)
        #expect(releases.value == 2, "a response still holding the blob keeps it open")
        _ = blob
        cache.forgetAll()
        #expect(cache.heldFiles == 0)
    }

    @Test("only fd blobs within maxFileBytes are kept, and nothing when the cache is off")
    func onlyWhatFits() throws {
        let releases = Releases()
        let cache = ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 4096 * 2)
        cache.put("big@v1.0.0.zip", file: try Self.fileBlob(4096 * 3, releases))
        cache.put("bytes@v1.0.0.zip", file: Blob(copying: [UInt8](repeating: 1, count: 5000)))
        #expect(cache.heldFiles == 0 && cache.get("big@v1.0.0.zip") == nil && cache.get("bytes@v1.0.0.zip") == nil)
        let off = ArtifactCache(maxBytes: 0, maxFileBytes: 0)
        off.put("m@v1.0.0.zip", file: try Self.fileBlob(5000, releases))
        #expect(off.heldFiles == 0)
        #expect(releases.value == 2, "blobs the cache did not keep are released with their last response")
    }

    @Test("through athens over FileStorage: a 10 KiB zip is served again from the kept file, identical, and a delete closes it")
    func throughAthens() throws {
        let work = TestSupport.makeTemporaryDirectory("cache-files")
        defer { TestSupport.removeDirectory(work) }
        let tree = work + "/tree"
        let made = try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/bench/make_tree.py", tree,
                                                         "--modules", "2", "--sizes", "10k"])
        try #require(made.status == 0, "\(made.stderr)")
        let upstream = try FakeUpstream(root: tree, logPath: work + "/upstream.log")
        defer { upstream.stop() }
        let token = "cache-files-token-0123456789"
        let server = try AthensServer(manifest: """
            {"spoolDirectory": "\(work)", "admin": {"token": "\(token)"},
             "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store"}},
             "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)"}}]}
            """, directory: work)
        defer { server.stop() }
        let path = "/example.com/bench/m0001/@v/v1.0.0.zip"
        let want = try #require(FileManager.default.contents(atPath: tree + path))
        #expect(want.count == 10240)
        let first = try server.get(path), second = try server.get(path), third = try server.get(path)
        #expect(first.status == 200 && second.status == 200 && third.status == 200)
        #expect(Data(first.body) == want && Data(second.body) == want && Data(third.body) == want)
        let metrics = try server.metrics()
        #expect(metric(metrics, "athens_cache_files") == 1)
        #expect((metric(metrics, "athens_cache_bytes") ?? -1) < 1024, "the zip must not be held in memory: \(metric(metrics, "athens_cache_bytes") ?? -1)")
        #expect(upstream.requests.filter { $0.hasSuffix(".zip") }.count == 1)

        let client = try RawClient(port: server.port)
        let body = #"{"module":"example.com/bench/m0001","version":"v1.0.0","dryRun":false}"#
        client.send("POST /admin/delete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        #expect(try #require(client.readResponse()).status == 200)
        #expect(metric(try server.metrics(), "athens_cache_files") == 0, "a deleted version's kept file is closed")
        let again = try server.get(path)
        #expect(again.status == 200 && Data(again.body) == want)
        #expect(upstream.requests.filter { $0.hasSuffix(".zip") }.count == 2, "served after the delete only by a new fetch")
    }
}
