// FileLock: the lock kind (ABI 1.1) on flock(2) in one shared directory, for several athens processes on one
// machine, or on several machines sharing the directory over NFS.
//
// Config: {"directory": "/var/lib/athens/locks", "pollMilliseconds": 10}
//   directory         required; created (one level, mode 0755) if missing; must be writable
//   pollMilliseconds  optional, 1...1000 (default 10): longest sleep between two tries while waiting
//
// One lock = one empty file, "lock-<sha256 of the key, hex>": whatever bytes a key holds ("../x", 1024 bytes,
// control bytes), its file name is 69 safe characters inside the directory. Files are never deleted (deleting a
// lock file while another process waits on it would let two holders in); there is one per distinct key ever
// used, 0 bytes each (an inode), and they may be removed while no athens uses the directory.
//
// Leases: flock has no timer. The kernel drops the lock when the last descriptor of the holder's open file
// description closes, which includes the holder's process dying in any way (SIGKILL too), so a dead holder's lock
// is free at once; O_CLOEXEC keeps the descriptor out of the programs athens runs (git, go), so they can never
// keep a lock alive. A living holder keeps the lock past its lease: `refresh` only moves the lease's end in this
// instance's bookkeeping (the header allows this: only a dead holder must lose its lock). Over NFS (Linux emulates
// flock with NFS byte-range locks), a holder whose machine dies keeps its lock until the server reclaims it (the
// NFSv4 lease, 90 s by default), not lease_ms later.
//
// Waiting: never spinning. A try is flock(LOCK_EX | LOCK_NB) on a descriptor of its own (so two handles in one
// process exclude each other too). Between tries a waiter sleeps on a condition that every release in this
// process signals (a release here wakes the waiters here at once); a release by another process is seen at the
// next try, at most pollMilliseconds later (the sleep starts at 1 ms and doubles up to that). A wait ends at
// wait_ms (ATH_BUSY), at the call's deadline (ATH_TIMEOUT) or when the call is cancelled (ATH_CANCELLED).
// Fairness: none (any waiter's next try may win, a newcomer's first try included), as the header allows.
import Basics
import Digests
import FoundationEssentials
import Glibc
import PluginKit

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.lock(name: "FileLock", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        guard let directory = try config.string("directory"), !directory.isEmpty else {
            throw .invalid("config.directory: required: the directory holding the lock files")
        }
        let poll = try config.number("pollMilliseconds") ?? 10
        guard poll >= 1, poll <= 1000, poll == poll.rounded() else { throw .invalid("config.pollMilliseconds: must be an integer in 1...1000") }
        try config.finish()
        return try FileLock(directory: directory, pollMilliseconds: Int(poll), host: config.host)
    }
}

/// Locks as flock'ed files in one directory.
/// Invariant: every descriptor in `held` holds its file's flock; `held` and the descriptors change under `state`.
final class FileLock: LockBackend, @unchecked Sendable {  // mutable state guarded by `state`
    /// One held lock.
    private struct Held {
        let fd: Int32
        let file: String
        var leaseEnd: UInt64
    }

    private let directory: Int32
    private let path: String
    private let pollMilliseconds: Int
    private let host: HostServices
    private let state = PosixCondition()
    private var held: [UInt64: Held] = [:]
    private var nextHandle: UInt64 = 1
    /// Releases so far; a waiter sleeps only if none happened since its last try (else it would miss the wake-up).
    private var releases: UInt64 = 0

    init(directory path: String, pollMilliseconds: Int, host: HostServices) throws(PluginFailure) {
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw .invalid("config.directory \(path): cannot create it: \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("config.directory \(path): \(String(cString: strerror(errno)))") }
        guard faccessat(fd, ".", W_OK | X_OK, 0) == 0 else {
            close(fd)
            throw .invalid("config.directory \(path): not writable: \(String(cString: strerror(errno)))")
        }
        (directory, self.path, self.pollMilliseconds, self.host) = (fd, path, pollMilliseconds, host)
    }

    deinit {
        for lock in held.values { close(lock.fd) }
        close(directory)
    }

    /// The lock file of `key`: a fixed-length name whatever the key's bytes, so no key reaches outside the directory.
    static func fileName(_ key: [UInt8]) -> String { "lock-" + SHA256.hexHash(key) }

    func acquire(key: [UInt8], leaseMs: UInt32, waitMs: UInt32, call: CallContext) throws(PluginFailure) -> UInt64 {
        let file = Self.fileName(key)
        let fd = openat(directory, file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw .unavailable("lock \(file) in \(path): \(String(cString: strerror(errno)))") }
        let start = CallContext.now()
        let waitEnd = start + UInt64(waitMs) * 1_000_000
        var sleepMs = 1
        while true {
            state.lock()
            let releasesBefore = releases
            state.unlock()
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { break }
            let failure = errno
            if failure == EINTR { continue }
            guard failure == EWOULDBLOCK else {
                close(fd)
                throw .unavailable("flock \(file) in \(path): \(String(cString: strerror(failure)))")
            }
            let now = CallContext.now()
            do {
                try call.check("lock \(file)")
            } catch {
                close(fd)
                throw error
            }
            guard now < waitEnd else {
                close(fd)
                throw .busy("lock \(file): held by another for \(waitMs) ms")
            }
            // Sleep until a release here, the next try, the end of the wait, or the call's deadline.
            var sleepNs = min(UInt64(sleepMs) * 1_000_000, waitEnd - now)
            if let left = call.remainingNanoseconds { sleepNs = min(sleepNs, max(left, 1)) }
            state.lock()
            if releases == releasesBefore { state.wait(seconds: Double(sleepNs) / 1e9) }
            state.unlock()
            sleepMs = min(sleepMs * 2, pollMilliseconds)
        }
        state.lock()
        defer { state.unlock() }
        let handle = nextHandle
        nextHandle += 1
        held[handle] = Held(fd: fd, file: file, leaseEnd: CallContext.now() + UInt64(leaseMs) * 1_000_000)
        return handle
    }

    func refresh(handle: UInt64, leaseMs: UInt32, call: CallContext) throws(PluginFailure) {
        state.lock()
        defer { state.unlock() }
        guard held[handle] != nil else { throw .notFound("lock handle \(handle): not held by this instance") }
        held[handle]!.leaseEnd = CallContext.now() + UInt64(leaseMs) * 1_000_000
    }

    func release(handle: UInt64) throws(PluginFailure) {
        state.lock()
        let lock = held.removeValue(forKey: handle)
        state.unlock()
        guard let lock else { throw .notFound("lock handle \(handle): not held by this instance") }
        // Closing drops the flock (the descriptor is this handle's alone); LOCK_UN first is not needed.
        close(lock.fd)
        state.lock()
        releases += 1
        state.broadcast()
        state.unlock()
        if CallContext.now() > lock.leaseEnd {
            host.log(.warning, "FileLock: \(lock.file) released after its lease ended (held on: flock has no timer)")
        }
    }
}
