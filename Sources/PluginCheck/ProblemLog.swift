import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc

/// A list of contract problems seen during a run, shared by the threads of the checks.
package final class ProblemLog: @unchecked Sendable {
    private let lock = PosixLock()
    private var problems: [String] = []
    private var total = 0

    /// Keeps the first few problems word for word and counts the rest.
    package func add(_ problem: String) {
        lock.withLock {
            total += 1
            if problems.count < 5 { problems.append(problem) }
        }
    }

    /// How many problems were added.
    package var count: Int { lock.withLock { total } }

    /// The kept problems, with a count of the others; nil when there were none.
    package var summary: String? {
        lock.withLock {
            guard total > 0 else { return nil }
            let more = total - problems.count
            return problems.joined(separator: "; ") + (more > 0 ? "; and \(more) more" : "")
        }
    }
}
