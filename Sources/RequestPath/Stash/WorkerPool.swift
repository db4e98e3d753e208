import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc

/// A fixed set of threads running blocking jobs (plugin calls) from a bounded queue.
///
/// Plugin calls block, sometimes for minutes (a git clone, a slow upstream), so they never run on the
/// event loops or on Swift's cooperative pool (one thread per core). A full queue refuses at once
/// (the caller answers 503), so the server never hangs on an overload.
///
/// A job is dropped from the queue as soon as a worker takes it, so a finished job (and whatever it
/// captured: a download protocol, plugin instances, caches) is freed when it returns. Workers hold the
/// pool until `retire()` lets them end; after that the last reference frees it.
///
/// Invariant: `queue.count - head <= max(capacity, threadCount)`.
package final class WorkerPool: @unchecked Sendable {
    package typealias Job = @Sendable () -> Void

    package let name: String
    package let threadCount: Int
    package let capacity: Int
    private let condition = PosixCondition()
    private var queue: [Job?] = []
    private var head = 0
    private var busy = 0
    private var retired = false
    /// Jobs run at once on the submitting thread, no workers (fuzz/: one thread per input, no hand-offs).
    private let inline: Bool

    /// Starts `threads` workers that take jobs from a queue of at most `capacity` waiting jobs.
    package init(name: String, threads: Int, capacity: Int, inline: Bool = false) {
        self.name = name
        threadCount = max(1, threads)
        self.capacity = max(0, capacity)
        self.inline = inline
        for index in 0..<(inline ? 0 : threadCount) {
            // Strong on purpose: a worker may still be inside `work()` when the pool's owner lets go of it.
            PosixThread.start(name: "\(name)-\(index)") { self.work() }
        }
    }

    /// Queues `job`; false (and the job is dropped) when every worker is busy and the queue is full.
    ///
    /// After `retire()` a job still runs, on a thread of its own: it comes from a request that was routed to this
    /// pool's assembly just before a reload swapped it out, and a reload refuses nothing. Only requests that
    /// raced the swap can submit then, so such threads are few and short-lived.
    @discardableResult
    package func submit(_ job: @escaping Job) -> Bool {
        if inline { job(); return true }
        condition.lock()
        defer { condition.unlock() }
        guard !retired else {
            PosixThread.start(name: "\(name)-late") { job() }
            return true
        }
        let waiting = queue.count - head
        // A free worker takes the job at once; otherwise it waits in the bounded queue.
        guard waiting < capacity || busy + waiting < threadCount else { return false }
        queue.append(job)
        condition.signal()
        return true
    }

    /// Jobs waiting plus jobs running.
    package var load: (waiting: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count - head, busy)
    }

    /// Lets the workers finish the queued jobs, then end (after a reload replaced this pool).
    package func retire() {
        condition.lock()
        retired = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count {
                if retired { condition.unlock(); return }
                condition.wait()
            }
            let job = queue[head]!
            queue[head] = nil
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: queue.count <= 1024)
                head = 0
            } else if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            busy += 1
            condition.unlock()
            job()
            condition.lock()
            busy -= 1
            condition.unlock()
        }
    }
}
