// Thin wrappers over the Linux calls FileStorage makes: EINTR retries, errno → PluginFailure, directories.
// No Foundation: these run on every request.
import Glibc
import PluginKit
import Synchronization

/// The failure an errno becomes. Disk trouble (full, I/O error, read-only, permissions, fd limits) is
/// transient for the host (`unavailable`, 502); anything else means a bug or a damaged tree (`internal`).
func failure(_ what: String, _ code: Int32) -> PluginFailure {
    let text = "\(what): \(String(cString: strerror(code)))"
    switch code {
    case ENOSPC, EDQUOT, EIO, EROFS, EACCES, EPERM, EMFILE, ENFILE, ENOMEM, EBUSY, ETXTBSY, EAGAIN, ESTALE, ENOLCK,
         ELOOP, ENOTDIR, EXDEV, ENODEV, ENXIO, ETIMEDOUT, EINTR:
        return .unavailable(text)
    case ENAMETOOLONG:
        return .invalid(text)
    default:
        return .internal(text)
    }
}

/// Whether an errno from a lookup means "there is nothing there" (a missing name, or a path element that is not a
/// directory or is a symlink we refuse to follow).
func isAbsent(_ code: Int32) -> Bool { code == ENOENT || code == ENOTDIR || code == ELOOP }

/// Calls `body` until it stops failing with EINTR.
@inline(__always)
func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// Flags for every directory FileStorage opens itself: never through a symlink.
let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

/// An open file descriptor, closed when the last reference goes.
final class Descriptor {
    /// The raw descriptor; valid until deinit.
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

/// Opens the directory `name` below `parent`, refusing symlinks. Returns nil with errno set on failure.
func openDirectory(_ parent: Int32, _ name: String) -> Descriptor? {
    let fd = retrying { openat(parent, name, directoryFlags) }
    return fd >= 0 ? Descriptor(fd) : nil
}

/// Writes all of `bytes` to `fd` at its current offset.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = retrying { write(fd, bytes.baseAddress! + done, bytes.count - done) }
        if n <= 0 {
            if n == 0 { errno = EIO }
            return false
        }
        done += n
    }
    return true
}

/// fsync that treats EINTR as a retry.
func flushToDisk(_ fd: Int32) -> Bool { retrying { fsync(fd) } == 0 }

/// The status of `name` below `dirfd`, not following a final symlink; nil with errno set if absent.
func status(_ dirfd: Int32, _ name: String) -> stat? {
    var st = stat()
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
}

/// Whether `name` below `dirfd` is a regular file (a symlink is not).
func regularFileExists(_ dirfd: Int32, _ name: String) -> Bool {
    guard let st = status(dirfd, name) else { return false }
    return st.st_mode & S_IFMT == S_IFREG
}

/// One directory entry.
struct DirectoryEntry {
    /// The entry's name.
    var name: String
    /// d_type: DT_DIR, DT_REG, DT_LNK, … or DT_UNKNOWN when the file system does not say.
    var type: UInt8

    /// Whether it may be a directory.
    var mayBeDirectory: Bool { type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) }

    /// Whether it is a regular file (never a symlink); asks `fstatat` when the file system does not say.
    func isRegularFile(in directory: Int32) -> Bool {
        type == UInt8(DT_REG) || (type == UInt8(DT_UNKNOWN) && regularFileExists(directory, name))
    }
}

/// The entries of the directory `fd`, except "." and "..". Reads through a fresh open file description, so the
/// offset of `fd` is untouched and the call may be repeated.
func readDirectory(_ fd: Int32) -> [DirectoryEntry]? {
    let own = retrying { openat(fd, ".", directoryFlags) }
    guard own >= 0 else { return nil }
    guard let dir = fdopendir(own) else {
        let saved = errno
        close(own)
        errno = saved
        return nil
    }
    defer { closedir(dir) }
    var entries: [DirectoryEntry] = []
    while true {
        errno = 0
        guard let entry = readdir(dir) else {
            if errno != 0 { return nil }
            break
        }
        let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name == "." || name == ".." { continue }
        entries.append(DirectoryEntry(name: name, type: entry.pointee.d_type))
    }
    return entries
}

/// Reads a whole small file below `dirfd` (e.g. `list`); nil with errno set on failure.
func readSmallFile(_ dirfd: Int32, _ name: String, limit: Int = 1 << 24) -> [UInt8]? {
    let fd = retrying { openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { buffer in retrying { read(fd, buffer.baseAddress!, buffer.count) } }
        if n < 0 { return nil }
        if n == 0 { return out }
        out += chunk[0..<n]
        if out.count > limit {
            errno = EFBIG
            return nil
        }
    }
}

/// Byte order, the order of the catalog and of directory walks (String's own order is Unicode's).
func bytewiseLess(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

/// How many `flushAllToDisk` calls are in progress in this process.
private let flushesInProgress = Atomic<Int>(0)

/// fsyncs every descriptor and waits for all. Alone, it issues them at once, one thread each (the first on the
/// caller's): the kernel then commits them together (on ext4 one journal commit serves every fsync waiting for
/// it), so N files cost about one fsync's latency instead of N. While other calls are in progress their fsyncs
/// already fill the journal's commits, and extra threads only cost scheduling (measured: 10 concurrent savers
/// were 1.5-2.5x slower with threads), so it then syncs one after another. Returns the index of the first
/// descriptor that failed, with errno set to its error, or nil.
func flushAllToDisk(_ fds: [Int32]) -> Int? {
    let others = flushesInProgress.add(1, ordering: .relaxed).oldValue
    defer { flushesInProgress.subtract(1, ordering: .relaxed) }
    guard fds.count > 1, others == 0 else {
        for (index, fd) in fds.enumerated() where !flushToDisk(fd) { return index }
        return nil
    }
    final class Job {
        let fd: Int32
        var error: Int32 = 0
        init(_ fd: Int32) { self.fd = fd }
    }
    let jobs = fds.map(Job.init)
    var threads: [pthread_t?] = []
    for job in jobs.dropFirst() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(job).toOpaque()
        let started = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            if !flushToDisk(job.fd) { job.error = errno }
            return nil
        }, box)
        if started == 0 {
            threads.append(thread)
        } else {
            // No thread to spare: this one is done inline, after the others started.
            Unmanaged<Job>.fromOpaque(box).release()
            threads.append(nil)
        }
    }
    if !flushToDisk(jobs[0].fd) { jobs[0].error = errno }
    for (thread, job) in zip(threads, jobs.dropFirst()) {
        if let thread {
            pthread_join(thread, nil)
        } else if !flushToDisk(job.fd) {
            job.error = errno
        }
    }
    guard let failed = jobs.firstIndex(where: { $0.error != 0 }) else { return nil }
    errno = jobs[failed].error
    return failed
}
