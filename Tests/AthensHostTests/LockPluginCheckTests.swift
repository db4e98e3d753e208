import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The lock kind through the loader and `plugin-check`: FileLock passes every lock check; a lock that excludes
/// nothing fails each check that covers exclusion; tables missing a required entry or with a reserved field set are
/// refused at load, naming it.
@Suite("lock plugins: loader and plugin-check", .blockingBodies)
struct LockPluginCheckTests {
    static let directory = TestSupport.makeTemporaryDirectory("lock-check")

    static let lockRows = ["lock: acquire, refresh, release round trip", "lock: second acquire with wait 0 is BUSY",
                           "lock: a bounded wait succeeds after release", "lock: refresh of a released handle is NOT_FOUND",
                           "lock: concurrent acquirers are mutually exclusive", "lock: hostile keys and leases are INVALID",
                           "lock: error messages are bounded and terminated"]

    @Test("FileLock passes every lock check")
    func fileLockPasses() throws {
        let path = TestSupport.plugin("FileLock")
        try #require(FileManager.default.fileExists(atPath: path), "FileLock not built at \(path)")
        let config = #"{"directory":"\#(TestSupport.makeTemporaryDirectory("check-filelock"))/locks"}"#
        let (status, rows) = try PluginCheckTests.check(path, config: config)
        let failures = rows.values.filter { $0.outcome != .pass }
        #expect(failures.isEmpty, "\(failures)")
        #expect(status == 0)
        #expect(Set(rows.keys) == Set(["load", "create"] + Self.lockRows))
        #expect(try #require(rows["lock: concurrent acquirers are mutually exclusive"]).detail.contains("0 overlaps"))
    }

    @Test("RedisLock on a real redis-server passes every lock check")
    func redisLockPasses() throws {
        let path = TestSupport.plugin("RedisLock")
        try #require(FileManager.default.fileExists(atPath: path), "RedisLock not built at \(path)")
        let server = try RedisServer()
        let (status, rows) = try PluginCheckTests.check(path, config: #"{"url":"\#(server.url())"}"#)
        let failures = rows.values.filter { $0.outcome != .pass }
        #expect(failures.isEmpty, "\(failures)")
        #expect(status == 0)
        #expect(Set(rows.keys) == Set(["load", "create"] + Self.lockRows))
    }

    @Test("a lock that excludes nothing fails the checks that cover exclusion, BUSY, NOT_FOUND and INVALID")
    func brokenLockFails() throws {
        let path = try TestSupport.compileCPlugin("test_lock.c", into: Self.directory, name: "libCTestLock.so")
        let (status, rows) = try PluginCheckTests.check(path)
        #expect(status == 1)
        #expect(rows["lock: acquire, refresh, release round trip"]?.outcome == .pass)
        for name in ["lock: second acquire with wait 0 is BUSY", "lock: a bounded wait succeeds after release",
                     "lock: refresh of a released handle is NOT_FOUND", "lock: concurrent acquirers are mutually exclusive",
                     "lock: hostile keys and leases are INVALID"] {
            #expect(rows[name]?.outcome == .fail, "\(name): \(String(describing: rows[name]))")
        }
        #expect(try #require(rows["lock: second acquire with wait 0 is BUSY"]).detail.contains("returned ATH_OK, expected ATH_BUSY"))
        #expect(try #require(rows["lock: concurrent acquirers are mutually exclusive"]).detail.contains("overlapped"))
    }

    @Test("the loader refuses a lock table with a NULL required entry or a non-zero reserved field, naming it",
          arguments: [("NULL_RELEASE", "required lock entry release is NULL"), ("NONZERO_RESERVED", "lock table field reserved is 1, must be 0")])
    func loaderRefuses(define: String, reason: String) throws {
        let path = try TestSupport.compileCPlugin("test_lock.c", defines: [define], into: Self.directory, name: "libCTestLock-\(define).so")
        #expect(throws: PluginLoadError(path: path, reason: reason)) { try PluginLibrary(path: path) }
    }

    @Test("the loader accepts a lock plugin; its face takes, refreshes and releases FileLock's locks; a storage face refuses it")
    func faceOverFileLock() throws {
        let library = try PluginLibrary(path: TestSupport.plugin("FileLock"))
        #expect(library.kind == .lock && library.lockMethods != nil && library.storageMethods == nil)
        let config = #"{"directory":"\#(TestSupport.makeTemporaryDirectory("face-filelock"))"}"#
        let lock = try PluginHost.LockPlugin(library: library, configJSON: config, name: "FileLock")
        guard case let .held(handle) = try lock.acquire(key: "k", leaseMilliseconds: 10_000, waitMilliseconds: 0) else {
            Issue.record("a free key was not acquired")
            return
        }
        #expect(try lock.acquire(key: "k", leaseMilliseconds: 10_000, waitMilliseconds: 0) == .busy)
        try lock.refresh(handle, leaseMilliseconds: 10_000)
        try lock.release(handle)
        #expect(throws: PluginError.self) { try lock.refresh(handle, leaseMilliseconds: 10_000) }
        #expect(throws: PluginError.self) { _ = try lock.acquire(key: "", leaseMilliseconds: 10_000, waitMilliseconds: 0) }
        #expect(throws: PluginError.self) { _ = try StoragePlugin(library: library, configJSON: config) }
    }
}
