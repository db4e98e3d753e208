// The last-access recorder (the hit path's mark, batched flushes) and the file journal behind it.
import Foundation
import Testing
@testable import RequestPath

@Suite("access recorder and journal", .blockingBodies)
struct AccessRecorderTests {
    @Test("N hits between flushes are one append: 10000 marks of 50 versions write 50 records once")
    func batching() throws {
        let store = FakeAccessStore()
        let recorder = AccessRecorder(store: store, wallClock: { 1_234 })
        let modules = (0..<50).map { "example.com/m\($0)" }
        for i in 0..<10_000 { recorder.note(module: modules[i % 50], version: "v1.0.0") }
        #expect(store.appends == 0, "nothing is written on the hit path")
        #expect(try recorder.flush() == 50)
        #expect(store.appends == 1 && store.batches.first?.count == 50)
        #expect(store.time("example.com/m7", "v1.0.0") == 1_234)
        #expect(try recorder.flush() == 0 && store.appends == 1, "a flush without marks writes nothing")
        #expect(recorder.dropped == 0)
    }

    @Test("the table's hash is FNV-1a of module, 0, version, for small, large and non-contiguous strings")
    func hash() {
        #expect(AccessRecorder.hash("example.com/a", "v1.0.0") == 7_299_962_613_981_992_095)
        let long = "exämple.com/ünïcode-long-enough-not-small"
        #expect(AccessRecorder.hash(long, "v1.0.0") == 7_065_601_265_037_693_312)
        // A Substring-made String and a lazily built one hash the same as the literal.
        #expect(AccessRecorder.hash(String("xx" + long).dropFirst(2).description, "v1.0.0") == 7_065_601_265_037_693_312)
    }

    @Test("served files mark their version through the download protocol; misses and 404s mark nothing")
    func hitsMark() throws {
        let store = FakeAccessStore()
        let recorder = AccessRecorder(store: store, wallClock: { 99 })
        let h = DownloadHarness(accesses: recorder)
        h.storage.put("example.com/a", "v1.0.0", .honest(module: "example.com/a", version: "v1.0.0"))
        for _ in 0..<200 {
            for artifact in ["info", "mod", "zip"] { #expect(h.get("/example.com/a/@v/v1.0.0.\(artifact)")?.response.status == 200) }
        }
        #expect(h.get("/example.com/a/@v/v9.9.9.mod")?.response.status == 404)
        #expect(h.get("/example.com/junk/@v/master.info")?.response.status == 404)
        #expect(h.get("/example.com/a/@v/list")?.response.status == 200)
        try recorder.flush()
        #expect(store.batches == [[VersionID("example.com/a", "v1.0.0")]], "600 hits (memory and storage) are one record")
    }

    @Test("a full table wakes the flusher and drops what finds no slot, counted; the flush after takes the rest")
    func overflow() throws {
        let store = FakeAccessStore()
        let recorder = AccessRecorder(store: store, capacity: 16, wallClock: { 1 })
        for i in 0..<40 { recorder.note(module: "example.com/m\(i)", version: "v1.0.0") }
        #expect(recorder.dropped == 24, "16 slots, 40 versions")
        #expect(try recorder.flush() == 16)
        recorder.note(module: "example.com/m39", version: "v1.0.0")
        #expect(try recorder.flush() == 1)
    }

    @Test("stop() returns only after a flush already under way has written: shutdown loses no marks")
    func stopWaitsForFlushUnderWay() {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var appendsAtStop: Int?
        }
        let store = FakeAccessStore(), seen = Seen()
        let recorder = AccessRecorder(store: store, wallClock: { 5 })
        recorder.note(module: "example.com/a", version: "v1.0.0")
        store.appendGate.close()
        let flusher = Thread { recorder.flushLogging() }  // the flusher thread, woken just before shutdown
        flusher.start()
        #expect(waitUntil(timeout: 10) { store.appendGate.held == 1 }, "the flush holds the marks, in its write")
        let stopper = Thread {
            recorder.stop()
            seen.lock.withLock { seen.appendsAtStop = store.appends }
        }
        stopper.start()
        // Stop must wait for the write under way; give it a second to (wrongly) return first.
        _ = waitUntil(timeout: 1) { seen.lock.withLock { seen.appendsAtStop != nil } }
        store.appendGate.openGate()
        #expect(waitUntil(timeout: 10) { seen.lock.withLock { seen.appendsAtStop != nil } })
        #expect(seen.lock.withLock { seen.appendsAtStop } == 1, "when stop returned, the marks were written")
        #expect(store.time("example.com/a", "v1.0.0") == 5)
    }

    @Test("the journal: appends survive a new object, journals in one folder merge (newest wins), torn lines are skipped")
    func journal() throws {
        let directory = TestSupport.makeTemporaryDirectory("journal")
        defer { TestSupport.removeDirectory(directory) }
        let one = try AccessJournal.journal(directory: directory + "/state", instance: "one")
        let two = try AccessJournal.journal(directory: directory + "/state", instance: "two")
        let a = VersionID("example.com/a", "v1.0.0"), b = VersionID("example.com/b", "v0.1.0")
        try one.append([a, b], at: 100)
        try two.append([a], at: 300)
        try one.append([a], at: 200)
        #expect(try one.lastAccesses() == [a: 300, b: 100], "instance two's later download counts on instance one")
        // A crash cut the last line short; the next append starts on a line of its own.
        let path = directory + "/state/one.access"
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("400 example.com/b".utf8))
        handle.closeFile()
        try one.append([b], at: 500)
        #expect(try one.lastAccesses() == [a: 300, b: 500], "\((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")")
        // Compaction keeps one line per stored version of this instance's own file.
        try one.compact(keeping: [b])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "500 example.com/b v0.1.0\n")
        #expect(try one.lastAccesses() == [a: 300, b: 500], "the other instance's file is not touched")
        #expect(throws: AccessStoreError.self) { try AccessJournal.journal(directory: "/proc/no-such/state", instance: "x") }
    }
}
