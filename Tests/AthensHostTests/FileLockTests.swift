import Foundation
import PluginABI
import Testing

/// A lock plugin driven straight through athens_plugin.h, as a host would (the host's own face is PluginHost.LockPlugin):
/// dlopen, ath_plugin_query, create_with_host, then the ath_lock_methods entries with an ath_call of our own.
final class LockPlugin: @unchecked Sendable {  // the instance is used as the header allows: any thread, concurrently
    let methods: ath_lock_methods
    let instance: UnsafeMutableRawPointer?
    let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void
    /// Lines the plugin logged through the host services.
    let logged = LogCollector()

    /// Collects the host log lines of one instance (reached from the C callback through host_ctx).
    final class LogCollector: @unchecked Sendable {
        private let lock = NSLock()
        private var storage: [String] = []
        var lines: [String] { lock.withLock { storage } }
        func append(_ line: String) { lock.withLock { storage.append(line) } }
    }

    /// The host services we hand over; kept alive (and unchanged) for as long as the instance lives.
    private let host: UnsafeMutablePointer<ath_host>

    /// Loads the plugin at `path` and creates an instance with `config`; throws with the plugin's message.
    init(path: String, config: String) throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE), let symbol = dlsym(handle, ATH_PLUGIN_QUERY_SYMBOL) else {
            throw TestFailure("dlopen \(path): \(String(cString: dlerror()))")
        }
        let plugin = try #require(unsafeBitCast(symbol, to: ath_plugin_query_fn.self)(ATH_ABI_MAJOR))
        guard plugin.pointee.magic == ATH_MAGIC, plugin.pointee.kind == ATH_KIND_LOCK,
              plugin.pointee.struct_size >= UInt32(MemoryLayout<ath_plugin>.size), let table = plugin.pointee.lock,
              let createWithHost = plugin.pointee.create_with_host, plugin.pointee.create != nil, let destroy = plugin.pointee.destroy else {
            throw TestFailure("\(path): not a complete 1.1 lock plugin")
        }
        guard table.pointee.struct_size >= UInt32(MemoryLayout<ath_lock_methods>.size), table.pointee.reserved == 0, plugin.pointee.reserved == 0,
              table.pointee.acquire != nil, table.pointee.refresh != nil, table.pointee.release != nil else {
            throw TestFailure("\(path): incomplete lock table")
        }
        methods = table.pointee
        self.destroy = destroy
        let services = UnsafeMutablePointer<ath_host>.allocate(capacity: 1)
        host = services
        services.initialize(to: ath_host(
            struct_size: UInt32(MemoryLayout<ath_host>.size), abi_minor: ATH_ABI_MINOR,
            name: UnsafePointer(strdup("FileLockTests")!), version: UnsafePointer(strdup("0")!),
            host_ctx: Unmanaged.passUnretained(logged).toOpaque(),
            log: { context, level, message in
                Unmanaged<LogCollector>.fromOpaque(context!).takeUnretainedValue().append("\(level.rawValue) \(String(cString: message))")
            },
            reader_size: UInt32(MemoryLayout<ath_reader>.size), sink_size: UInt32(MemoryLayout<ath_sink>.size),
            error_size: UInt32(MemoryLayout<ath_error>.size), reserved: 0))
        var error = ath_error()
        var created: UnsafeMutableRawPointer?
        let status = config.withCString { createWithHost(services, $0, &created, &error) }
        guard status == ATH_OK else { throw LockFailure(status: status, message: Self.text(error)) }
        instance = created
    }

    deinit { destroy(instance) }

    /// A failed create, with the plugin's status and message.
    struct LockFailure: Error, CustomStringConvertible {
        var status: ath_status
        var message: String
        var description: String { "status \(status.rawValue): \(message)" }
    }

    static func text(_ error: ath_error) -> String {
        withUnsafeBytes(of: error.message) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
    }

    /// What the context of a call says: its deadline (absolute monotonic ns, 0 = none) and whether it is cancelled.
    final class Call: @unchecked Sendable {  // `flag` guarded by `lock`
        private let lock = NSLock()
        private var flag = false
        let deadline: UInt64
        init(deadline: UInt64 = 0) { self.deadline = deadline }
        func cancel() { lock.withLock { flag = true } }
        var isCancelled: Bool { lock.withLock { flag } }
    }

    /// acquire through the table; the key is passed as bytes (a C string: no NUL inside).
    func acquire(_ key: [UInt8], leaseMs: UInt32 = 30_000, waitMs: UInt32, call: Call = Call()) -> (status: ath_status, handle: UInt64, message: String) {
        var error = ath_error()
        var handle: UInt64 = 0
        let status = withCall(call) { c in
            (key + [0]).withUnsafeBufferPointer { k in
                k.baseAddress!.withMemoryRebound(to: CChar.self, capacity: k.count) { methods.acquire!(instance, c, $0, leaseMs, waitMs, &handle, &error) }
            }
        }
        return (status, handle, status == ATH_OK ? "" : Self.text(error))
    }

    func acquire(_ key: String, leaseMs: UInt32 = 30_000, waitMs: UInt32, call: Call = Call()) -> (status: ath_status, handle: UInt64, message: String) {
        acquire(Array(key.utf8), leaseMs: leaseMs, waitMs: waitMs, call: call)
    }

    func refresh(_ handle: UInt64, leaseMs: UInt32 = 30_000) -> ath_status {
        var error = ath_error()
        return withCall(Call()) { methods.refresh!(instance, $0, handle, leaseMs, &error) }
    }

    func release(_ handle: UInt64) -> ath_status {
        var error = ath_error()
        return methods.release!(instance, handle, &error)
    }

    private func withCall<T>(_ call: Call, _ body: (UnsafePointer<ath_call>) -> T) -> T {
        "test-request".withCString { id in
            var c = ath_call(struct_size: UInt32(MemoryLayout<ath_call>.size), reserved: 0, deadline_ns: call.deadline, request_id: id,
                             cancelled: { c in Unmanaged<Call>.fromOpaque(c.pointee.host_data!).takeUnretainedValue().isCancelled ? 1 : 0 },
                             host_data: Unmanaged.passUnretained(call).toOpaque())
            return withExtendedLifetime(call) { body(&c) }
        }
    }
}

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

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Open descriptors of this process that point into `directory`: what the plugin holds there.
    static func descriptors(into directory: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "").hasPrefix(directory + "/") }.count
    }

    /// Runs `body` on a thread of its own (acquire blocks); the result arrives through the returned box.
    final class Background<T: Sendable>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var value: T?
        init(_ body: @escaping @Sendable () -> T) {
            Thread.detachNewThread { [self] in
                value = body()
                done.signal()
            }
        }
        /// The result, or nil if it did not arrive within `timeout` seconds.
        func result(timeout: Double) -> T? { done.wait(timeout: .now() + timeout) == .success ? value : nil }
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

        var started = Self.now()
        let busy = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 0)
        #expect(busy.status == ATH_BUSY, "\(busy)")
        #expect(Self.now() - started < 1, "wait_ms = 0 never waits")
        #expect(busy.message.contains("held by another"))
        started = Self.now()
        let waited = plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 300)
        #expect(waited.status == ATH_BUSY)
        #expect(Self.now() - started >= 0.3, "the wait lasted wait_ms")

        // Another key is another lock; a second instance (another process's stand-in) is excluded too.
        let other = plugin.acquire("fetch/example.com/m@v1.0.1", waitMs: 0)
        #expect(other.status == ATH_OK)
        #expect(plugin.release(other.handle) == ATH_OK)
        let second = try LockPlugin(path: Self.library, config: Self.config(locks))
        #expect(second.acquire("fetch/example.com/m@v1.0.0", waitMs: 0).status == ATH_BUSY)

        let waiter = Background { plugin.acquire("fetch/example.com/m@v1.0.0", waitMs: 60_000) }
        #expect(waiter.result(timeout: 0.2) == nil, "still waiting while the first holds it")
        #expect(plugin.refresh(first.handle) == ATH_OK)
        let released = Self.now()
        #expect(plugin.release(first.handle) == ATH_OK)
        let got = try #require(waiter.result(timeout: 30), "the waiter never got the lock")
        #expect(got.status == ATH_OK && got.handle != first.handle, "\(got)")
        #expect(Self.now() - released < 5, "a release in this process wakes its waiters")
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
        let start = Self.now()
        while Self.now() - start < 0.002 {}  // the 1 ms lease runs out (a condition on the clock, not a sleep)
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
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let deadline = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) + 300_000_000
        var started = Self.now()
        let timedOut = plugin.acquire("k", waitMs: 60_000, call: LockPlugin.Call(deadline: deadline))
        #expect(timedOut.status == ATH_TIMEOUT, "\(timedOut)")
        #expect(Self.now() - started >= 0.3 && Self.now() - started < 10)

        let call = LockPlugin.Call()
        let waiter = Background { plugin.acquire("k", waitMs: 60_000, call: call) }
        #expect(waiter.result(timeout: 0.2) == nil)
        started = Self.now()
        call.cancel()
        let cancelled = try #require(waiter.result(timeout: 30))
        #expect(cancelled.status == ATH_CANCELLED, "\(cancelled)")
        #expect(Self.now() - started < 5, "noticed at the next try")
        #expect(plugin.release(held.handle) == ATH_OK)
        #expect(Self.descriptors(into: locks) == 0)
    }

    /// Tests/Fixtures/CPlugins/lock_holder.c, built once per run.
    static let holder = Result { () throws -> String in
        let output = TestSupport.makeTemporaryDirectory("lock-holder") + "/lock_holder"
        let cc = try TestSupport.run("/usr/bin/cc", ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
                                                     "-I", TestSupport.packageRoot + "/Sources/PluginABI/include",
                                                     TestSupport.packageRoot + "/Tests/Fixtures/CPlugins/lock_holder.c", "-o", output, "-ldl"])
        guard cc.status == 0 else { throw TestFailure("cc lock_holder.c: \(cc.stderr)") }
        return output
    }

    @Test("processes incrementing one counter file under the lock lose no increment (4 processes x 150 cycles)")
    func mutualExclusionAcrossProcesses() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let holder = try Self.holder.get()
        let counter = parent + "/counter"
        let children = try (0..<4).map { _ in
            try ChildProcess(holder, [Self.library, Self.config(locks), "counter", "30000", "count", "150", counter])
        }
        for child in children {
            let line = child.firstLine(timeout: 120)
            #expect(line == "counted 150", "\(line ?? "no line"): \(child.stderr)")
            child.stop()
        }
        let total = try String(contentsOfFile: counter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(total == "600", "increments were lost: the processes were not excluded")
    }

    @Test("PluginKit reads nothing of ath_host and ath_call past their struct_size (8-byte structs before a guard page, in a child)")
    func shortHostStructs() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let result = try TestSupport.run(try Self.holder.get(), [Self.library, Self.config(locks), "k", "1", "short"])
        #expect(result.status == 0 && result.stdout == "short ok\n", "status \(result.status): \(result.stdout) \(result.stderr)")
    }

    @Test("a holder process killed with SIGKILL frees the lock for another process at once")
    func killedHolder() throws {
        let (parent, locks) = Self.directory()
        defer { TestSupport.removeDirectory(parent) }
        let holder = try Self.holder.get()
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
        let killed = Self.now()
        kill(child.process.processIdentifier, SIGKILL)
        let got = try #require(waiter.result(timeout: 30), "the lock of a killed holder was never freed")
        #expect(got.status == ATH_OK, "\(got)")
        #expect(Self.now() - killed < 5)
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
