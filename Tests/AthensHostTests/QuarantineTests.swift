import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("Quarantine: marks kept in storage, read by every instance", .blockingBodies)
struct QuarantineTests {
    @Test("a mark saved by one instance is read by another; a release is too; marks are never served as versions")
    func sharedThroughStorage() throws {
        let storage = FakeStorage()
        let a = Quarantine(storage: storage, refreshSeconds: 3600, pool: nil), b = Quarantine(storage: storage, refreshSeconds: 3600, pool: nil)
        try b.refresh()
        let mark = try a.add(module: "example.com/m", version: "v1.0.0", reason: "tampered")
        #expect(a.mark(module: "example.com/m", version: "v1.0.0") == mark)
        #expect(b.mark(module: "example.com/m", version: "v1.0.0") == nil, "not re-read yet")
        try b.refresh()
        #expect(b.mark(module: "example.com/m", version: "v1.0.0") == mark && b.all == [mark])
        #expect(b.mark(module: "example.com/m", version: "v1.1.0") == nil)
        #expect(storage.keys == ["athens.quarantine@" + Quarantine.marker(module: "example.com/m", version: "v1.0.0")], "one marker, nothing else")
        #expect(try b.release(module: "example.com/m", version: "v1.0.0"))
        try a.refresh()
        #expect(a.mark(module: "example.com/m", version: "v1.0.0") == nil && storage.keys.isEmpty)
        #expect(try !a.release(module: "example.com/m", version: "v1.0.0"), "not quarantined")
        #expect(Quarantine.isReserved("athens.quarantine") && !Quarantine.isReserved("athens.quarantine/x"))
    }

    @Test("requests read memory: one storage list per refresh period, none while one runs; a failing storage keeps the marks")
    func boundedStorageCalls() throws {
        let storage = FakeStorage()
        let pool = WorkerPool(name: "test", threads: 1, capacity: 4)
        defer { pool.retire() }
        let q = Quarantine(storage: storage, refreshSeconds: 3600, pool: pool)
        _ = try q.add(module: "example.com/m", version: "v1.0.0", reason: "r")
        for _ in 0..<1000 { _ = q.mark(module: "example.com/m", version: "v1.0.0") }
        #expect(waitUntil { storage.calls("list") == 1 })
        for _ in 0..<1000 { #expect(q.mark(module: "example.com/m", version: "v1.0.0") != nil) }
        #expect(storage.calls("list") == 1)
        storage.fail("list", with: .unavailable)
        #expect(throws: PluginError.self) { try q.refresh() }
        #expect(q.mark(module: "example.com/m", version: "v1.0.0") != nil, "kept while storage fails")
    }
}
