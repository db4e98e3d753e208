/// One layer of the stash chain (`singleflight`, `pool`, the fetch at the bottom). `start` hands back the stash's
/// `PendingStash` without waiting for it, so a caller's deadline is a timed wait at the top of the chain and no
/// layer below is left behind by a caller that gave up. Only the innermost stage does the work, inline on the
/// thread that starts it: a `PooledStasher` worker, which `StashChain` guarantees.
package protocol StashStage: Sendable {
    /// Starts (or joins) the stash of module@version and returns its outcome to wait on.
    func start(module: String, version: String) -> PendingStash
}
