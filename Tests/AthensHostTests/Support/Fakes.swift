// In-memory implementations of the request path's seams (`Storage`, `Fetcher` from PluginHost), so the download
// protocol, routing, modes and the stash are tested without dlopen. Every fake counts its calls and can be held
// at a gate (a test opens it when it is ready), so tests synchronise on conditions, never on sleeps.
import Foundation
import Glibc
import GoModule
import HostSupport
import PluginABI
@testable import PluginHost
import RequestPath
import SumDB

/// A gate a fake call waits at until the test opens it (or forever open when never closed).
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var open: Bool
    private var waiting = 0

    init(open: Bool = true) { self.open = open }

    /// Blocks while closed.
    func pass() {
        condition.lock()
        waiting += 1
        while !open { condition.wait() }
        waiting -= 1
        condition.unlock()
    }

    /// Blocks while closed, unless `call` is cancelled (checked every millisecond, as a plugin polls): false then.
    func pass(unlessCancelled call: CallContext) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        waiting += 1
        defer { waiting -= 1 }
        while !open {
            if call.isCancelled { return false }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.001))
        }
        return true
    }

    func close() { condition.withLock { open = false } }

    func openGate() {
        condition.lock()
        open = true
        condition.broadcast()
        condition.unlock()
    }

    /// Calls held at the gate now.
    var held: Int { condition.withLock { waiting } }
}

/// The three files of one version.
struct FakeVersion: Sendable, Equatable {
    var info: [UInt8]
    var mod: [UInt8]
    var zip: [UInt8]

    /// What an honest upstream sends for module@version: a .info, a go.mod, a zip with that go.mod.
    static func honest(module: String, version: String, time: String = "2024-01-02T03:04:05Z") -> FakeVersion {
        let mod = Array("module \(module)\n".utf8)
        return FakeVersion(info: Array(#"{"Version":"\#(version)","Time":"\#(time)"}"#.utf8), mod: mod,
                           zip: FakeZip.stored(["\(module)@\(version)/go.mod": mod]))
    }

    /// The version as the stash stores it: the .info carries the ingest record (its zip's and go.mod's h1 hashes).
    var ingested: FakeVersion {
        var copy = self
        let version = (try? ArtifactValidator.checkInfo(info, version: nil)) ?? ""
        copy.info = (try? IngestRecord(zip: DirHash.hashZip(bytes: zip), mod: DirHash.hashGoMod(mod)).stamped(info, version: version)) ?? []
        return copy
    }
}

/// Module zips built in memory (stored entries, no compression).
enum FakeZip {
    static func stored(_ files: [String: [UInt8]]) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
        var locals: [UInt8] = [], central: [UInt8] = []
        for (name, content) in files.sorted(by: { $0.key < $1.key }) {
            let nameBytes = Array(name.utf8), size = UInt32(content.count)
            let crc = content.withUnsafeBufferPointer { UInt32(CZlibCRC.crc($0)) }
            let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc) + le32(size) + le32(size) + le16(nameBytes.count) + le16(0)
            central += le32(0x0201_4B50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(UInt32(locals.count)) + nameBytes
            locals += le32(0x0403_4B50) + common + nameBytes + content
        }
        let end = le32(0x0605_4B50) + le16(0) + le16(0) + le16(files.count) + le16(files.count) + le32(UInt32(central.count))
            + le32(UInt32(locals.count)) + le16(0)
        return locals + central + end
    }
}

