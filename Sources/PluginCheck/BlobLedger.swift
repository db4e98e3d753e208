import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// Counts every blob a storage plugin hands out, through a shim put between the blob and the host.
///
/// The shim replaces `release` and `private_data` with its own: when the host releases the blob, the
/// shim counts the call and forwards the first one to the plugin's `release`. A second call is counted
/// and not forwarded, so a double release is reported instead of corrupting the plugin.
package final class BlobLedger: @unchecked Sendable {
    /// The plugin's release, as it handed it out, and the count of the host's calls.
    package final class Shim: @unchecked Sendable {
        package let release: @convention(c) (UnsafeMutableRawPointer?) -> Void
        /// The plugin's read callback (stream blobs), which needs the plugin's own `private_data`.
        package let read: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>, UInt64) -> Int64)?
        package let privateData: UnsafeMutableRawPointer?
        package unowned let ledger: BlobLedger
        fileprivate var calls = 0

        package init(_ blob: ath_blob, ledger: BlobLedger) {
            release = blob.release!
            read = blob.read
            privateData = blob.private_data
            self.ledger = ledger
        }
    }

    private let lock = PosixLock()
    // Shims stay alive until the ledger goes, so a late second release finds its shim, not freed memory.
    private var shims: [Shim] = []
    private var releasingThreads = Set<UInt>()
    /// Shape and ownership violations seen when blobs were handed out.
    package let problems = ProblemLog()

    /// Blobs handed out.
    package var opened: Int { lock.withLock { shims.count } }
    /// Blobs released at least once.
    package var released: Int { lock.withLock { shims.filter { $0.calls > 0 }.count } }
    /// Blobs released more than once.
    package var releasedTwice: Int { lock.withLock { shims.filter { $0.calls > 1 }.count } }
    /// How many different threads released blobs.
    package var releasingThreadCount: Int { lock.withLock { releasingThreads.count } }

    /// Puts the shim into `blob`; the blob must have a release.
    package func wrap(_ blob: inout ath_blob) {
        guard blob.release != nil else { return }
        let shim = Shim(blob, ledger: self)
        lock.withLock { shims.append(shim) }
        // private_data is shared by release and read, so a stream blob's read is shimmed too.
        blob.private_data = Unmanaged.passUnretained(shim).toOpaque()
        if blob.read != nil {
            blob.read = { context, buffer, capacity in
                let shim = Unmanaged<BlobLedger.Shim>.fromOpaque(context!).takeUnretainedValue()
                return shim.read!(shim.privateData, buffer, capacity)
            }
        }
        blob.release = { context in
            guard let context else { return }
            let shim = Unmanaged<BlobLedger.Shim>.fromOpaque(context).takeUnretainedValue()
            shim.ledger.released(shim)
        }
    }

    private func released(_ shim: Shim) {
        let first: Bool = lock.withLock {
            shim.calls += 1
            releasingThreads.insert(UInt(pthread_self()))
            return shim.calls == 1
        }
        if first { shim.release(shim.privateData) }
    }
}
