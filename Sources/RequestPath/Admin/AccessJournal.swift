import Basics
import FoundationEssentials
import Glibc
import Synchronization

/// A stored version, as retention and the access journal name it.
package struct VersionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var module: String
    package var version: String
    package init(_ module: String, _ version: String) { (self.module, self.version) = (module, version) }
    package var description: String { module + "@" + version }
    package static func < (a: VersionID, b: VersionID) -> Bool { (a.module, a.version) < (b.module, b.version) }
}

/// Where the last downloads of versions are kept across restarts: the one seam retention reads and the
/// `AccessRecorder` writes, so the journal can be swapped for another store (records in storage, say).
package protocol AccessStore: AnyObject, Sendable {
    /// Records that every version in `versions` was downloaded at `time` (Unix seconds).
    func append(_ versions: [VersionID], at time: Int64) throws(AccessStoreError)
    /// The newest recorded download of every version, over every instance whose records this store can see.
    func lastAccesses() throws(AccessStoreError) -> [VersionID: Int64]
    /// Rewrites this instance's records: the newest per version, only for the versions in `stored`.
    func compact(keeping stored: Set<VersionID>) throws(AccessStoreError)
}

/// An access store that failed (a file that cannot be read or written), in one line.
package struct AccessStoreError: Error, CustomStringConvertible {
    package var description: String
}

/// The access store as files: one append-only journal per instance (`<instance>.access`) in a state folder,
/// a line per version per flush: `<unix seconds> <module> <version>`. Reads merge every journal in the folder,
/// so instances that share the folder (a network file system) see each other's downloads; instances with
/// folders of their own each know only their own (README "Operating"). Only the owner writes its file.
package final class AccessJournal: AccessStore {
    package let directory: String
    package let path: String
    /// Serializes this process's writers of `path` (a reload's old and new recorders share the journal).
    private let writing = PosixLock()

    /// One journal object per file in a process, so every writer of it takes the same lock.
    private static let open = Mutex<[String: AccessJournal]>([:])

    /// The journal of `instance` in `directory`, which is created when missing.
    package static func journal(directory: String, instance: String) throws(AccessStoreError) -> AccessJournal {
        let path = directory + "/" + instance + ".access"
        if let journal = open.withLock({ $0[path] }) { return journal }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AccessStoreError(description: "cannot create \(directory): \(error.systemDescription)")
        }
        return open.withLock { journals in
            if let journal = journals[path] { return journal }
            let journal = AccessJournal(directory: directory, path: path)
            journals[path] = journal
            return journal
        }
    }

    private init(directory: String, path: String) {
        (self.directory, self.path) = (directory, path)
    }

    package func append(_ versions: [VersionID], at time: Int64) throws(AccessStoreError) {
        guard !versions.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(versions.count * 64)
        for id in versions { bytes += Array("\(time) \(id.module) \(id.version)\n".utf8) }
        writing.lock()
        defer { writing.unlock() }
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        // A line cut short by a crash would swallow the first line of this batch: end it first.
        var last: UInt8 = 0x0A, status = stat()
        if fstat(fd, &status) == 0, status.st_size > 0 { _ = pread(fd, &last, 1, off_t(status.st_size - 1)) }
        if last != 0x0A { bytes.insert(0x0A, at: 0) }
        try writeAll(fd, bytes)
    }

    package func lastAccesses() throws(AccessStoreError) -> [VersionID: Int64] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".access") && !$0.hasPrefix(".") }
        } catch {
            throw AccessStoreError(description: "cannot list \(directory): \(error.systemDescription)")
        }
        var newest: [VersionID: Int64] = [:]
        for name in names.sorted() {
            // Another instance's journal may vanish or be replaced while it is read: what was read counts.
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            Self.parse(Array(data)) { id, time in newest[id] = max(newest[id] ?? .min, time) }
        }
        return newest
    }

    package func compact(keeping stored: Set<VersionID>) throws(AccessStoreError) {
        writing.lock()
        defer { writing.unlock() }
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var newest: [VersionID: Int64] = [:]
        Self.parse(Array(data)) { id, time in if stored.contains(id) { newest[id] = max(newest[id] ?? .min, time) } }
        var bytes: [UInt8] = []
        for (id, time) in newest.sorted(by: { $0.key < $1.key }) { bytes += Array("\(time) \(id.module) \(id.version)\n".utf8) }
        // Written beside it, synced, then renamed over it: a crash leaves the old journal or the new one.
        let temporary = path + ".compact"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create \(temporary)") }
        do throws(AccessStoreError) {
            try writeAll(fd, bytes)
            guard fsync(fd) == 0 else { throw failure("sync \(temporary)") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("rename \(temporary)") }
    }

    /// Calls `each` for every well-formed line; a malformed one (a torn write, an edit by hand) is skipped.
    static func parse(_ bytes: [UInt8], _ each: (VersionID, Int64) -> Void) {
        for line in bytes.split(separator: 0x0A) {
            let fields = line.split(separator: 0x20)
            guard fields.count == 3, let time = Int64(String(decoding: fields[0], as: UTF8.self)) else { continue }
            each(VersionID(String(decoding: fields[1], as: UTF8.self), String(decoding: fields[2], as: UTF8.self)), time)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(AccessStoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("write") }
            done += n
        }
    }

    private func failure(_ what: String) -> AccessStoreError {
        AccessStoreError(description: "\(path): cannot \(what): \(String(cString: strerror(errno)))")
    }
}