/// CRC-32 (IEEE), as zip entries carry it.
enum CZlibCRC {
    private static let table: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    static func crc(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        ~bytes.reduce(~UInt32(0)) { table[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }
}

/// A storage in memory. Saves are atomic; a second save of a version is a success that keeps the first bytes.
final class FakeStorage: Storage, @unchecked Sendable {
    let name: String
    var origin: String { "" }
    private let lock = NSLock()
    private var versions: [String: FakeVersion] = [:]
    private var counts: [String: Int] = [:]
    /// Failures to answer, by operation ("open", "save", "exists", "list", "remove", "catalog").
    private var failures: [String: PluginError.Code] = [:]
    /// Every `open` passes this gate first (close it to make storage slow).
    let openGate = Gate()
    /// Every `save` passes this gate first.
    let saveGate = Gate()

    init(name: String = "fake-storage") { self.name = name }

    private func key(_ module: String, _ version: String) -> String { module + "@" + version }

    private func count(_ operation: String) throws(PluginError) {
        let failure: PluginError.Code? = lock.withLock {
            counts[operation, default: 0] += 1
            return failures[operation]
        }
        if let failure { throw PluginError(code: failure, plugin: name, operation: "storage." + operation, message: "scripted \(failure)") }
    }

    /// How many times `operation` was called.
    func calls(_ operation: String) -> Int { lock.withLock { counts[operation, default: 0] } }
    private var contexts: [String: CallContext] = [:]
    private func record(_ operation: String, _ call: CallContext) { lock.withLock { contexts[operation] = call } }
    /// The context the last `operation` ("save", "exists", "list", "catalog") was called with.
    func lastCall(_ operation: String) -> CallContext? { lock.withLock { contexts[operation] } }
    /// Makes every later `operation` fail with `code` (nil: succeed again).
    func fail(_ operation: String, with code: PluginError.Code?) { lock.withLock { failures[operation] = code } }
    /// Puts a version in directly (as another instance would have).
    func put(_ module: String, _ version: String, _ files: FakeVersion) { lock.withLock { versions[key(module, version)] = files } }
    /// What is stored for module@version.
    func stored(_ module: String, _ version: String) -> FakeVersion? { lock.withLock { versions[key(module, version)] } }
    /// Every stored "module@version".
    var keys: [String] { lock.withLock { versions.keys.sorted() } }

    /// Stored "module@version" keys of modules, without this proxy's bookkeeping (quarantine marks, deletion tombstones).
    var moduleKeys: [String] { keys.filter { !ReservedModule.contains(String($0.prefix { $0 != "@" })) } }

    /// When set, `open` hands out stream blobs that end before the size they claim (a lying storage).
    private var shortBlobs = false
    func giveShortBlobs(_ on: Bool) { lock.withLock { shortBlobs = on } }

    func open(module: String, version: String, artifact: Artifact) throws(PluginError) -> Blob {
        openGate.pass()
        try count("open")
        guard let files = stored(module, version) else {
            throw PluginError(code: .notFound, plugin: name, operation: "storage.open", message: "\(module)@\(version) not stored")
        }
        let bytes = artifact == .info ? files.info : artifact == .mod ? files.mod : files.zip
        if lock.withLock({ shortBlobs }) {
            var raw = ath_blob()
            raw.fd = -1
            raw.size = UInt64(bytes.count)
            raw.read = { _, _, _ in 0 } // the end, at once
            raw.release = { _ in }
            return try Blob(taking: raw, plugin: name)
        }
        return Blob(copying: bytes)
    }

    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zipFD: Int32, zipSize: UInt64, call: CallContext) throws(PluginError) {
        saveGate.pass()
        record("save", call)
        try count("save")
        var zip = [UInt8](repeating: 0, count: Int(zipSize))
        let n = zip.withUnsafeMutableBytes { pread(zipFD, $0.baseAddress, $0.count, 0) }
        guard n == Int(zipSize) else {
            throw PluginError(code: .internal, plugin: name, operation: "storage.save", message: "short read of the zip")
        }
        lock.withLock {
            if versions[key(module, version)] == nil { versions[key(module, version)] = FakeVersion(info: info, mod: mod, zip: zip) }
        }
    }

    func exists(module: String, version: String, call: CallContext) throws(PluginError) -> Bool {
        record("exists", call)
        try count("exists")
        return stored(module, version) != nil
    }

    func list(module: String, call: CallContext) throws(PluginError) -> [String] {
        record("list", call)
        try count("list")
        let prefix = module + "@"
        return lock.withLock { versions.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
    }

    func remove(module: String, version: String, call: CallContext) throws(PluginError) {
        try count("remove")
        let removed = lock.withLock { versions.removeValue(forKey: key(module, version)) }
        if removed == nil { throw PluginError(code: .notFound, plugin: name, operation: "storage.remove", message: "not stored") }
    }

    /// Scripted answers of `url` for stored versions (nil script: no URLs, as a storage without the entry).
    private var urlScript: (@Sendable (String, String, Artifact) -> (url: String, validSeconds: Int)?)?
    func scriptURL(_ script: (@Sendable (_ module: String, _ version: String, _ artifact: Artifact) -> (url: String, validSeconds: Int)?)?) {
        lock.withLock { urlScript = script }
    }

    /// Counted as "url"; nil for a version not stored, as a plugin's ATH_NOT_FOUND.
    func url(module: String, version: String, artifact: Artifact) -> (url: String, validSeconds: Int)? {
        let script = lock.withLock {
            counts["url", default: 0] += 1
            return urlScript
        }
        guard stored(module, version) != nil else { return nil }
        return script?(module, version, artifact)
    }

    /// False: the storage acts as a plugin without a catalog entry.
    var catalogSupported: Bool {
        get { lock.withLock { hasCatalogFlag } }
        set { lock.withLock { hasCatalogFlag = newValue } }
    }
    private var hasCatalogFlag = true
    var hasCatalog: Bool { catalogSupported }

    func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginError) -> (entries: [(module: String, version: String)], next: String) {
        record("catalog", call)
        try count("catalog")
        let all = keys
        let start = token.isEmpty ? 0 : (Int(token) ?? all.count)
        let page = all.dropFirst(start).prefix(pageSize).map { key -> (module: String, version: String) in
            let at = key.lastIndex(of: "@")!
            return (String(key[..<at]), String(key[key.index(after: at)...]))
        }
        let next = start + page.count < all.count ? String(start + page.count) : ""
        return (page, next)
    }
}

/// A fetcher in memory: serves the versions it was given, counts calls, can be held at a gate or fail.
final class FakeFetcher: Fetcher, @unchecked Sendable {
    let name: String
    var origin: String { "" }
    private let lock = NSLock()
    private var versions: [String: FakeVersion] = [:]
    private var counts: [String: Int] = [:]
    private var failures: [String: PluginError.Code] = [:]
    private var running = 0
    private var mostRunning = 0
    private var fetchingThreads: Set<UInt> = []
    /// Every `fetch` passes this gate before it writes (close it to make the upstream slow).
    let fetchGate = Gate()
    /// Every `list` passes this gate first.
    let listGate = Gate()
    /// When set, a fetch or list held at its gate stops as soon as its context is cancelled (a context-aware plugin).
    var stopsWhenCancelled = false
    /// When a held fetch or list saw its context cancelled (MonotonicClock nanoseconds), with `stopsWhenCancelled`.
    var cancelledAt: UInt64? { lock.withLock { cancelSeen } }
    private var cancelSeen: UInt64?
    /// What `resolve` answers per query ("latest", a branch…) as the version it resolves to; unknown: not found.
    private var queries: [String: String] = [:]

