import Basics
import FoundationEssentials
import Glibc

/// Small stored files kept in memory: a version's .info, .mod and zip never change once stored (the
/// protocol requires it), so a hit needs no storage call at all. Bounded in total bytes; FIFO eviction.
package final class ArtifactCache: @unchecked Sendable {
    package let maxBytes: Int
    package let maxFileBytes: Int
    private let lock = PosixLock()
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

    /// Drops a version's files (after an admin delete: stored files are immutable only until an operator removes them).
    /// Their keys stay in the FIFO order and are skipped when they come up (an eviction finds nothing).
    package func forget(module: String, version: String) {
        lock.withLock {
            for artifact in [".info", ".mod", ".zip"] {
                if let dropped = entries.removeValue(forKey: module + "@" + version + artifact) { bytes -= dropped.count }
            }
        }
    }

    /// Drops every file (an instance that may have missed deletions made elsewhere: see Deletions).
    package func forgetAll() {
        lock.withLock {
            entries = [:]
            order = []
            head = 0
            bytes = 0
        }
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
}
