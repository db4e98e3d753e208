extension Manifest {
    /// A single-flight's lock (stash.wrappers[].lock): the plugin, how long a lease lasts unrefreshed, and how long a
    /// flight waits for another process's fetch.
    package struct LockUse: Equatable {
        package var use: PluginUse
        /// Lease of a held lock; the holder refreshes it while its fetch runs, a dead holder's lock is free after it.
        package var leaseSeconds: Double = 30
        /// Longest a flight waits for another process's fetch before it answers 503; nil: the stash timeout.
        package var waitSeconds: Double?

        package init(use: PluginUse, leaseSeconds: Double = 30, waitSeconds: Double? = nil) {
            (self.use, self.leaseSeconds, self.waitSeconds) = (use, leaseSeconds, waitSeconds)
        }
    }
}
