import Foundation
import JSON
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("Deletions: a delete on one instance is forgotten by every instance's memory cache", .blockingBodies)
struct DeletionsTests {
    static let token = "deletions-admin-token-0123456789"
    static let module = "example.com/a", version = "v1.0.0"
    static let zipKey = DownloadRequest.cacheKey(module: module, version: version, artifact: .zip)

    static func delete(_ h: DownloadHarness, _ json: String) throws -> Response {
        try #require(h.start("/admin/delete", method: .post, headers: [(name: "authorization", value: "Bearer \(token)")],
                             body: Array(json.utf8)).wait()).response
    }

    @Test("B caches a zip, A deletes it: B's next requests after the TTL miss memory (404, never the deleted bytes); a re-fetch stays cached")
    func otherInstanceForgets() throws {
        let storage = FakeStorage()
        let files = FakeVersion.honest(module: Self.module, version: Self.version)
        storage.put(Self.module, Self.version, files)
        // TTL 0: the tombstones are re-read at most every second (the floor).
        let a = DownloadHarness(listTTL: 0, adminToken: Self.token, storage: storage), b = DownloadHarness(listTTL: 0, storage: storage)
        let target = "/\(Self.module)/@v/\(Self.version).zip"
        let first = try #require(b.get(target)).response
        #expect(first.status == 200 && b.download.cache.get(Self.zipKey) != nil, "B holds the zip in memory")
        #expect(b.settle())
        let deleted = try Self.delete(a, #"{"module":"\#(Self.module)","version":"\#(Self.version)","dryRun":false}"#)
        #expect(deleted.status == 200, "\(deleted.bodyText)")
        #expect(storage.stored(Self.module, Self.version) == nil)
        #expect(storage.keys.count == 1 && storage.keys[0].hasPrefix(Deletions.module + "@v0.0.0-d"), "one tombstone, nothing else")
        // Polled: each request schedules the re-read once its second is up; memory answers until it has run.
        #expect(waitUntil(timeout: 20) { (try? #require(b.get(target)).response.status) == 404 })
        #expect(b.download.cache.get(Self.zipKey) == nil)
        #expect(try #require(b.get(target)).response.status == 404, "stays forgotten")
        // Fetched again after its delete: the tombstone, seen already, does not drop it again.
        b.upstream.add(Self.module, Self.version, files)
        let again = try #require(b.get(target)).response
        #expect(again.status == 200 && again.bodyBytes == files.zip)
        #expect(b.download.cache.get(Self.zipKey) != nil)
        for _ in 0..<3 { try b.download.deletions.refresh() }
        #expect(b.download.cache.get(Self.zipKey) != nil, "a re-fetched version stays cached")
        #expect(b.settle() && a.settle())
    }

    @Test("the reserved module is never served: 404 for its files and list, hidden from /catalog, skipped by retention's catalog")
    func reservedModuleHidden() throws {
        let h = DownloadHarness(adminToken: Self.token)
        h.storage.put(Self.module, Self.version, FakeVersion.honest(module: Self.module, version: Self.version))
        #expect(try Self.delete(h, #"{"module":"\#(Self.module)","versions":"all","dryRun":false}"#).status == 200)
        let marker = try #require(h.storage.keys.first).split(separator: "@").last.map(String.init) ?? ""
        #expect(marker.hasPrefix("v0.0.0-d"))
        for path in ["/\(Deletions.module)/@v/\(marker).info", "/\(Deletions.module)/@v/\(marker).zip", "/\(Deletions.module)/@v/list"] {
            #expect(try #require(h.get(path)).response.status == 404, "\(path)")
        }
        let catalog = try #require(h.get("/catalog")).response
        #expect(catalog.status == 200 && !catalog.bodyText.contains(Deletions.module), "\(catalog.bodyText)")
        #expect(ReservedModule.contains(Deletions.module) && ReservedModule.contains(Quarantine.module) && !ReservedModule.contains("athens.deleted/x"))
    }

    @Test("large deletes are batched; tombstones older than the lifetime are removed by whoever lists them and not read")
    func batchedAndPruned() throws {
        let storage = FakeStorage()
        let cache = ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 1 << 16), lists = ListCache(ttl: 60)
        let ids = (0..<(Deletions.batch + 10)).map { VersionID("example.com/m\($0)", "v1.0.0") }
        for id in ids { cache.put(id.module + "@" + id.version + ".mod", Array("module \(id.module)\n".utf8)) }
        let writer = Deletions(storage: storage, refreshSeconds: 3600, pool: nil, cache: ArtifactCache(maxBytes: 0, maxFileBytes: 0), lists: lists)
        try writer.record(ids)
        #expect(storage.keys.count == 2, "two tombstones for \(ids.count) versions")
        // One written two days ago by an instance whose clock says so.
        let old = Deletions(storage: storage, refreshSeconds: 3600, pool: nil, cache: ArtifactCache(maxBytes: 0, maxFileBytes: 0), lists: lists,
                            wallClock: { Date().timeIntervalSince1970 - 2 * 86400 })
        let before = Set(storage.keys)
        try old.record([VersionID("example.com/old", "v1.0.0")])
        let oldKey = try #require(Set(storage.keys).subtracting(before).first)
        let reader = Deletions(storage: storage, refreshSeconds: 60, pool: nil, cache: cache, lists: lists)
        let opens = storage.calls("open")
        try reader.refresh()
        #expect(Set(storage.keys) == before && !storage.keys.contains(oldKey), "the old tombstone is gone, the others stay")
        #expect(storage.calls("open") - opens == 2, "the old tombstone is removed unread")
        #expect(cache.heldBytes == 0, "every version of both batches forgotten")
        #expect(reader.known.flatMap(\.versions).sorted() == ids.sorted())
        #expect(reader.lifetime == 24 * 3600)
    }

    @Test("requests read memory: one storage list per period, none while one runs; a tombstone is opened once")
    func boundedStorageCalls() throws {
        let storage = FakeStorage()
        let pool = WorkerPool(name: "test", threads: 1, capacity: 4)
        defer { pool.retire() }
        try Deletions(storage: storage, refreshSeconds: 3600, pool: nil, cache: ArtifactCache(maxBytes: 0, maxFileBytes: 0),
                      lists: ListCache(ttl: 60)).record([VersionID(Self.module, Self.version)])
        let d = Deletions(storage: storage, refreshSeconds: 3600, pool: pool, cache: ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 1 << 16),
                          lists: ListCache(ttl: 60))
        for _ in 0..<1000 { d.poke() }
        #expect(waitUntil { storage.calls("list") == 1 && d.known.count == 1 })
        for _ in 0..<1000 { d.poke() }
        #expect(storage.calls("list") == 1 && storage.calls("open") == 1)
        try d.refresh()
        #expect(storage.calls("list") == 2 && storage.calls("open") == 1, "a tombstone never changes: read once")
        storage.fail("list", with: .unavailable)
        #expect(throws: PluginError.self) { try d.refresh() }
        #expect(d.known.count == 1, "kept while storage fails")
    }

    @Test("retention evicts through the same path (a tombstone per run) and never evicts or counts the tombstones")
    func retentionSkipsTombstones() throws {
        let h = RetentionTests.harness(RetentionSettings(maxTotalBytes: 0), store: FakeAccessStore())
        h.storage.put(Self.module, Self.version, FakeVersion.honest(module: Self.module, version: Self.version))
        #expect(try RetentionTests.post(h, #"{"dryRun": false}"#).status == 200)
        let tombstones = h.storage.keys
        #expect(h.storage.moduleKeys.isEmpty && tombstones.count == 1 && tombstones[0].hasPrefix(Deletions.module + "@"))
        let again = try RetentionTests.post(h, #"{"dryRun": false}"#)
        #expect(again.status == 200 && again.body["stored"] == .number(JSONNumber(0)), "tombstones are not counted")
        #expect(h.storage.keys == tombstones, "nor evicted, even with a budget of 0 bytes")
    }
}