    init(name: String = "fake-fetcher") { self.name = name }

    private func key(_ module: String, _ version: String) -> String { module + "@" + version }

    /// Serves module@version (honest files unless given).
    func add(_ module: String, _ version: String, _ files: FakeVersion? = nil) {
        lock.withLock { versions[key(module, version)] = files ?? .honest(module: module, version: version) }
    }

    /// `resolve(module, query)` answers the .info of `version` (which must have been added).
    func resolves(_ module: String, _ query: String, to version: String) { lock.withLock { queries[key(module, query)] = version } }
    func fail(_ operation: String, with code: PluginError.Code?) { lock.withLock { failures[operation] = code } }
    func calls(_ operation: String) -> Int { lock.withLock { counts[operation, default: 0] } }
    private var contexts: [String: CallContext] = [:]
    private func record(_ operation: String, _ call: CallContext) { lock.withLock { contexts[operation] = call } }
    /// The context the last `operation` ("fetch", "list", "resolve") was called with.
    func lastCall(_ operation: String) -> CallContext? { lock.withLock { contexts[operation] } }
    /// The most fetches that ran at once.
    var peakConcurrentFetches: Int { lock.withLock { mostRunning } }
    /// How many distinct threads have run a fetch.
    var fetchThreadCount: Int { lock.withLock { fetchingThreads.count } }

