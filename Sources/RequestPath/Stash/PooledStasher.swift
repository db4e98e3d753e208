import PluginHost

/// Lets at most `workers` stashes pass through at once, each on one of its own `workers` threads (a `WorkerPool`);
/// the others wait in its queue, and a full queue refuses with 503. These threads are the only ones that run
/// fetches: the stage below runs inline on them, and nothing above waits on a fetch except with a deadline.
///
/// A worker stays with its stash until the stage below has ended it (a joined flight included), so `workers`
/// bounds what passes through here whatever the manifest puts below. A stash whose caller gave up (`504`) keeps
/// its place: it is still running, and is stored when it completes.
package final class PooledStasher: StashStage, @unchecked Sendable {
    private let inner: any StashStage
    package let workers: Int
    private let pool: WorkerPool

    /// `queue`: stashes that may wait for a worker before the next is refused.
    package init(wrapping inner: any StashStage, workers: Int, queue: Int, name: String = "stash") {
        self.inner = inner
        self.workers = max(1, workers)
        pool = WorkerPool(name: name, threads: self.workers, capacity: queue)
    }

    package func start(module: String, version: String, context: CallContext) -> PendingStash {
        let pending = PendingStash(context: context)
        let inner = self.inner
        // A plugin crash on the worker names the request that started the stash.
        let request = CrashReporter.currentRequest()
        let queued = pool.submit {
            CrashReporter.setRequest(request)
            defer { CrashReporter.setRequest("") }
            pending.end(inner.start(module: module, version: version, context: context).wait()!)
        }
        if !queued {
            pending.end(.failure(DownloadError(status: 503, message: "service unavailable: \(module)@\(version): too many fetches waiting, retry shortly")))
        }
        return pending
    }

    /// The pool's name: its threads' and its gauges' (`pool="stash"`).
    package var name: String { pool.name }

    /// Stashes waiting for a worker, and running.
    package var load: (waiting: Int, running: Int) { pool.load }

    /// Lets the workers finish what is queued, then end (the assembly that owns this stage was replaced).
    package func retire() { pool.retire() }
}
