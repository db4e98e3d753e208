// StorageStress: drives any storage plugin .so through its C table, as the host would, for tests that need
// another process (to kill it at random moments, or to race it against a second one).
//
//   StorageStress loop <plugin.so> <config JSON> <run>
//       Saves versions v0.<run>.<i> of example.com/stress/m<i % 3> forever from two threads, content derived
//       from "module@version" (see `Content`). Prints "ready <pid>" first, then "saved <module> <version>" after
//       each save returns OK (or ALREADY_EXISTS). Meant to be killed.
//   StorageStress save <plugin.so> <config JSON> <module> <version> <seed> <zip size> <start file>
//       Waits until <start file> exists, saves one version whose content derives from <seed>, prints "saved",
//       "exists", or "error <status> <message>".
//   StorageStress bench <plugin.so> <config JSON> <modules> <threads> <zip size>
//       Saves one version of each of <modules> distinct modules (example.com/bench/c<i>) from <threads> threads at
//       once and prints "saved <modules> in <seconds> s (<ms per save> ms/save)": the storage's cold save cost alone,
//       without a host or a network (bench/README.md); then "fds <before> <after> threads <before> <after>", the
//       process's open descriptors and threads before the saves and after them.
// Exit status 2 on a usage or plugin failure (with the reason on stderr).
import Dispatch
import Glibc
import PluginABI

/// Deterministic content; the tests compute the same bytes to check what a killed run left.
enum Content {
    /// FNV-1a of the text, the seed of a loop version.
    static func seed(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// `count` xorshift64 bytes from `seed`.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        var out = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            out[i] = UInt8(truncatingIfNeeded: state)
        }
        return out
    }

    static func info(_ version: String) -> [UInt8] { Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"}"#.utf8) }
    static func mod(_ module: String, seed: UInt64) -> [UInt8] { Array("module \(module)\n\n// \(String(seed, radix: 16))\n".utf8) }
    /// Loop versions: 1 to 65536 bytes.
    static func zipSize(seed: UInt64) -> Int { Int(seed % 65536) + 1 }
}

func fail(_ message: String) -> Never {
    var line = Array("StorageStress: \(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

/// One line on stdout in one write(2), so lines from two threads never interleave and a kill never splits one.
func say(_ text: String) {
    var line = Array((text + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

/// A storage instance reached through the plugin's C table.
struct Storage: @unchecked Sendable {
    let methods: ath_storage_methods
    let instance: UnsafeMutableRawPointer?

    init(plugin: String, config: String) {
        guard let handle = dlopen(plugin, RTLD_NOW | RTLD_LOCAL) else { fail("dlopen \(plugin): \(String(cString: dlerror()))") }
        guard let symbol = dlsym(handle, ATH_PLUGIN_QUERY_SYMBOL) else { fail("\(plugin): no \(ATH_PLUGIN_QUERY_SYMBOL)") }
        typealias Query = @convention(c) (UInt32) -> UnsafePointer<ath_plugin>?
        guard let descriptor = unsafeBitCast(symbol, to: Query.self)(ATH_ABI_MAJOR),
              descriptor.pointee.magic == ATH_MAGIC, let methods = descriptor.pointee.storage, let create = descriptor.pointee.create else {
            fail("\(plugin): not a storage plugin of ABI \(ATH_ABI_MAJOR)")
        }
        var error = ath_error()
        var instance: UnsafeMutableRawPointer?
        let status = config.withCString { create($0, &instance, &error) }
        guard status == ATH_OK else { fail("create: status \(status.rawValue): \(Self.text(error))") }
        self.methods = methods.pointee
        self.instance = instance
    }

    static func text(_ error: ath_error) -> String {
        withUnsafeBytes(of: error.message) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
    }

    /// Saves from memory; returns the status and the error message.
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: [UInt8]) -> (ath_status, String) {
        final class Cursor {
            let bytes: [UInt8]
            var offset = 0
            init(_ bytes: [UInt8]) { self.bytes = bytes }
        }
        let cursor = Cursor(zip)
        var error = ath_error()
        var reader = ath_reader(size: UInt64(zip.count), read: { ctx, buffer, capacity in
            let cursor = Unmanaged<Cursor>.fromOpaque(ctx!).takeUnretainedValue()
            let n = min(Int(capacity), cursor.bytes.count - cursor.offset)
            cursor.bytes.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + cursor.offset, byteCount: n)
            }
            cursor.offset += n
            return Int64(n)
        }, ctx: Unmanaged.passUnretained(cursor).toOpaque())
        let status = withExtendedLifetime(cursor) {
            module.withCString { m in
                version.withCString { v in
                    info.withUnsafeBufferPointer { i in
                        mod.withUnsafeBufferPointer { d in
                            methods.save!(instance, m, v, i.baseAddress!, UInt64(i.count), d.baseAddress!, UInt64(d.count), &reader, &error)
                        }
                    }
                }
            }
        }
        return (status, Self.text(error))
    }
}

/// The number of entries of a /proc directory (open descriptors, threads), "." and ".." excluded.
func entries(_ path: String) -> Int {
    guard let dir = opendir(path) else { return -1 }
    defer { closedir(dir) }
    var n = 0
    while readdir(dir) != nil { n += 1 }
    return n - 2
}

/// A detached pthread that leaves `group` when `body` returns.
enum Thread {
    static func detach(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; let group: DispatchGroup; init(_ b: @escaping @Sendable () -> Void, _ g: DispatchGroup) { body = b; group = g } }
        group.enter()
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, group)).toOpaque()
        guard pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            box.group.leave()
            return nil
        }, box) == 0 else { fail("pthread_create: \(errno)") }
        pthread_detach(thread)
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: StorageStress loop|save <plugin.so> <config JSON> …") }
// The pid first, before the instance's start-up: a test may run us under a tracer and must kill us, not it.
if arguments[1] == "loop" { say("ready \(getpid())") }
let storage = Storage(plugin: arguments[2], config: arguments[3])

