import Basics
import Glibc
import Synchronization

/// A zip being received: an unlinked temporary file. Closed when the spool goes, or handed back to the
/// `SpoolPool` it came from.
package final class Spool {
    private let descriptor: Int32
    private let pool: SpoolPool?
    /// `appendBuffered`'s write-behind buffer, mapped at the second piece; `buffered` bytes of it are unwritten.
    private var buffer: UnsafeMutableRawBufferPointer?
    private var buffered = 0
    /// Whether `appendBuffered` has written a piece yet (a small zip comes in one: it never maps a buffer).
    private var hadPiece = false
    /// One write(2) per this many bytes: curl hands a body over in 16 KiB pieces, and eight writes of 16 KiB cost
    /// the file system about twice one of 128 KiB. Mapped and unmapped per spool, not taken from the heap: heap
    /// buffers freed by ten stash threads in turn kept ~4 MiB of RSS (glibc arenas, measured in bench/soak.sh).
    package static let bufferSize = 128 << 10

    /// The file, for reading what was appended (every buffered byte must have been flushed).
    package var fd: Int32 {
        assert(buffered == 0, "a spool read before flush()")
        return descriptor
    }

    /// A new unlinked file in `directory`, closed when the spool goes.
    package init(directory: String) throws(SpoolError) {
        descriptor = try Self.create(in: directory)
        pool = nil
    }

    fileprivate init(fd: Int32, pool: SpoolPool) {
        descriptor = fd
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
    package func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        flush() && FileDescriptor.writeAll(descriptor, bytes)
    }

    /// Appends bytes through the write-behind buffer; false on a write error. Call `flush()` before using `fd`.
    package func appendBuffered(_ bytes: UnsafeRawBufferPointer) -> Bool {
        defer { hadPiece = true }
        if buffered == 0, bytes.count >= Self.bufferSize || !hadPiece { return FileDescriptor.writeAll(descriptor, bytes) }
        guard let buffer = self.buffer ?? Self.mapBuffer() else { return append(bytes) }
        self.buffer = buffer
        var rest = bytes
        while !rest.isEmpty {
            let count = min(rest.count, Self.bufferSize - buffered)
            (buffer.baseAddress! + buffered).copyMemory(from: rest.baseAddress!, byteCount: count)
            buffered += count
            rest = UnsafeRawBufferPointer(rebasing: rest[count...])
            if buffered == Self.bufferSize, !flush() { return false }
        }
        return true
    }

    /// Writes what `appendBuffered` holds; false on a write error (the bytes are then dropped).
    package func flush() -> Bool {
        guard buffered > 0, let buffer else { return true }
        let count = buffered
        buffered = 0
        return FileDescriptor.writeAll(descriptor, UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    /// A fresh anonymous mapping of `bufferSize` bytes (pages only touched are ever resident), or nil.
    private static func mapBuffer() -> UnsafeMutableRawBufferPointer? {
        guard let base = mmap(nil, bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            return nil
        }
        return UnsafeMutableRawBufferPointer(start: base, count: bufferSize)
    }

    deinit {
        if let buffer { munmap(buffer.baseAddress, buffer.count) }
        if let pool { pool.give(descriptor) } else { close(descriptor) }
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
