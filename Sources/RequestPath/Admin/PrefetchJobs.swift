import Basics
import FoundationEssentials
import Glibc

/// The prefetch jobs this instance knows, in memory only: at most `capacity`, the oldest finished ones dropped to make
/// room. When every kept job is still running, a new one is refused (503) rather than forgetting one in progress.
package final class PrefetchJobs: @unchecked Sendable {
    /// The process's jobs: a reload (SIGHUP) builds a new AdminAPI, and a job started before it must stay visible.
    package static let shared = PrefetchJobs(capacity: AdminSettings().maxJobs)

    private let lock = PosixLock()
    private var kept: Int
    /// Oldest first.
    private var jobs: [PrefetchJob] = []

    package init(capacity: Int) { kept = max(1, capacity) }

    /// Jobs kept at most (the manifest's `admin.maxJobs`, set again by each reload).
    package var capacity: Int {
        get { lock.withLock { kept } }
        set { lock.withLock { kept = max(1, newValue) } }
    }

    /// Keeps `job`, dropping the oldest finished job when full; false when all kept jobs are running.
    package func add(_ job: PrefetchJob) -> Bool {
        lock.withLock {
            while jobs.count >= kept {
                guard let oldest = jobs.firstIndex(where: \.isFinished) else { return false }
                jobs.remove(at: oldest)
            }
            jobs.append(job)
            return true
        }
    }

    package func job(_ id: String) -> PrefetchJob? { lock.withLock { jobs.first { $0.id == id } } }

    /// A new job id: 16 random hex digits (ids are not secrets, the token guards them; random so they never repeat
    /// across restarts, when an old id from a script must be 404, not someone else's job).
    package static func newID() -> String {
        var bytes = [UInt8](repeating: 0, count: 8)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        return bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
