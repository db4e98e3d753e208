import Digests
import Foundation
import HostSupport
import JSON
import PluginHost
import Synchronization

/// Versions an operator has quarantined: each answers `410 Gone` (the body says why) until released or deleted.
///
/// Marks live in the storage itself, so they survive a restart and every instance on that storage sees them: each
/// mark is a version of the reserved module `athens.quarantine` (never served or fetched), named
/// `v0.0.0-q<first 128 bits of SHA-256("module@version"), hex>`, whose `.info` carries the module, version, reason
/// and time. Saving or removing that version is the mark's whole life cycle, with the existing ABI (`save`,
/// `remove`, `list`, `open`). Each instance reads the marks with one `list` at start and again at most every
/// `refreshSeconds` (the list-cache TTL) while requests arrive: a mark made by another instance is seen within that
/// time, one made here at once. The refresh runs on the background pool; requests consult memory only.
package final class Quarantine: Sendable {
    /// The reserved module that holds the marks.
    package static let module = "athens.quarantine"

    /// One quarantined version.
    package struct Mark: Equatable, Sendable {
        package var module: String
        package var version: String
        package var reason: String
        /// RFC 3339, when it was marked.
        package var time: String
    }

    private struct State {
        /// By "module@version".
        var marks: [String: Mark] = [:]
        /// Marks read so far, by marker version: a mark never changes, so each is opened once.
        var byMarker: [String: Mark] = [:]
        var refreshedAt: Double = -.infinity
        var refreshing = false
        /// Bumped by every add and release here: a refresh that listed before one of them does not undo it.
        var generation = 0
    }

    private let storage: any Storage
    private let refreshSeconds: Double
    private let pool: WorkerPool?
    private let state = Mutex(State())

    package init(storage: any Storage, refreshSeconds: Double, pool: WorkerPool?) {
        self.storage = storage
        self.refreshSeconds = refreshSeconds
        self.pool = pool
    }

    /// Whether `module` is the reserved one (requests for it are 404: marks are not for clients).
    package static func isReserved(_ module: String) -> Bool { module == Self.module }

    /// The mark of module@version, if any. Quick (memory); schedules a refresh when the marks are older than allowed.
    package func mark(module: String, version: String) -> Mark? {
        let (mark, stale) = state.withLock { state -> (Mark?, Bool) in
            let stale = !state.refreshing && MonotonicClock.now() - state.refreshedAt >= refreshSeconds
            if stale { state.refreshing = true }
            return (state.marks.isEmpty ? nil : state.marks[module + "@" + version], stale)
        }
        if stale, !(pool?.submit({ [self] in try? refresh() }) ?? false) {
            state.withLock { $0.refreshing = false }
        }
        return mark
    }

    /// The `410` a quarantined version answers.
    package static func gone(_ mark: Mark) -> Response {
        .text(410, "gone: \(mark.module)@\(mark.version) is quarantined by this proxy since \(mark.time): \(mark.reason) "
            + "(an operator releases it with POST /admin/quarantine or deletes it)")
    }

    /// Every mark, in module then version order.
    package var all: [Mark] {
        state.withLock { Array($0.marks.values) }.sorted { ($0.module, $0.version) < ($1.module, $1.version) }
    }

    /// Reads the marks from storage (blocking). Keeps the previous ones when storage fails.
    package func refresh() throws(PluginError) {
        // A failed refresh waits its turn too: a storage that is down is not asked on every request.
        defer { state.withLock { $0.refreshing = false; $0.refreshedAt = MonotonicClock.now() } }
        let markers: [String]
        do {
            markers = try storage.list(module: Self.module)
        } catch where error.code == .notFound {
            markers = []  // nothing was ever marked on this storage
        }
        let (known, generation) = state.withLock { ($0.byMarker, $0.generation) }
        var byMarker: [String: Mark] = [:]
        for marker in markers {
            if let mark = known[marker] {
                byMarker[marker] = mark
            } else if let mark = try? read(marker) {
                byMarker[marker] = mark
            }
        }
        state.withLock { state in
            guard state.generation == generation else { return }  // the next refresh lists again
            state.byMarker = byMarker
            state.marks = Dictionary(byMarker.values.map { ($0.module + "@" + $0.version, $0) }) { a, _ in a }
        }
    }

    /// Marks module@version (blocking: saves its marker). Marking it again keeps the first mark.
    package func add(module: String, version: String, reason: String) throws(PluginError) -> Mark {
        if let mark = state.withLock({ $0.marks[module + "@" + version] }) { return mark }
        let marker = Self.marker(module: module, version: version)
        let mark = Mark(module: module, version: version, reason: reason, time: Self.now())
        let info = JSONObject([("Version", .string(marker)), ("Time", .string(mark.time)),
                               ("Quarantine", .object(JSONObject([("Module", .string(module)), ("Version", .string(version)),
                                                                  ("Reason", .string(reason))])))])
        let spool = try? Spool(directory: NSTemporaryDirectory())
        guard let spool, Self.emptyZip.withUnsafeBytes({ spool.append($0) }) else {
            throw PluginError(code: .unavailable, plugin: "host", operation: "quarantine", message: "cannot spool the marker", library: "")
        }
        try storage.save(module: Self.module, version: marker, info: Array(JSONValue.object(info).text().utf8),
                         mod: Array("module \(Self.module)\n".utf8), zipFD: spool.fd, zipSize: UInt64(Self.emptyZip.count))
        state.withLock { state in
            state.byMarker[marker] = mark
            state.marks[module + "@" + version] = mark
            state.generation += 1
        }
        return mark
    }

    /// Releases module@version (blocking: removes its marker); false when it was not quarantined.
    package func release(module: String, version: String) throws(PluginError) -> Bool {
        let marker = Self.marker(module: module, version: version)
        var found = true
        do {
            try storage.remove(module: Self.module, version: marker)
        } catch where error.code == .notFound {
            found = false
        }
        let known = state.withLock { state in
            state.generation += 1
            state.byMarker[marker] = nil
            return state.marks.removeValue(forKey: module + "@" + version) != nil
        }
        return found || known
    }

    /// The marker version of module@version.
    static func marker(module: String, version: String) -> String {
        "v0.0.0-q" + Hex.encode(SHA256.hash(Array((module + "@" + version).utf8)).prefix(16))
    }

    private func read(_ marker: String) throws -> Mark? {
        let blob = try storage.open(module: Self.module, version: marker, artifact: .info)
        guard let bytes = blob.readAll(limit: 1 << 16), case .object(let info)? = try? JSONReader.parse(bytes),
              case .object(let q)? = info["Quarantine"], case .string(let module)? = q["Module"], case .string(let version)? = q["Version"],
              Self.marker(module: module, version: version) == marker
        else { return nil }
        let reason = if case .string(let text)? = q["Reason"] { text } else { "" }
        let time = if case .string(let text)? = info["Time"] { text } else { "" }
        return Mark(module: module, version: version, reason: reason, time: time)
    }

    /// A zip with no entries (its end-of-central-directory record alone): the marker's zip.
    private static let emptyZip: [UInt8] = [0x50, 0x4B, 0x05, 0x06] + [UInt8](repeating: 0, count: 18)

    private static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}
