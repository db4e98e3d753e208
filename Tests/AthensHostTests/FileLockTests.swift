import Foundation
import PluginABI
import Testing

/// FileLock (Plugins/FileLock): mutual exclusion between handles, instances and processes on flock'ed files,
/// waits that end on time without spinning, a killed holder's lock freed, and keys that never name a path.
@Suite("FileLock plugin", .serialized)
struct FileLockTests {
    static var library: String { TestSupport.plugin("FileLock") }

    /// A fresh lock directory inside a fresh parent (so a test can see that nothing was written beside it).
    static func directory() -> (parent: String, locks: String) {
        let parent = TestSupport.makeTemporaryDirectory("filelock")
        return (parent, parent + "/locks")
    }

    static func config(_ directory: String, extra: String = "") -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: ["directory": directory]), as: UTF8.self).dropLast() + extra + "}"
    }

    /// Open descriptors of this process that point into `directory`: what the plugin holds there.
    static func descriptors(into directory: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "").hasPrefix(directory + "/") }.count
    }

    @Test("the descriptor is a 1.1 lock plugin; bad configs are refused naming the key")
    func loadAndConfig() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        _ = try LockPlugin(path: Self.library, config: Self.config(locks))
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: locks, isDirectory: &isDirectory) && isDirectory.boolValue, "directory created")
        let file = parent + "/a-file"
        FileManager.default.createFile(atPath: file, contents: Data())
        for (config, message) in [("{}", "config.directory: required"), (Self.config(locks, extra: #","bogus":1"#), "config.bogus: unknown key"),
                                  (Self.config(locks, extra: #","pollMilliseconds":0"#), "config.pollMilliseconds"),
                                  (Self.config(locks, extra: #","pollMilliseconds":2.5"#), "config.pollMilliseconds"),
                                  (Self.config(file), "config.directory"), (Self.config(parent + "/no/such/dir"), "cannot create it"),
                                  ("[]", "not a JSON object")] {
            let error = #expect(throws: LockPlugin.LockFailure.self) { _ = try LockPlugin(path: Self.library, config: config) }
            #expect(error?.status == ATH_INVALID, "\(config)")
            #expect(error?.message.contains(message) == true, "\(config): \(error?.message ?? "")")
        }
    }

    @Test("two handles on one key: wait_ms = 0 is ATH_BUSY at once, a bounded wait ends ATH_BUSY, a waiter gets it after release")
    func twoHandles() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let first = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 0)
        try #require(first.status == ATH_OK && first.handle != 0, "\(first)")

        var started = LockHarness.now()
        let busy = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 0)
        #expect(busy.status == ATH_BUSY, "\(busy)")
        #expect(LockHarness.now() - started < 1, "wait_ms = 0 never waits")
        #expect(busy.message.contains("held by another"))
        started = LockHarness.now()
        let waited = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 300)
        #expect(waited.status == ATH_BUSY)
        #expect(LockHarness.now() - started >= 0.3, "the wait lasted wait_ms")

        // Another key is another lock; a second instance (another process's stand-in) is excluded too.
        let other = plugin.acquire("fetch/example.com/m@v1.0.1", waitMs: 0)
        #expect(other.status == ATH_OK)
        #expect(plugin.release(other.handle) == ATH_OK)
        let second = try LockPlugin(path: Self.library, config: Self.config(locks))
        #expect(second.acquire("fetch/example.com/m@v1.0.0", waitMs: 0).status == ATH_BUSY)

        let waiter = Background { plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 60_000) }
        #expect(waiter.result(timeout: 0.2) == nil, "still waiting while the first holds it")
        #expect(plugin.refresh(first.handle) == ATH_OK)
        let released = LockHarness.now()
        #expect(plugin.release(first.handle) == ATH_OK)
        let got = try #require(waiter.result(timeout: 30), "the waiter never got the lock")
        #expect(got.status == ATH_OK && got.handle != first.handle, "\(got)")
        #expect(LockHarness.now() - released < 5, "a release in this process wakes its waiters")
        #expect(plugin.release(got.handle) == ATH_OK)
        #expect(Self.descriptors(into: locks) == 0, "every handle's descriptor is closed, busy tries' too")
    }

    @Test("refresh and release of handles that are not held answer ATH_NOT_FOUND; bad arguments are ATH_INVALID")
    func handlesAndArguments() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let held = plugin.acquire("k", waitMs: 0)
        #expect(plugin.refresh(held.handle, leaseMs: 1) == ATH_OK)
        #expect(plugin.refresh(held.handle, leaseMs: 0) == ATH_INVALID)
        #expect(plugin.release(held.handle) == ATH_OK)
        #expect(plugin.release(held.handle) == ATH_NOT_FOUND)
        #expect(plugin.refresh(held.handle) == ATH_NOT_FOUND)
        #expect(plugin.refresh(987_654) == ATH_NOT_FOUND)
        #expect(plugin.acquire("", waitMs: 0).status == ATH_INVALID)
        #expect(plugin.acquire("k", leaseMs: 0, waitMs: 0).status == ATH_INVALID)
        #expect(plugin.acquire([UInt8](repeating: 0x61, count: Int(ATH_LOCK_KEY_MAX) + 1), waitMs: 0).status == ATH_INVALID)
        #expect(Self.descriptors(into: locks) == 0)
    }

    @Test("the plugin logs through the host services it got from create_with_host")
    func logsThroughHost() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let held = plugin.acquire("k", leaseMs: 1, waitMs: 0)
        let start = LockHarness.now()
        while LockHarness.now() - start < 0.002 {}  // the 1 ms lease runs out (a condition on the clock, not a sleep)
        #expect(plugin.release(held.handle) == ATH_OK)
        #expect(plugin.logged.lines.count == 1)
        #expect(plugin.logged.lines.first?.hasPrefix("\(ATH_LOG_WARNING.rawValue) FileLock: lock-") == true, "\(plugin.logged.lines)")
        #expect(plugin.logged.lines.first?.contains("released after its lease ended") == true)
    }

    @Test("a wait ends at the call's deadline (ATH_TIMEOUT) and when the call is cancelled (ATH_CANCELLED)")
    func deadlineAndCancellation() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let held = plugin.acquire("k", waitMs: 0)
        let deadline = LockHarness.deadline(after: 0.3)
        var started = LockHarness.now()
        let timedOut = plugin.acquire("k", waitMs: 60_000, call: LockPlugin.Call(deadline: deadline))
        #expect(timedOut.status == ATH_TIMEOUT, "\(timedOut)")
        #expect(LockHarness.now() - started >= 0.3 && LockHarness.now() - started < 10)

        let call = LockPlugin.Call()
        let waiter = Background { plugin.acquire("k", waitMs: 60_000, call: call) }
        #expect(waiter.result(timeout: 0.2) == nil)
        started = LockHarness.now()
        call.cancel()
        let cancelled = try #require(waiter.result(timeout: 30))
        #expect(cancelled.status == ATH_CANCELLED, "\(cancelled)")
        #expect(LockHarness.now() - started < 5, "noticed at the next try")
        #expect(plugin.release(held.handle) == ATH_OK)
        #expect(Self.descriptors(into: locks) == 0)
    }

    @Test("processes incrementing one counter file under the lock lose no increment (4 processes x 150 cycles)")
    func mutualExclusionAcrossProcesses() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let total = try LockHarness.countUnderLock(library: Self.library, config: Self.config(locks), processes: 4, cycles: 150)
        #expect(total == 600, "increments were lost: the processes were not excluded")
    }

    @Test("PluginKit reads nothing of ath_host and ath_call past their struct_size (8-byte structs before a guard page, in a child)")
    func shortHostStructs() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        try LockHarness.expectShortStructsWork(library: Self.library, config: Self.config(locks), leaseMs: 1)
    }

    @Test("a holder process killed with SIGKILL frees the lock for another process at once")
    func killedHolder() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let holder = try LockHarness.holder.get()
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let child = try ChildProcess(holder, [Self.library, Self.config(locks), "fetch/example.com/m@v1.0.0", "1000"])
        defer { child.stop() }
        let line = child.firstLine(timeout: 60)
        try #require(line == "held \(child.process.processIdentifier)", "\(line ?? "no line"): \(child.stderr)")
        // Far past the child's 1 s lease the lock is still its own: a living holder keeps a flock.
        let busy = plugin.acquire("fetch/example.com/m@v1.0.0", leaseMs: 1000, waitMs: 1500)
        #expect(busy.status == ATH_BUSY, "\(busy)")

        let waiter = Background { plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 60_000) }
        #expect(waiter.result(timeout: 0.2) == nil)
        let killed = LockHarness.now()
        kill(child.process.processIdentifier, SIGKILL)
        let got = try #require(waiter.result(timeout: 30), "the lock of a killed holder was never freed")
        #expect(got.status == ATH_OK, "\(got)")
        #expect(LockHarness.now() - killed < 5)
        #expect(plugin.release(got.handle) == ATH_OK)
    }

    @Test("hostile keys never name a path: each is one lock file inside the directory, nothing beside it", arguments: [
        Array("../x".utf8), Array("../../../../../../tmp/athens-filelock-escape".utf8), Array("/etc/passwd".utf8), Array("a/b/c".utf8),
        Array(".".utf8), Array("..".utf8), Array("lock-".utf8), [UInt8](repeating: 0x2F, count: Int(ATH_LOCK_KEY_MAX)),
        [UInt8](repeating: 0x78, count: Int(ATH_LOCK_KEY_MAX)), Array(1...31) + [0x7F, 0x80, 0xFE, 0xFF], Array("\u{202E}exe.txt".utf8),
    ])
    func hostileKeys(key: [UInt8]) throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let plugin = try LockPlugin(path: Self.library, config: Self.config(locks))
        let held = plugin.acquire(key, waitMs: 0)
        try #require(held.status == ATH_OK, "\(held)")
        #expect(plugin.acquire(key, waitMs: 0).status == ATH_BUSY, "the same bytes are the same lock")
        let last = key.last! ^ 0x02
        let neighbour = key.dropLast() + [last == 0 ? 0x41 : last]  // one byte off, same length (some keys are at the limit)
        #expect(plugin.acquire(Array(neighbour), waitMs: 0).status == ATH_OK, "other bytes are another lock")
        #expect(plugin.release(held.handle) == ATH_OK)
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["locks"], "nothing written beside the directory")
        let files = try FileManager.default.contentsOfDirectory(atPath: locks)
        #expect(files.count == 2)
        #expect(files.allSatisfy { $0.hasPrefix("lock-") && $0.count == 69 && $0.dropFirst(5).allSatisfy { "0123456789abcdef".contains($0) } }, "\(files)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/athens-filelock-escape"))
    }
}
