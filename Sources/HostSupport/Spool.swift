import Basics
import Glibc

/// A zip being received: an unlinked temporary file, closed when the spool goes.
package final class Spool {
    package let fd: Int32

    package init(directory: String) throws(SpoolError) {
        var template = Array((directory + "/athens-spool-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SpoolError(message: "cannot create a spool file in \(directory): \(String(cString: strerror(errno)))")
        }
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        self.fd = fd
    }

    /// Appends bytes; false on a write error (e.g. ENOSPC).
    package func append(_ bytes: UnsafeRawBufferPointer) -> Bool { FileDescriptor.writeAll(fd, bytes) }

    deinit { close(fd) }
}

/// Why a spool file could not be made (e.g. the directory is missing or full).
package struct SpoolError: Error {
    package var message: String
}
