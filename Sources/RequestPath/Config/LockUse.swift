extension Manifest {
    /// A single-flight's lock (stash.wrappers[].lock): the plugin, how long a lease lasts unrefreshed, and how long a
    /// flight waits for another process's fetch.
    package struct LockUse: Equatable {
        package var use: PluginUse
        /// Lease of a held lock; the holder refreshes it while its fetch runs, a dead holder's lock is free after it.
        package var leaseSeconds: Double = 30
        /// Longest a flight waits for another process's fetch before it answers 503; nil: the stash timeout.
        package var waitSeconds: Double?
        /// `requiredForReadiness`: a lock that does not answer makes /readyz 503. Off by default: the instance still
        /// serves then (local single-flight), so /readyz answers 200 and says the lock is degraded (see `Readiness`).
        package var requiredForReadiness = false

        package init(use: PluginUse, leaseSeconds: Double = 30, waitSeconds: Double? = nil, requiredForReadiness: Bool = false) {
            (self.use, self.leaseSeconds, self.waitSeconds) = (use, leaseSeconds, waitSeconds)
            self.requiredForReadiness = requiredForReadiness
        }
    }
}