    private func count(_ operation: String) throws(PluginError) {
        let failure: PluginError.Code? = lock.withLock {
            counts[operation, default: 0] += 1
            return failures[operation]
        }
        if let failure { throw PluginError(code: failure, plugin: name, operation: "fetcher." + operation, message: "scripted \(failure)") }
    }

    func fetch(module: String, version: String, info: FetchSink, mod: FetchSink, zip: FetchSink, call: CallContext) throws(PluginError) {
        record("fetch", call)
        lock.withLock {
            running += 1
            mostRunning = max(mostRunning, running)
            fetchingThreads.insert(UInt(pthread_self()))
        }
        defer { lock.withLock { running -= 1 } }
        try count("fetch")
        try pass(fetchGate, call, "fetch")
        guard let files = lock.withLock({ versions[key(module, version)] }) else {
            throw PluginError(code: .notFound, plugin: name, operation: "fetcher.fetch", message: "\(module)@\(version): unknown upstream")
        }
        func write(_ bytes: [UInt8], _ sink: FetchSink) throws(PluginError) {
            guard bytes.isEmpty || bytes.withUnsafeBytes({ sink($0) }) else {
                throw PluginError(code: .invalid, plugin: name, operation: "fetcher.fetch", message: "sink refused")
            }
        }
        try write(files.info, info)
        try write(files.mod, mod)
        try write(files.zip, zip)
    }

    /// Passes `gate`, or throws `.cancelled` once `call` is cancelled while held there (with `stopsWhenCancelled`).
    private func pass(_ gate: Gate, _ call: CallContext, _ operation: String) throws(PluginError) {
        guard stopsWhenCancelled else { return gate.pass() }
        guard gate.pass(unlessCancelled: call) else {
            lock.withLock { cancelSeen = MonotonicClock.nanoseconds() }
            throw PluginError(code: .cancelled, plugin: name, operation: "fetcher." + operation, message: "cancelled")
        }
    }

    func list(module: String, call: CallContext) throws(PluginError) -> [String] {
        record("list", call)
        try count("list")
        try pass(listGate, call, "list")
        let prefix = module + "@"
        let known = lock.withLock { versions.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
        if known.isEmpty { throw PluginError(code: .notFound, plugin: name, operation: "fetcher.list", message: "\(module): unknown") }
        return known
    }

    func resolve(module: String, query: String, limit: Int, call: CallContext) throws(PluginError) -> [UInt8] {
        record("resolve", call)
        try count("resolve")
        let files: FakeVersion? = lock.withLock {
            let version = queries[key(module, query)] ?? (versions[key(module, query)] != nil ? query : nil)
            return version.flatMap { versions[key(module, $0)] }
        }
        guard let files else { throw PluginError(code: .notFound, plugin: name, operation: "fetcher.resolve", message: "\(module)@\(query): unknown") }
        return files.info
    }
}

/// A lock backend in memory (one per "deployment": share it between chains to play several processes): exclusive
/// leases per key with real waits, counted calls, scripted failures, and leases that run out (a dead holder).
final class FakeLock: Lock, @unchecked Sendable {
    let name: String
    var origin: String { "" }
    private let condition = NSCondition()
    private var holders: [String: (handle: UInt64, leaseEnd: Double)] = [:]
    private var keysByHandle: [UInt64: String] = [:]
    private var nextHandle: UInt64 = 1
    private var counts: [String: Int] = [:]
    private var failures: [String: PluginError.Code] = [:]
    private var keysSeen: Set<String> = []
    private var waiting = 0

