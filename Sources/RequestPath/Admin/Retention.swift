import FoundationEssentials
import Glibc
import GoModule
import JSON
import PluginHost
import Synchronization

/// Runs the manifest's retention policy over storage: lists what is stored (the catalog), reads the last
/// downloads (the access store, after flushing this instance's marks), plans (`RetentionPlan`) and, unless a
/// dry run, removes through `AdminDelete.remove`, as `/admin/delete` does, so the caches forget.
///
/// A version without a recorded download counts as downloaded when retention first saw it, and that is
/// recorded: turning retention on never evicts by age what was stored before, and never early.
/// One run at a time per instance; blocks on storage (runs on the pool or the schedule's thread).
package final class Retention: Sendable {
    package let settings: RetentionSettings
    private let download: DownloadProtocol
    private let store: any AccessStore
    private let recorder: AccessRecorder?
    private let wallClock: @Sendable () -> Int64
    private let running = Atomic<Bool>(false)
    /// Bytes of versions sized before: stored versions are immutable, so each is opened for its size once.
    private let sizes = Mutex<[VersionID: UInt64]>([:])
    private let pageSize: Int

    /// What one run found and did.
    package struct Report {
        package var dryRun: Bool
        package var now: Int64
        package var stored: Int
        /// Versions seen for the first time without a recorded download (their clock starts now).
        package var firstSeen: Int
        package var plan: RetentionPlan
        package var deleted: [VersionID] = []
        package var failed: [(VersionID, String)] = []
    }

    package init(settings: RetentionSettings, download: DownloadProtocol, store: any AccessStore, recorder: AccessRecorder?,
                 wallClock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }, pageSize: Int = 1000) {
        (self.settings, self.download, self.store, self.recorder, self.wallClock, self.pageSize) =
            (settings, download, store, recorder, wallClock, pageSize)
    }

    /// Whether `module` is never evicted: a keep glob, or a private rule (its only source is private, so the
    /// copy here may be the only one outside it).
    package func protects(_ module: String) -> Bool {
        settings.keeps(module) || download.policy.route(module).isPrivate
    }

    /// One run; `dryRun` only plans.
    package func run(dryRun: Bool) throws(AdminError) -> Report {
        let storage = download.storage
        guard storage.hasCatalog else {
            throw .notSupported("storage \(storage.name) has no catalog: retention cannot list what is stored")
        }
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw AdminError(status: 409, result: "conflict", message: "a retention run is in progress")
        }
        defer { running.store(false, ordering: .releasing) }
        do {
            try recorder?.flush()
            let now = wallClock()
            var accesses = try store.lastAccesses()
            // Quarantine marks and deletion tombstones are versions of reserved modules: proxy state, never evicted nor counted.
            let stored = try catalog().filter { !ReservedModule.contains($0.module) }
            let unseen = stored.filter { accesses[$0] == nil }
            try store.append(unseen, at: now)
            for id in unseen { accesses[id] = now }
            var candidates: [RetentionPlan.Candidate] = []
            for id in stored {
                var candidate = RetentionPlan.Candidate(id, lastAccess: accesses[id] ?? now, protected: protects(id.module))
                if settings.maxTotalBytes != nil {
                    // Gone since the catalog was read (another instance deleted it): nothing to plan.
                    guard let bytes = try size(id) else { continue }
                    candidate.bytes = bytes
                }
                candidates.append(candidate)
            }
            var plan = RetentionPlan(candidates, maxAgeDays: settings.maxAgeDays, maxTotalBytes: settings.maxTotalBytes, now: now)
            for index in plan.evictions.indices where plan.evictions[index].bytes == nil {
                plan.evictions[index].bytes = try size(plan.evictions[index].id)
            }
            var report = Report(dryRun: dryRun, now: now, stored: stored.count, firstSeen: unseen.count, plan: plan)
            if !dryRun {
                let remover = AdminDelete(storage: storage, cache: download.cache, lists: download.lists, deletions: download.deletions)
                (report.deleted, report.failed) = remover.remove(plan.evictions.map(\.id))
                let gone = Set(report.deleted)
                for reason in [RetentionPlan.Reason.age, .lru] {
                    let count = plan.evictions.filter { $0.reason == reason && gone.contains($0.id) }.count
                    if count > 0 { Metrics.shared.retentionEvicted(reason: reason.rawValue, count: count) }
                }
            }
            let kept = Set(stored).subtracting(report.deleted)
            sizes.withLock { sizes in sizes = sizes.filter { kept.contains($0.key) } }
            try store.compact(keeping: kept)
            return report
        } catch let error as AdminError {
            throw error
        } catch let error as AccessStoreError {
            throw .failed("access journal: \(error.description)")
        } catch {
            throw .failed("storage: \(error)")
        }
    }

    /// Every stored version, through the catalog.
    private func catalog() throws -> [VersionID] {
        var found: [VersionID] = [], token = ""
        repeat {
            let page = try download.storage.catalog(token: token, pageSize: pageSize)
            found += page.entries.map { VersionID($0.module, $0.version) }
            token = page.next
        } while !token.isEmpty
        return found
    }

    /// The bytes of a version's three files (nil: no longer stored), from storage's blob sizes.
    private func size(_ id: VersionID) throws(PluginError) -> UInt64? {
        if let known = sizes.withLock({ $0[id] }) { return known }
        var total: UInt64 = 0
        for artifact in [Artifact.info, .mod, .zip] {
            let blob: Blob
            do {
                blob = try download.storage.open(module: id.module, version: id.version, artifact: artifact)
            } catch {
                if error.code == .notFound { return nil }
                throw error
            }
            total += blob.size
        }
        sizes.withLock { $0[id] = total }
        return total
    }
}

extension Retention.Report {
    /// The JSON answer of `/admin/retention`: what goes (or went) and why, per version.
    package var json: JSONValue {
        func number(_ value: UInt64?) -> JSONValue { value.map { .number(JSONNumber(literal: String($0))) } ?? .null }
        func item(_ id: VersionID) -> JSONValue { .object(JSONObject([("module", .string(id.module)), ("version", .string(id.version))])) }
        let evictions = plan.evictions.map { eviction in
            JSONValue.object(JSONObject([("module", .string(eviction.id.module)), ("version", .string(eviction.id.version)),
                                         ("reason", .string(eviction.reason.rawValue)),
                                         ("lastAccess", .string(PseudoVersion.rfc3339(unixSeconds: eviction.lastAccess))),
                                         ("bytes", number(eviction.bytes))]))
        }
        var fields: [(String, JSONValue)] = [
            ("dryRun", .bool(dryRun)), ("now", .string(PseudoVersion.rfc3339(unixSeconds: now))),
            ("stored", .number(JSONNumber(stored))), ("protected", .number(JSONNumber(plan.protectedCount))),
            ("firstSeen", .number(JSONNumber(firstSeen))), ("evictions", .array(evictions)),
            ("bytesBefore", number(plan.bytesBefore)), ("bytesAfter", number(plan.bytesAfter)), ("overBudget", .bool(plan.overBudget)),
        ]
        if !dryRun {
            fields.append(("deleted", .array(deleted.map(item))))
            fields.append(("failed", .array(failed.map { id, error in
                .object(JSONObject([("module", .string(id.module)), ("version", .string(id.version)), ("error", .string(error))]))
            })))
        }
        return .object(JSONObject(fields))
    }

    /// The evicted bytes (those known).
    package var evictedBytes: UInt64 { plan.evictions.reduce(0) { $0 + ($1.bytes ?? 0) } }
}
