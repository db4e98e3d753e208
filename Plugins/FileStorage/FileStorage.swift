// FileStorage: the default storage. Keeps module versions in a directory laid out exactly as the GOPROXY
// protocol's URLs, so the folder also works as GOPROXY=file:///<root>, behind nginx, or rsync'd elsewhere:
//
//   <root>/<escaped module>/@v/<escaped version>.info | .mod | .zip
//   <root>/<escaped module>/@v/list      one version per line, kept current; pseudo-versions too, as in the go
//                                        command's own cache: clients skip them except to pick @latest
//   <root>/<escaped module>/@v/.lock     flock'd while a version of the module is committed or removed
//   <root>/<escaped module>/@v/.tmp-…    files being written (flock'd by their writer while alive)
//
// A version exists iff its .info exists: save renames .mod and .zip into place first and .info last (the commit),
// under the module's lock, so a save never mixes bytes with another one, in this process or another.
import GoModule
import Glibc
import PluginKit

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.storage(name: "FileStorage", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        guard let root = try config.string("root") else { throw .invalid("config.root: required (the storage directory)") }
        try config.finish()
        return try FileStorage(root: root)
    }
}

/// Module versions in a GOPROXY-shaped directory tree.
///
/// - Important: every method may be called from many threads, and many processes may share one root: all
///   coordination goes through the file system (rename, flock), none through memory.
final class FileStorage: StorageBackend, @unchecked Sendable {
    /// The root directory, opened once; every path is resolved below it.
    let rootFD: Int32
    /// The root as configured, for messages.
    let rootPath: String

    /// Opens (creating it and its parents if missing) the root, then removes what crashed saves left behind.
    init(root: String) throws(PluginFailure) {
        guard !root.isEmpty, !root.utf8.contains(0) else { throw .invalid("config.root: must be a non-empty path") }
        rootPath = root
        try Self.makeDirectories(root)
        let fd = retrying { Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw failure("open root \(root)", errno) }
        rootFD = fd
        try recover()
    }

    deinit { close(rootFD) }

    /// `mkdir -p`, making each directory it creates durable in its parent.
    private static func makeDirectories(_ path: String) throws(PluginFailure) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for element in path.split(separator: "/") {
            prefix += element
            if mkdir(prefix, 0o755) == 0 {
                let parent = prefix.utf8.count > element.utf8.count ? String(prefix.dropLast(element.count)) : "."
                let fd = retrying { Glibc.open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                if fd >= 0 {
                    _ = flushToDisk(fd)
                    close(fd)
                }
            } else if errno != EEXIST {
                throw failure("create root \(path) (at \(prefix))", errno)
            }
            prefix += "/"
        }
    }

    // MARK: - Reading

