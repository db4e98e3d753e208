import HostSupport
import PluginHost
import Foundation

/// Remembers fetchers' list and @latest answers for a while, and keeps them (stale) for when the
/// fetcher fails. Keyed by fetcher name and module. Bounded: the oldest entries go first.
package final class ListCache: @unchecked Sendable {
    /// A cached answer and when it was fetched (monotonic seconds).
    package struct Entry {
        package var value: [UInt8]
        package var fetchedAt: Double
    }

    package let ttl: Double
    package let maxEntries: Int
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var order: [String] = []

    package init(ttl: Double, maxEntries: Int = 100_000) {
        self.ttl = ttl
        self.maxEntries = maxEntries
    }

    /// A fresh answer (younger than the TTL), if any.
    package func fresh(_ key: String) -> [UInt8]? {
        lock.withLock {
            guard let entry = entries[key], MonotonicClock.now() - entry.fetchedAt < ttl else { return nil }
            return entry.value
        }
    }

    /// Any answer, however old.
    package func stale(_ key: String) -> [UInt8]? {
        lock.withLock { entries[key]?.value }
    }

    package func store(_ key: String, _ value: [UInt8]) {
        lock.withLock {
            if entries[key] == nil {
                order.append(key)
                if order.count > maxEntries {
                    let evicted = order.removeFirst()
                    entries[evicted] = nil
                }
            }
            entries[key] = Entry(value: value, fetchedAt: MonotonicClock.now())
        }
    }
}

/// Small stored files kept in memory: a version's .info, .mod and zip never change once stored (the
/// protocol requires it), so a hit needs no storage call at all. Bounded in total bytes; FIFO eviction.
package final class ArtifactCache: @unchecked Sendable {
    package let maxBytes: Int
    package let maxFileBytes: Int
    private let lock = NSLock()
    private var entries: [String: [UInt8]] = [:]
    private var order: [String] = []
    private var head = 0
    private var bytes = 0

    package init(maxBytes: Int, maxFileBytes: Int) {
        self.maxBytes = maxBytes
        self.maxFileBytes = min(maxFileBytes, maxBytes)
    }

    /// Bytes of file content held now (the athens_cache_bytes gauge).
    package var heldBytes: Int { lock.withLock { bytes } }

    package func get(_ key: String) -> [UInt8]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    package func put(_ key: String, _ value: [UInt8]) {
        guard value.count <= maxFileBytes, maxBytes > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        guard entries[key] == nil else { return }
        entries[key] = value
        order.append(key)
        bytes += value.count
        while bytes > maxBytes, head < order.count {
            if let evicted = entries.removeValue(forKey: order[head]) { bytes -= evicted.count }
            head += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Forgets a version's files (after a delete).
    package func remove(prefix key: String) {
        lock.lock()
        defer { lock.unlock() }
        for artifact in [".info", ".mod", ".zip"] {
            if let value = entries.removeValue(forKey: key + artifact) { bytes -= value.count }
        }
    }
}
