import Basics
import HostSupport
import FoundationEssentials
import Glibc

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
    private let lock = PosixLock()
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

    /// Drops every answer about `module` (list and @latest of each fetcher: keys end in NUL + module), after an admin delete.
    package func forget(module: String) {
        let suffix = "\u{0}" + module
        lock.withLock {
            let keys = entries.keys.filter { $0.hasSuffix(suffix) }
            for key in keys { entries[key] = nil }
            if !keys.isEmpty { order.removeAll { keys.contains($0) } }
        }
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