    func open(module: String, version: String, artifact: Artifact) throws(PluginFailure) -> BlobSource {
        let location = try VersionLocation(module: module, version: version)
        let path = location.file(artifact.fileExtension)
        // Hot path: openat + fstat (+ one fstatat of the commit marker for .mod and .zip).
        let fd = retrying { openat(rootFD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else {
            let code = errno
            if isAbsent(code) { throw .notFound("\(location.description)\(artifact.fileExtension): not stored") }
            throw failure("\(location.description)\(artifact.fileExtension): open", code)
        }
        // Check the commit marker before fstat, and the link count after it: if the file we opened is still
        // linked after .info was seen, it is the committed one (a commit never replaces a file while .info exists).
        if artifact != .info, !regularFileExists(rootFD, location.file(".info")) {
            close(fd)
            throw .notFound("\(location.description)\(artifact.fileExtension): not stored")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw failure("\(location.description)\(artifact.fileExtension): fstat", code)
        }
        guard st.st_mode & S_IFMT == S_IFREG, st.st_nlink > 0 else {
            close(fd)
            throw .notFound("\(location.description)\(artifact.fileExtension): not stored")
        }
        return .file(fd: fd, offset: 0, size: UInt64(st.st_size))
    }

    func exists(module: String, version: String) throws(PluginFailure) -> Bool {
        let location = try VersionLocation(module: module, version: version)
        if regularFileExists(rootFD, location.file(".info")) { return true }
        let code = errno
        if code == 0 || isAbsent(code) { return false }
        throw failure("\(location.description): stat", code)
    }

    func list(module: String) throws(PluginFailure) -> [String] {
        // Any valid version makes the location; only its directory is used.
        let location = try VersionLocation(module: module, version: "v0.0.0")
        guard let directory = try openVersionDirectory(location, create: false) else { return [] }
        guard let entries = readDirectory(directory.fd) else { throw failure("\(module): read @v", errno) }
        return Self.storedVersions(entries, in: directory.fd)
    }

    /// The versions whose commit marker is among `entries` (the .info scan is the truth; `list` is derived).
    static func storedVersions(_ entries: [DirectoryEntry], in directory: Int32) -> [String] {
        entries.compactMap { entry in
            guard let escaped = committedVersionName(entry.name), entry.isRegularFile(in: directory) else { return nil }
            return try? ModulePath.unescapeVersion(escaped)
        }
    }

    /// The escaped version of a commit marker name ("v1.0.0.info" → "v1.0.0"), or nil for any other name.
    static func committedVersionName(_ name: String) -> String? {
        guard name.hasSuffix(".info"), !name.hasPrefix(".") else { return nil }
        let escaped = String(name.dropLast(5))
        return VersionLocation.isSafeElement(escaped) ? escaped : nil
    }

    // MARK: - Directories and locks

    /// Opens `<escaped module>/@v` one element at a time, never through a symlink; creates missing elements when
    /// `create` is set (each new one made durable in its parent), else returns nil if one is missing.
    func openVersionDirectory(_ location: VersionLocation, create: Bool) throws(PluginFailure) -> Descriptor? {
        var current: Descriptor?
        for element in location.directory.split(separator: "/") {
            let name = String(element)
            let parent = current?.fd ?? rootFD
            if let next = openDirectory(parent, name) {
                current = next
                continue
            }
            var code = errno
            if code == ENOENT && create {
                if mkdirat(parent, name, 0o755) == 0 {
                    guard flushToDisk(parent) else { throw failure("\(location.description): fsync parent of \(name)", errno) }
                } else if errno != EEXIST {
                    throw failure("\(location.description): mkdir \(name)", errno)
                }
                if let next = openDirectory(parent, name) {
                    current = next
                    continue
                }
                code = errno
            }
            if code == ENOENT && !create { return nil }
            if code == ENOTDIR || code == ELOOP {
                throw .unavailable("\(location.description): \(name) under \(rootPath) is not a directory (symlinks are not followed)")
            }
            throw failure("\(location.description): open \(name)", code)
        }
        return current
    }

    /// Runs `body` holding the module's lock: an exclusive flock on `@v/.lock`, which excludes other threads
    /// (each call opens its own file description) and other processes alike; the kernel drops it if we die.
    func withModuleLock<T>(_ directory: Int32, _ what: String, _ body: () throws(PluginFailure) -> T) throws(PluginFailure) -> T {
        let fd = retrying { openat(directory, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644) }
        guard fd >= 0 else { throw failure("\(what): open @v/.lock", errno) }
        defer { close(fd) }
        guard retrying({ flock(fd, LOCK_EX) }) == 0 else { throw failure("\(what): flock @v/.lock", errno) }
        return try body()
    }

    // MARK: - Writing

    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure) {
        let location = try VersionLocation(module: module, version: version)
        let what = location.description
        if regularFileExists(rootFD, location.file(".info")) { throw .alreadyExists("\(what): already stored") }
        guard let directory = try openVersionDirectory(location, create: true) else {
            throw .internal("\(what): @v directory vanished")
        }
        // The bytes go to private temporary files first, outside the lock: a slow zip never blocks other saves.
        var temporaries: [TemporaryFile] = []
        defer { for temporary in temporaries { temporary.discard() } }
        temporaries.append(try TemporaryFile(in: directory.fd, suffix: ".mod", what: what))
        try temporaries[0].write(mod)
        temporaries.append(try TemporaryFile(in: directory.fd, suffix: ".zip", what: what))
        try temporaries[1].copy(from: zip)
        temporaries.append(try TemporaryFile(in: directory.fd, suffix: ".info", what: what))
        try temporaries[2].write(info)
        for temporary in temporaries { try temporary.sync() }

        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            if regularFileExists(directory.fd, location.escapedVersion + ".info") { throw .alreadyExists("\(what): already stored") }
            try commit(temporaries, as: location, in: directory.fd)
        }
    }

    /// Moves the synced temporaries into place, .info last, then updates `list`. Call holding the module lock
    /// with no .info present; on failure, removes whatever it placed, so the version is absent again.
    private func commit(_ temporaries: [TemporaryFile], as location: VersionLocation, in directory: Int32) throws(PluginFailure) {
        let what = location.description
        let names = [".mod", ".zip", ".info"].map { location.escapedVersion + $0 }
        var placed: [String] = []
        do throws(PluginFailure) {
            for (temporary, name) in zip(temporaries, names) {
                try temporary.rename(to: name)
                placed.append(name)
            }
            // The .info rename is the commit; the directory fsync makes all three renames durable.
            guard flushToDisk(directory) else { throw failure("\(what): fsync @v", errno) }
            try rewriteList(directory, what)
        } catch {
            // Newest first: the version stops existing before its .mod and .zip go.
            for name in placed.reversed() { unlinkat(directory, name, 0) }
            _ = flushToDisk(directory)
            // If `list` was renamed before a later step failed, it names the version just removed.
            if placed.count == names.count { try? rewriteList(directory, what) }
            throw error
        }
    }

