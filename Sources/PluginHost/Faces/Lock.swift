/// What the stash needs of a lock backend (ABI 1.1's lock kind): leases on string keys, shared by every process
/// that uses the same backend. `LockPlugin` (a loaded plugin's C table) is the production implementation; tests
/// use an in-memory fake, so cross-process single-flight is tested without `dlopen`.
///
/// Every method may be called from any thread, concurrently, and may block (acquire for up to its wait): never
/// on the event loop.
package protocol Lock: AnyObject, Sendable {
    /// The name the manifest uses for it.
    var name: String { get }
    /// Where its code lives (a plugin's library path), for server logs only; "" when in-process.
    var origin: String { get }
    /// Takes the lock on `key` (1…1024 bytes) for `leaseMilliseconds`, waiting up to `waitMilliseconds` (0: one try)
    /// while another holder has it. `.busy` when the wait ran out; throws when the backend failed (no lock held then).
    func acquire(key: String, leaseMilliseconds: UInt32, waitMilliseconds: UInt32) throws(PluginError) -> LockAcquisition
    /// Extends a held lock's lease to `leaseMilliseconds` from now; throws `.notFound` when the lock was lost.
    func refresh(_ handle: UInt64, leaseMilliseconds: UInt32) throws(PluginError)
    /// Frees the lock and its handle, whatever it throws: the handle is never used again.
    func release(_ handle: UInt64) throws(PluginError)
}

/// How an acquire ended when the backend answered.
package enum LockAcquisition: Equatable, Sendable {
    /// Held; release the handle (non-zero) when done.
    case held(UInt64)
    /// Another holder kept the lock for the whole wait (ATH_BUSY).
    case busy
}
