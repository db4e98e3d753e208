/// What one retention run removes, decided from the stored versions, their last downloads and the policy.
/// Pure: the runner (`Retention`) gathers the inputs from storage and the access journal, and applies it.
package struct RetentionPlan: Equatable {
    /// Why a version goes.
    package enum Reason: String, Sendable {
        /// Not downloaded for more than `maxAgeDays`.
        case age
        /// The least recently downloaded while the store was over `maxTotalBytes`.
        case lru
    }

    /// One stored version as the plan sees it.
    package struct Candidate: Equatable {
        package var id: VersionID
        /// Its last download (Unix seconds).
        package var lastAccess: Int64
        /// Its three files' bytes; nil when not asked for (no byte budget).
        package var bytes: UInt64?
        /// A keep glob or a private-only route: never evicted.
        package var protected: Bool

        package init(_ id: VersionID, lastAccess: Int64, bytes: UInt64? = nil, protected: Bool = false) {
            (self.id, self.lastAccess, self.bytes, self.protected) = (id, lastAccess, bytes, protected)
        }
    }

    /// One version to remove.
    package struct Eviction: Equatable {
        package var id: VersionID
        package var reason: Reason
        package var lastAccess: Int64
        package var bytes: UInt64?
    }

    /// In the order they go: by age first, then least recently downloaded first.
    package var evictions: [Eviction] = []
    /// Versions a keep glob or a private rule protects.
    package var protectedCount = 0
    /// Bytes stored before and after the evictions; nil without a byte budget.
    package var bytesBefore: UInt64?
    package var bytesAfter: UInt64?
    /// Still over the byte budget after every unprotected version went (what is protected alone exceeds it).
    package var overBudget = false

    /// The plan for `candidates` at `now` (Unix seconds). With a byte budget every candidate must carry its bytes.
    package init(_ candidates: [Candidate], maxAgeDays: Int?, maxTotalBytes: UInt64?, now: Int64) {
        var remaining: [Candidate] = []
        for candidate in candidates {
            if candidate.protected {
                protectedCount += 1
                remaining.append(candidate)
            } else if let days = maxAgeDays, now - candidate.lastAccess > Int64(days) * 86_400 {
                evictions.append(Eviction(id: candidate.id, reason: .age, lastAccess: candidate.lastAccess, bytes: candidate.bytes))
            } else {
                remaining.append(candidate)
            }
        }
        evictions.sort { ($0.lastAccess, $0.id) < ($1.lastAccess, $1.id) }
        guard let budget = maxTotalBytes else { return }
        bytesBefore = candidates.reduce(0) { $0 + ($1.bytes ?? 0) }
        var total = remaining.reduce(0) { $0 + ($1.bytes ?? 0) }
        // Least recently downloaded first; ties (e.g. never downloaded, first seen together) by path and version.
        for candidate in remaining.filter({ !$0.protected }).sorted(by: { ($0.lastAccess, $0.id) < ($1.lastAccess, $1.id) }) {
            guard total > budget else { break }
            evictions.append(Eviction(id: candidate.id, reason: .lru, lastAccess: candidate.lastAccess, bytes: candidate.bytes))
            total -= candidate.bytes ?? 0
        }
        bytesAfter = total
        overBudget = total > budget
    }
}