    func remove(module: String, version: String) throws(PluginFailure) {
        let location = try VersionLocation(module: module, version: version)
        let what = location.description
        guard let directory = try openVersionDirectory(location, create: false) else { throw .notFound("\(what): not stored") }
        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            guard regularFileExists(directory.fd, location.escapedVersion + ".info") else { throw .notFound("\(what): not stored") }
            // `list` first, then the commit marker, then the rest: at no moment does `list` name a version whose
            // .info is gone, nor does a .mod/.zip go while its .info still promises it.
            try rewriteList(directory.fd, what, excluding: location.escapedVersion)
            guard unlinkat(directory.fd, location.escapedVersion + ".info", 0) == 0 else {
                throw failure("\(what): unlink .info", errno)
            }
            for suffix in [".mod", ".zip"] where unlinkat(directory.fd, location.escapedVersion + suffix, 0) != 0 && errno != ENOENT {
                throw failure("\(what): unlink \(suffix)", errno)
            }
            guard flushToDisk(directory.fd) else { throw failure("\(what): fsync @v", errno) }
        }
    }

    /// Rewrites `@v/list` from the .info files present (minus `excluding`) if its content differs: a temporary
    /// file, fsync, rename, fsync of the directory. Call holding the module lock.
    func rewriteList(_ directory: Int32, _ what: String, excluding: String? = nil) throws(PluginFailure) {
        guard let entries = readDirectory(directory) else { throw failure("\(what): read @v", errno) }
        let versions = Self.storedVersions(entries.filter { $0.name != (excluding ?? "") + ".info" }, in: directory)
        // Pseudo-versions stay: without them GOPROXY=file://<root> finds no @latest for an untagged module.
        let listed = SemVer.sorted(versions)
        let content = Array(listed.map { $0 + "\n" }.joined().utf8)
        if let current = readSmallFile(directory, "list"), current == content { return }
        let temporary = try TemporaryFile(in: directory, suffix: ".list", what: what)
        defer { temporary.discard() }
        try temporary.write(content)
        try temporary.sync()
        try temporary.rename(to: "list")
        guard flushToDisk(directory) else { throw failure("\(what): fsync @v", errno) }
    }
}

/// A file being written under a hidden name (`.tmp-<random><suffix>`) in an `@v` directory, flock'd for its whole
/// life so that start-up recovery in another process can tell it from a crashed save's leftover.
final class TemporaryFile {
    /// The hidden prefix; escaped names never start with ".", so it can never collide with a stored file.
    static let prefix = ".tmp-"

    private let directory: Int32
    private let fd: Int32
    private(set) var name: String
    private var renamed = false
    private let what: String

    /// Creates the file exclusively and locks it.
    init(in directory: Int32, suffix: String, what: String) throws(PluginFailure) {
        self.directory = directory
        self.what = what
        var generator = SystemRandomNumberGenerator()
        while true {
            let candidate = Self.prefix + String(generator.next() as UInt64, radix: 16) + suffix
            let fd = retrying { openat(directory, candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644) }
            if fd < 0 {
                if errno == EEXIST { continue }
                throw failure("\(what): create temporary file", errno)
            }
            guard retrying({ flock(fd, LOCK_EX) }) == 0 else {
                let code = errno
                unlinkat(directory, candidate, 0)
                close(fd)
                throw failure("\(what): flock temporary file", code)
            }
            // Recovery may have judged the file abandoned between our open and our flock; if so, it is unlinked
            // now and can never be unlinked under us later (recovery only removes unlocked files).
            var st = stat()
            if fstat(fd, &st) == 0, st.st_nlink == 0 {
                close(fd)
                continue
            }
            self.fd = fd
            name = candidate
            return
        }
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

    /// Renames the file to `target` in the same directory (replacing it); the file is then no longer temporary.
    func rename(to target: String) throws(PluginFailure) {
        guard renameat(directory, name, directory, target) == 0 else { throw failure("\(what): rename to \(target)", errno) }
        renamed = true
    }

    /// Removes the file unless it was renamed into place.
    func discard() {
        if !renamed {
            unlinkat(directory, name, 0)
            renamed = true
        }
    }
}