switch arguments[1] {
case "loop":
    guard arguments.count == 5, let run = Int(arguments[4]) else { fail("usage: StorageStress loop <plugin.so> <config JSON> <run>") }
    DispatchQueue.concurrentPerform(iterations: 2) { thread in
        var i = thread
        while true {
            let module = "example.com/stress/m\(i % 3)", version = "v0.\(run).\(i)"
            let seed = Content.seed(module + "@" + version)
            let (status, message) = storage.save(module: module, version: version, info: Content.info(version),
                                                 mod: Content.mod(module, seed: seed),
                                                 zip: Content.bytes(Content.zipSize(seed: seed), seed: seed))
            guard status == ATH_OK || status == ATH_ALREADY_EXISTS else { fail("save \(module)@\(version): status \(status.rawValue): \(message)") }
            say("saved \(module) \(version)")
            i += 2
        }
    }
case "save":
    guard arguments.count == 9, let seed = UInt64(arguments[6]), let size = Int(arguments[7]) else {
        fail("usage: StorageStress save <plugin.so> <config JSON> <module> <version> <seed> <zip size> <start file>")
    }
    let module = arguments[4], version = arguments[5]
    let zip = Content.bytes(size, seed: seed)
    // Ready (plugin loaded, bytes made): the test creates the start file once every writer has said so.
    say("waiting")
    while access(arguments[8], F_OK) != 0 { usleep(1000) }
    let (status, message) = storage.save(module: module, version: version, info: Content.info(version),
                                         mod: Content.mod(module, seed: seed), zip: zip)
    switch status {
    case ATH_OK: say("saved")
    case ATH_ALREADY_EXISTS: say("exists")
    default: say("error \(status.rawValue) \(message)")
    }
case "bench":
    guard arguments.count == 7, let count = Int(arguments[4]), let threads = Int(arguments[5]), let size = Int(arguments[6]),
          count > 0, threads > 0 else {
        fail("usage: StorageStress bench <plugin.so> <config JSON> <modules> <threads> <zip size>")
    }
    let zip = Content.bytes(size, seed: 1)
    final class Counter: @unchecked Sendable {
        var next = 0
        var lock = pthread_mutex_t()
        init() { pthread_mutex_init(&lock, nil) }
        func take() -> Int {
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            next += 1
            return next - 1
        }
    }
    let counter = Counter()
    let fdsBefore = entries("/proc/self/fd"), threadsBefore = entries("/proc/self/task")
    var start = timespec(), end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    let group = DispatchGroup()
    for _ in 0..<threads {
        // Threads of their own: Dispatch's pool would not run more blocking saves at once than there are cores.
        Thread.detach(group) {
            while true {
                let i = counter.take()
                if i >= count { return }
                let module = "example.com/bench/c\(i)", version = "v1.0.0"
                let (status, message) = storage.save(module: module, version: version, info: Content.info(version),
                                                     mod: Content.mod(module, seed: 1), zip: zip)
                guard status == ATH_OK else { fail("save \(module)@\(version): status \(status.rawValue): \(message)") }
            }
        }
    }
    group.wait()
    clock_gettime(CLOCK_MONOTONIC, &end)
    let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
    say("saved \(count) in \(seconds) s (\(seconds / Double(count) * 1000 * Double(threads)) ms/save)")
    // Detached bench threads may still be exiting: wait (bounded) until the count settles.
    var threadsAfter = entries("/proc/self/task")
    for _ in 0..<500 where threadsAfter > threadsBefore {
        usleep(10_000)
        threadsAfter = entries("/proc/self/task")
    }
    say("fds \(fdsBefore) \(entries("/proc/self/fd")) threads \(threadsBefore) \(threadsAfter)")
default:
    fail("unknown mode \(arguments[1])")
}
