// A file being written in the work directory, renamed into place when its save commits.
import Glibc
import PluginKit

/// A file being written under a hidden name in an `@v` directory; renamed to its real name when complete.
final class WorkFile {
    /// Kept open as long as the file may be renamed or discarded.
    private let directory: Descriptor
    /// The open file, for fsync.
    let fd: Int32
    let name: String
    private var renamed = false
    private let what: String

    /// Creates the file exclusively.
    init(in directory: Descriptor, name: String, what: String) throws(PluginFailure) {
        self.directory = directory
        self.name = name
        self.what = what
        fd = retrying { openat(directory.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644) }
        guard fd >= 0 else { throw failure("\(what): create @v/\(name)", errno) }
    }

    deinit { close(fd) }

    /// Appends `bytes`.
    func write(_ bytes: [UInt8]) throws(PluginFailure) {
        let ok = bytes.withUnsafeBytes { writeAll(fd, $0) }
        guard ok else { throw failure("\(what): write \(name)", errno) }
    }

    /// Appends the whole zip stream, which must be exactly `zip.size` bytes long.
    func copy(from zip: ByteReader) throws(PluginFailure) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { buffer.deallocate() }
        var total: UInt64 = 0
        while true {
            let n = try zip.read(into: buffer)
            if n == 0 { break }
            total += UInt64(n)
            guard total <= zip.size else { break }
            guard writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n])) else { throw failure("\(what): write zip", errno) }
        }
        guard total == zip.size else {
            throw .invalid("\(what): zip stream length differs from its declared size \(zip.size)")
        }
    }

    /// Makes the content durable.
    func sync() throws(PluginFailure) {
        guard flushToDisk(fd) else { throw failure("\(what): fsync \(name)", errno) }
    }

    /// Renames the file to `target` in its directory (replacing it); the file is then no longer temporary.
    func rename(as target: String) throws(PluginFailure) {
        guard renameat(directory.fd, name, directory.fd, target) == 0 else { throw failure("\(what): rename to \(target)", errno) }
        renamed = true
    }

    /// Removes the file unless it was renamed into place.
    func discard() {
        if !renamed {
            unlinkat(directory.fd, name, 0)
            renamed = true
        }
    }
}
