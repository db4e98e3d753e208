import Foundation
import PluginABI
import Testing

/// A lock plugin driven straight through athens_plugin.h, as a host would (the host side of the lock kind comes later):
/// dlopen, ath_plugin_query, create_with_host, then the ath_lock_methods entries with an ath_call of our own.
/// Shared by the tests of every lock plugin (FileLockTests, RedisLockPluginTests).
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
            name: UnsafePointer(strdup("LockHarness")!), version: UnsafePointer(strdup("0")!),
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

    func refresh(_ handle: UInt64, leaseMs: UInt32 = 30_000, call: Call = Call()) -> ath_status {
        refreshWithMessage(handle, leaseMs: leaseMs, call: call).status
    }

    func refreshWithMessage(_ handle: UInt64, leaseMs: UInt32 = 30_000, call: Call = Call()) -> (status: ath_status, message: String) {
        var error = ath_error()
        let status = withCall(call) { methods.refresh!(instance, $0, handle, leaseMs, &error) }
        return (status, status == ATH_OK ? "" : Self.text(error))
    }

    func release(_ handle: UInt64) -> ath_status { releaseWithMessage(handle).status }

    func releaseWithMessage(_ handle: UInt64) -> (status: ath_status, message: String) {
        var error = ath_error()
        let status = methods.release!(instance, handle, &error)
        return (status, status == ATH_OK ? "" : Self.text(error))
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

/// What the lock plugins' tests share besides `LockPlugin`: the clock and the holder process.
enum LockHarness {
    /// CLOCK_MONOTONIC in seconds (the clock of ath_call deadlines).
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// An absolute ath_call deadline `seconds` from now.
    static func deadline(after seconds: Double) -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) + UInt64(seconds * 1e9)
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

    /// Runs `processes` holder children at once, each incrementing one counter file `cycles` times under the lock
    /// "counter" of the plugin at `library`; returns the final count (processes × cycles unless increments got lost
    /// because the lock let two processes in).
    static func countUnderLock(library: String, config: String, processes: Int, cycles: Int) throws -> Int? {
        let directory = TestSupport.makeTemporaryDirectory("lock-counter")
        defer { TestSupport.removeDirectory(directory) }
        let counter = directory + "/counter"
        let children = try (0..<processes).map { _ in
            try ChildProcess(try holder.get(), [library, config, "counter", "30000", "count", String(cycles), counter])
        }
        for child in children {
            let line = child.firstLine(timeout: 120)
            #expect(line == "counted \(cycles)", "\(line ?? "no line"): \(child.stderr)")
            child.stop()
        }
        return Int(try String(contentsOfFile: counter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs the holder's "short" mode (8-byte ath_host and ath_call before a guard page) on the plugin at `library`:
    /// it faults if the plugin reads past either struct_size.
    static func expectShortStructsWork(library: String, config: String, leaseMs: Int) throws {
        let result = try TestSupport.run(try holder.get(), [library, config, "k", String(leaseMs), "short"])
        #expect(result.status == 0 && result.stdout == "short ok\n", "status \(result.status): \(result.stdout) \(result.stderr)")
    }
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
