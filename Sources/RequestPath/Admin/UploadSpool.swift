import GoModule
import HostSupport

/// Where an upload's body goes as it arrives (`BodyPlan.stream`): its first `modBytes` bytes (the go.mod, at most
/// `ModuleZip.maxGoMod`) in memory, the zip after them to an unlinked spool file, so a 500 MiB zip never sits in
/// memory and a refused or failed upload leaves no file behind (the file goes with the last reference).
/// Written on the event loop, then read by the upload on a pool thread once the whole body has arrived.
package final class UploadSpool: BodySink, @unchecked Sendable {
    package let modBytes: Int
    package private(set) var mod: [UInt8] = []
    package let spool: Spool
    package private(set) var zipSize: UInt64 = 0
    /// Body bytes taken so far.
    package private(set) var received = 0
    private var failed = false

    package init(directory: String, modBytes: Int) throws(AdminError) {
        self.modBytes = modBytes
        do {
            spool = try Spool(directory: directory)
        } catch {
            throw .failed("spool: \(error.message)")
        }
        mod.reserveCapacity(modBytes)
    }

    package func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !failed else { return false }
        var rest = bytes
        if mod.count < modBytes {
            let take = min(modBytes - mod.count, rest.count)
            mod.append(contentsOf: rest.prefix(take))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(take))
        }
        if !rest.isEmpty {
            guard spool.append(rest) else { failed = true; return false }
            zipSize += UInt64(rest.count)
        }
        received += bytes.count
        return true
    }

    package var refusal: Response { AdminError.failed("spool: cannot write the upload (is the spool directory full?)").response }
}
