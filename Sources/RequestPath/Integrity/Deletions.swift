import Digests
import FoundationEssentials
import Glibc
import HostSupport
import JSON
import PluginHost

/// Versions removed from storage by any instance (admin delete, retention), so every instance's memory caches forget
/// them: the artifact cache keeps stored files with no expiry, and would otherwise serve a version deleted by another
/// instance on the same storage for ever.
///
/// Each removal writes a tombstone (StoredMarks): a version of the reserved module `athens.deleted` named
/// `v0.0.0-d<Unix seconds>-<first 128 bits of SHA-256 of the versions, hex>`, whose `.info` lists up to `batch` deleted
/// versions. Every instance lists the tombstones at most every `refreshSeconds` (the list-cache TTL) while requests
/// arrive, on the background pool, and drops the cache entries of the versions in tombstones it sees for the first time.
/// A tombstone is seen once per instance, so a version fetched again after its delete stays cached. Tombstones older
/// than `lifetime` (24 h, or 100 TTLs when that is longer) are removed by whoever lists them; an instance that has not
/// listed for half that long may have missed some, so it drops its whole artifact cache instead.
package final class Deletions: Sendable {
    /// The reserved module that holds the tombstones.
    package static let module = ReservedModule.deletions
    /// Versions per tombstone (one `save` per batch of a large delete; keeps each `.info` small).
    package static let batch = 256

    /// One tombstone: versions removed together, and when (Unix seconds).
    package struct Tombstone: Equatable, Sendable {
        package var versions: [VersionID]
        package var time: Int64
    }

    /// Seconds a tombstone is kept.
    package let lifetime: Double
    private let marks: StoredMarks<Tombstone>
    private let storage: any Storage
    private let wallClock: @Sendable () -> Double

    package init(storage: any Storage, refreshSeconds: Double, pool: WorkerPool?, cache: ArtifactCache, lists: ListCache,
                 wallClock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        let lifetime = max(24 * 3600, 100 * refreshSeconds)
        self.lifetime = lifetime
        self.storage = storage
        self.wallClock = wallClock
        marks = StoredMarks(module: Self.module, storage: storage, refreshSeconds: refreshSeconds, pool: pool, decode: Self.decode,
                            expired: { marker in Self.time(of: marker).map { wallClock() - Double($0) > lifetime } ?? false },
                            onRefresh: { new, sinceLastListing in
                                if sinceLastListing > lifetime / 2 { cache.forgetAll() }
                                let versions = new.flatMap(\.versions)
                                for id in versions { cache.forget(module: id.module, version: id.version) }
                                for module in Set(versions.map(\.module)) { lists.forget(module: module) }
                            })
    }

    /// Schedules a re-read of the tombstones when they are older than the TTL (quick: called by requests).
    package func poke() { _ = marks.current() }

    /// Reads the tombstones now (blocking), forgetting what new ones name.
    package func refresh() throws(PluginError) { try marks.refresh() }

    /// The tombstones known now (no refresh).
    package var known: [Tombstone] { Array(marks.snapshot.values) }

    /// Records (blocking) that `ids` were removed from storage, in tombstones of at most `batch` versions.
    package func record(_ ids: [VersionID]) throws(PluginError) {
        let time = Int64(wallClock()), stamp = StoredMarks<Tombstone>.now()
        for start in stride(from: 0, to: ids.count, by: Self.batch) {
            let versions = Array(ids[start..<min(start + Self.batch, ids.count)])
            let marker = Self.marker(time: time, versions: versions)
            let items = versions.map { JSONValue.object(JSONObject([("Module", .string($0.module)), ("Version", .string($0.version))])) }
            do {
                try marks.save(marker: marker, mark: Tombstone(versions: versions, time: time), content: ("Deleted", .array(items)), time: stamp)
            } catch {
                // The same versions deleted twice in one second: one tombstone says it.
                guard (try? storage.exists(module: Self.module, version: marker)) == true else { throw error }
            }
        }
    }

    /// The marker version of a tombstone.
    package static func marker(time: Int64, versions: [VersionID]) -> String {
        "v0.0.0-d\(time)-" + Hex.encode(SHA256.hash(Array(versions.map(\.description).joined(separator: "\n").utf8)).prefix(16))
    }

    /// The time a marker's name carries, nil when it is no tombstone's name.
    static func time(of marker: String) -> Int64? {
        guard marker.hasPrefix("v0.0.0-d") else { return nil }
        return Int64(marker.dropFirst(8).prefix { $0 != "-" })
    }

    private static func decode(_ marker: String, _ info: JSONObject) -> Tombstone? {
        guard let time = time(of: marker), case .array(let items)? = info["Deleted"] else { return nil }
        var versions: [VersionID] = []
        for item in items {
            guard case .object(let fields) = item, case .string(let module)? = fields["Module"], case .string(let version)? = fields["Version"]
            else { return nil }
            versions.append(VersionID(module, version))
        }
        guard Self.marker(time: time, versions: versions) == marker else { return nil }
        return Tombstone(versions: versions, time: time)
    }
}
