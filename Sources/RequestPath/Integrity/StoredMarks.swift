import GoModule
import Basics
import FoundationEssentials
import Glibc
import HostSupport
import JSON
import PluginHost
import Synchronization

/// The reserved modules that hold this proxy's own bookkeeping in storage: never served, fetched, listed in
/// `/catalog` nor evicted by retention.
package enum ReservedModule {
    /// Quarantine marks (Quarantine).
    package static let quarantine = "athens.quarantine"
    /// Deletion tombstones (Deletions).
    package static let deletions = "athens.deleted"

    /// Whether `module` is one of them (requests for it are 404: marks are not for clients).
    package static func contains(_ module: String) -> Bool {
        // Lengths first (O(1) on native strings): this runs for every download request, and a full comparison with
        // a non-small literal costs ~80 instructions.
        let count = module.utf8.count
        return (count == quarantine.utf8.count && module == quarantine) || (count == deletions.utf8.count && module == deletions)
    }
}

/// Marks kept as versions of a reserved module in the storage itself, so they survive a restart and every instance
/// on that storage reads them, with the existing ABI only (`save`, `remove`, `list`, `open`): a mark's `.info`
/// carries its content, its `.mod` names the reserved module, its zip is empty. Each instance lists the marker
/// versions at most every `refreshSeconds` while requests arrive (on the background pool: requests read memory
/// only) and opens each marker once (a marker never changes). One mechanism for Quarantine and Deletions.
package final class StoredMarks<Mark: Sendable>: Sendable {
    /// The reserved module that holds the markers.
    package let module: String

    private struct State {
        /// Marks read or saved so far, by marker version.
        var byMarker: [String: Mark] = [:]
        var refreshedAt: Double = -.infinity
        /// When the markers were last listed successfully (monotonic; the start at first).
        var listedAt: Double
        var refreshing = false
        /// Bumped by every save and remove here: a refresh that listed before one of them does not undo it.
        var generation = 0
    }

    private let storage: any Storage
    private let refreshSeconds: Double
    private let pool: WorkerPool?
    private let decode: @Sendable (_ marker: String, _ info: JSONObject) -> Mark?
    private let expired: @Sendable (_ marker: String) -> Bool
    private let onRefresh: @Sendable (_ new: [Mark], _ sinceLastListing: Double) -> Void
    private let state: Mutex<State>

    /// `decode` reads a marker's `.info` (nil: not a valid marker, skipped); `expired` names markers removed from
    /// storage unread by whoever lists them; `onRefresh` is told, after each successful refresh, the marks read for
    /// the first time and the seconds since the previous successful listing.
    package init(module: String, storage: any Storage, refreshSeconds: Double, pool: WorkerPool?,
                 decode: @escaping @Sendable (_ marker: String, _ info: JSONObject) -> Mark?,
                 expired: @escaping @Sendable (_ marker: String) -> Bool = { _ in false },
                 onRefresh: @escaping @Sendable (_ new: [Mark], _ sinceLastListing: Double) -> Void = { _, _ in }) {
        self.module = module
        self.storage = storage
        self.refreshSeconds = refreshSeconds
        self.pool = pool
        self.decode = decode
        self.expired = expired
        self.onRefresh = onRefresh
        state = Mutex(State(listedAt: MonotonicClock.now()))
    }

    /// The marks known now, by marker. Quick (memory); schedules a refresh when they are older than allowed.
    package func current() -> [String: Mark] {
        let (marks, stale) = state.withLock { state -> ([String: Mark], Bool) in
            let stale = !state.refreshing && MonotonicClock.now() - state.refreshedAt >= refreshSeconds
            if stale { state.refreshing = true }
            return (state.byMarker, stale)
        }
        if stale, !(pool?.submit({ [self] in try? refresh() }) ?? false) {
            state.withLock { $0.refreshing = false }
        }
        return marks
    }

    /// The mark of `marker` as known now (no refresh).
    package func known(_ marker: String) -> Mark? { state.withLock { $0.byMarker[marker] } }

    /// Every mark known now, by marker (no refresh).
    package var snapshot: [String: Mark] { state.withLock { $0.byMarker } }

    /// Lists the markers and reads the new ones (blocking). Keeps the previous marks when storage fails.
    package func refresh() throws(PluginError) {
        // A failed refresh waits its turn too: a storage that is down is not asked on every request.
        defer { state.withLock { $0.refreshing = false; $0.refreshedAt = MonotonicClock.now() } }
        var markers: [String]
        do {
            markers = try storage.list(module: module)
        } catch where error.code == .notFound {
            markers = []  // nothing was ever marked on this storage
        }
        let now = MonotonicClock.now()
        for marker in markers where expired(marker) { try? storage.remove(module: module, version: marker) }
        markers.removeAll(where: expired)
        let (known, generation) = state.withLock { ($0.byMarker, $0.generation) }
        var byMarker: [String: Mark] = [:], new: [Mark] = []
        for marker in markers {
            if let mark = known[marker] {
                byMarker[marker] = mark
            } else if let mark = try? read(marker) {
                byMarker[marker] = mark
                new.append(mark)
            }
        }
        let since = state.withLock { state -> Double? in
            guard state.generation == generation else { return nil }  // the next refresh lists again
            state.byMarker = byMarker
            defer { state.listedAt = now }
            return now - state.listedAt
        }
        if let since { onRefresh(new, since) }
    }

    /// Saves `mark` under `marker` (blocking), with `content` in its `.info` beside the marker's version and time.
    package func save(marker: String, mark: Mark, content: (key: String, value: JSONValue), time: String) throws(PluginError) {
        let info = JSONObject([("Version", .string(marker)), ("Time", .string(time)), content])
        let spool = try? Spool(directory: temporaryDirectory())
        guard let spool, Self.emptyZip.withUnsafeBytes({ spool.append($0) }) else {
            throw PluginError(code: .unavailable, plugin: "host", operation: module, message: "cannot spool the marker", library: "")
        }
        try storage.save(module: module, version: marker, info: Array(JSONValue.object(info).text().utf8),
                         mod: Array("module \(module)\n".utf8), zipFD: spool.fd, zipSize: UInt64(Self.emptyZip.count))
        state.withLock { state in
            state.byMarker[marker] = mark
            state.generation += 1
        }
    }

    /// Removes `marker` (blocking); false when neither storage nor memory had it.
    package func remove(marker: String) throws(PluginError) -> Bool {
        var found = true
        do {
            try storage.remove(module: module, version: marker)
        } catch where error.code == .notFound {
            found = false
        }
        let known = state.withLock { state in
            state.generation += 1
            return state.byMarker.removeValue(forKey: marker) != nil
        }
        return found || known
    }

    private func read(_ marker: String) throws -> Mark? {
        let blob = try storage.open(module: module, version: marker, artifact: .info)
        guard let bytes = blob.readAll(limit: 1 << 20), case .object(let info)? = try? JSONReader.parse(bytes) else { return nil }
        return decode(marker, info)
    }

    /// A zip with no entries (its end-of-central-directory record alone): a marker's zip.
    private static var emptyZip: [UInt8] { [0x50, 0x4B, 0x05, 0x06] + [UInt8](repeating: 0, count: 18) }

    /// Now as RFC 3339, a mark's time.
    package static func now() -> String {
        PseudoVersion.rfc3339(unixSeconds: Int64(time(nil)))
    }
}
