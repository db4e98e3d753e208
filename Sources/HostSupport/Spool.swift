import Basics
import Glibc
import Synchronization

/// A zip being received: an unlinked temporary file. Closed when the spool goes, or handed back to the
/// `SpoolPool` it came from.
package final class Spool {
    package let fd: Int32
    private let pool: SpoolPool?

    /// A new unlinked file in `directory`, closed when the spool goes.
    package init(directory: String) throws(SpoolError) {
        fd = try Self.create(in: directory)
        pool = nil
    }

    fileprivate init(fd: Int32, pool: SpoolPool) {
        self.fd = fd
        self.pool = pool
    }

    fileprivate static func create(in directory: String) throws(SpoolError) -> Int32 {
        var template = Array((directory + "/athens-spool-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SpoolError(message: "cannot create a spool file in \(directory): \(String(cString: strerror(errno)))")
        }
        // Kept from the processes a fetcher starts (git): a pooled spool lives long.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        return fd
    }

    /// Appends bytes; false on a write error (e.g. ENOSPC).
    package func append(_ bytes: UnsafeRawBufferPointer) -> Bool { FileDescriptor.writeAll(fd, bytes) }

    deinit {
        if let pool { pool.give(fd) } else { close(fd) }
    }
}

/// Spool files kept for reuse, so that a fetch does not create and release an inode. Besides the two metadata
/// operations, every release costs later: on ext4 without a journal each file creation scans the block group's
/// inodes released in the last minutes (`recently_deleted`), which made ~40% of athens' CPU in a cold burst of
/// 500 fetches with the spool in a busy /tmp. A returned file is emptied (its blocks freed) and kept open,
/// unlinked, up to `capacity` of them; beyond that it is closed. Safe from any thread.
package final class SpoolPool: Sendable {
    package let directory: String
    private let capacity: Int
    private let idle = Mutex<[Int32]>([])

    package init(directory: String, capacity: Int = 16) {
        self.directory = directory
        self.capacity = capacity
    }

    /// An empty spool file: an idle one, or a new one in `directory`.
    package func take() throws(SpoolError) -> Spool {
        if let fd = idle.withLock({ $0.popLast() }) { return Spool(fd: fd, pool: self) }
        return Spool(fd: try Spool.create(in: directory), pool: self)
    }

    /// How many emptied files wait for reuse.
    package var idleCount: Int { idle.withLock { $0.count } }

    fileprivate func give(_ fd: Int32) {
        // Emptied before it is kept: an idle spool holds no disk blocks, and the next writer starts at offset 0.
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            close(fd)
            return
        }
        let kept = idle.withLock { files -> Bool in
            guard files.count < capacity else { return false }
            files.append(fd)
            return true
        }
        if !kept { close(fd) }
    }

    deinit {
        for fd in idle.withLock({ $0 }) { close(fd) }
    }
}

/// Why a spool file could not be made (e.g. the directory is missing or full).
package struct SpoolError: Error {
    package var message: String
}
