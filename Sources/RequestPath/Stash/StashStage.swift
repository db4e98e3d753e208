import PluginHost

/// One layer of the stash chain (`singleflight`, `pool`, the fetch at the bottom). `start` hands back the stash's
/// `PendingStash` without waiting for it, so a caller's deadline is a timed wait at the top of the chain and no
/// layer below is left behind by a caller that gave up. Only the innermost stage does the work, inline on the
/// thread that starts it: a `PooledStasher` worker, which `StashChain` guarantees.
package protocol StashStage: Sendable {
    /// Starts (or joins) the stash of module@version and returns its outcome to wait on. `context` is what the
    /// fetch and the save will be called with if this starts the stash (a joined stash keeps its own).
    func start(module: String, version: String, context: CallContext) -> PendingStash
}

extension StashStage {
    /// `start` with a context of its own: the thread's request id, no deadline.
    package func start(module: String, version: String) -> PendingStash {
        start(module: module, version: version, context: CallContext())
    }
}