    init(name: String = "fake-lock") { self.name = name }

    func fail(_ operation: String, with code: PluginError.Code?) { condition.withLock { failures[operation] = code } }
    func calls(_ operation: String) -> Int { condition.withLock { counts[operation, default: 0] } }
    /// Every key acquired or tried.
    var keys: Set<String> { condition.withLock { keysSeen } }
    /// Acquires waiting now.
    var waiters: Int { condition.withLock { waiting } }
    /// Keys held now.
    var held: Int { condition.withLock { holders.filter { $0.value.leaseEnd > MonotonicClock.now() }.count } }

    private func count(_ operation: String) throws(PluginError) {
        // Under the condition's lock (callers hold it).
        counts[operation, default: 0] += 1
        if let failure = failures[operation] {
            throw PluginError(code: failure, plugin: name, operation: "lock." + operation, message: "scripted \(failure)")
        }
    }

    func acquire(key: String, leaseMilliseconds: UInt32, waitMilliseconds: UInt32) throws(PluginError) -> LockAcquisition {
        condition.lock()
        defer { condition.unlock() }
        try count("acquire")
        keysSeen.insert(key)
        guard !key.isEmpty, key.utf8.count <= 1024, leaseMilliseconds > 0 else {
            throw PluginError(code: .invalid, plugin: name, operation: "lock.acquire", message: "bad key or lease")
        }
        let deadline = MonotonicClock.now() + Double(waitMilliseconds) / 1000
        waiting += 1
        defer { waiting -= 1 }
        while let holder = holders[key], holder.leaseEnd > MonotonicClock.now() {
            let now = MonotonicClock.now()
            if now >= deadline { return .busy }
            // Wakes at a release, or at the earlier of the holder's lease end and the wait's end.
            _ = condition.wait(until: Date(timeIntervalSinceNow: max(0.001, min(deadline, holder.leaseEnd) - now)))
        }
        if let stale = holders[key] { keysByHandle[stale.handle] = nil }
        let handle = nextHandle
        nextHandle += 1
        holders[key] = (handle, MonotonicClock.now() + Double(leaseMilliseconds) / 1000)
        keysByHandle[handle] = key
        return .held(handle)
    }

    func refresh(_ handle: UInt64, leaseMilliseconds: UInt32) throws(PluginError) {
        condition.lock()
        defer { condition.unlock() }
        try count("refresh")
        guard let key = keysByHandle[handle], let holder = holders[key], holder.handle == handle, holder.leaseEnd > MonotonicClock.now() else {
            throw PluginError(code: .notFound, plugin: name, operation: "lock.refresh", message: "lost")
        }
        holders[key] = (handle, MonotonicClock.now() + Double(leaseMilliseconds) / 1000)
    }

    func release(_ handle: UInt64) throws(PluginError) {
        condition.lock()
        defer { condition.unlock() }
        counts["release", default: 0] += 1
        // A scripted failure leaves the key held until its lease ends, as a backend that did not answer would.
        if let failure = failures["release"] {
            throw PluginError(code: failure, plugin: name, operation: "lock.release", message: "scripted \(failure)")
        }
        guard let key = keysByHandle.removeValue(forKey: handle) else {
            throw PluginError(code: .notFound, plugin: name, operation: "lock.release", message: "unknown handle")
        }
        if holders[key]?.handle == handle { holders[key] = nil }
        condition.broadcast()
    }

    /// Takes `key` for `seconds` as another process would, never refreshed nor released (a holder that dies).
    func holdAbandoned(_ key: String, seconds: Double) {
        condition.withLock {
            holders[key] = (nextHandle, MonotonicClock.now() + seconds)
            nextHandle += 1
        }
    }
}
