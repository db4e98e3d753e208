// FileStorage: the default storage. Keeps module versions in a directory laid out exactly as the GOPROXY
// protocol's URLs, so the folder also works as GOPROXY=file:///<root>, behind nginx, or rsync'd elsewhere:
//
//   <root>/<escaped module>/@v/<escaped version>.info | .mod | .zip
//   <root>/<escaped module>/@v/list      one version per line, kept current; pseudo-versions too, as in the go
//                                        command's own cache: clients skip them except to pick @latest
//   <root>/<escaped module>/@v/.lock     flock'd while a version of the module is committed or removed
//   <root>/<escaped module>/@v/.tmp-<stem>.mod|.zip|.info|.list<n>   files of a save or remove being written
//   <root>/.tmp/<stem>.intent            one per save, remove or repair in flight: names its @v directory; flock'd
//
// A version exists iff its .info exists: save renames .mod and .zip into place first and .info last (the commit),
// under the module's lock, so a save never mixes bytes with another one, in this process or another.
//
// Limits: an escaped path element over 250 bytes (NAME_MAX 255 less ".info") or an escaped version path over
// 750 bytes (what a catalog token carries) cannot be held; such versions are reported as not stored (404, so
// GOPROXY falls through to the next proxy), never as an outage. See VersionLocation.
//
// Start-up reads only <root>/.tmp, never the tree: an operation creates its intent (flock'd) before any other
// file and unlinks it last, so what a crash can leave - in the one @v directory the intent names: hidden work
// files, .mod/.zip without .info (killed between renames), a stale list - is found from intents no live process
// holds. Leftovers no intent names (a power loss, or an older FileStorage, which had no intents) are repaired
// lazily: by the module's next save or remove (which read @v anyway), and by `exists` when a .info lacks its
// .mod or .zip. Work files stay in @v so that every rename is within one directory (a rename across
// directories takes a lock of the whole file system).
//
// Order of a save, and why each fsync is needed. A save waits for two rounds of fsyncs (was six fsyncs one
// after another, plus one per directory created); a round is issued at once, one thread per descriptor, so the
// file system commits it as one, unless other rounds are in progress (see flushAllToDisk):
//  1. .mod, .zip, .info and the new list are written to hidden work files and fsync'd (round 1): a visible name
//     in @v never points at bytes a power loss could lose.
//  2. Under the module lock: rename .mod, .zip, then .info (the commit), then list. A kill between renames
//     leaves .mod/.zip without .info (invisible: open checks .info) or an old list (never naming a version
//     without .info, since list goes last); the intent makes start-up repair either.
//  3. Round 2: one fsync of @v makes the four renames durable (one directory; the old code synced list's
//     rename separately), and with it the parents of the directories this save created: no mkdir is synced
//     before the commit, because until its parent is durable a power loss drops the whole new subtree, i.e.
//     the version is absent, which is consistent. Save returns only after round 2, so a reported save survives
//     a power loss. Concurrent saves' rounds overlap, and the file system's journal commits them together.
//     (A save that finds its directories made by another save still in flight relies, for their durability,
//     on the journal committing that earlier mkdir no later than its own renames - as ext4 and xfs do.)
// The intent itself is not fsync'd: it exists for a killed process (the page cache survives); after a power
// loss, journaling file systems (ext4, xfs) keep metadata operations in order, so a durable .info implies its
// .mod and .zip renames, and the lazy repair above covers the rest.
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
    /// `<root>/.tmp`: every file being written and every intent (hidden: never a module path element).
    let workFD: Int32
    /// The root as configured, for messages.
    let rootPath: String
    /// The name of the work directory below the root.
    static let workDirectory = ".tmp"

    /// Opens (creating it and its parents if missing) the root and its work directory, then repairs what
    /// crashed operations left, as their intents in the work directory say (never walking the tree).
    init(root: String) throws(PluginFailure) {
        guard !root.isEmpty, !root.utf8.contains(0) else { throw .invalid("config.root: must be a non-empty path") }
        rootPath = root
        try Self.makeDirectories(root)
        let fd = retrying { Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw failure("open root \(root)", errno) }
        rootFD = fd
        if mkdirat(fd, Self.workDirectory, 0o755) == 0 {
            _ = flushToDisk(fd)
        } else if errno != EEXIST && errno != EROFS {
            let code = errno
            close(fd)
            throw failure("create \(root)/\(Self.workDirectory)", code)
        }
        // A read-only root has no work directory to open: nothing can be written, nor be in flight.
        let work = retrying { openat(fd, Self.workDirectory, directoryFlags) }
        guard work >= 0 || errno == ENOENT else {
            let code = errno
            close(fd)
            throw failure("open \(root)/\(Self.workDirectory) (it must be a directory, not a symlink)", code)
        }
        workFD = work
        try recover()
    }

    deinit {
        close(rootFD)
        if workFD >= 0 { close(workFD) }
    }

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
        let location: VersionLocation
        do {
            location = try VersionLocation(module: module, version: version)
        } catch where error.status == ATH_NOT_FOUND {
            return false // beyond the layout's limits: never stored
        }
        if regularFileExists(rootFD, location.file(".info")) {
            if regularFileExists(rootFD, location.file(".mod")) && regularFileExists(rootFD, location.file(".zip")) { return true }
            // A .info without its parts (a power loss that reordered renames): repair the module, report absent,
            // so the caller fetches it again.
            if let directory = try openVersionDirectory(location.directory, what: location.description, create: nil) {
                try repair(directory, path: location.directory)
            }
            return false
        }
        let code = errno
        if code == 0 || isAbsent(code) { return false }
        throw failure("\(location.description): stat", code)
    }

    func list(module: String) throws(PluginFailure) -> [String] {
        // Any valid version makes the location; only its directory is used.
        let location: VersionLocation
        do {
            location = try VersionLocation(module: module, version: "v0.0.0")
        } catch where error.status == ATH_NOT_FOUND {
            return [] // beyond the layout's limits: never stored
        }
        guard let directory = try openVersionDirectory(location.directory, what: module, create: nil) else { return [] }
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

    /// Opens the relative directory `path` (`<escaped module>/@v`) one element at a time, never through a
    /// symlink; returns nil if an element is missing, unless `create` is given: then missing elements are made
    /// and appended to it as (parent, name) - a nil parent is the root -, for the caller to make durable after
    /// its commit.
    func openVersionDirectory(_ path: String, what: String, create: UnsafeMutablePointer<[(parent: Descriptor?, name: String)]>?) throws(PluginFailure) -> Descriptor? {
        var current: Descriptor?
        for element in path.split(separator: "/") {
            let name = String(element)
            let parent = current?.fd ?? rootFD
            if let next = openDirectory(parent, name) {
                current = next
                continue
            }
            var code = errno
            if code == ENOENT, let create {
                if mkdirat(parent, name, 0o755) == 0 {
                    create.pointee.append((current, name))
                } else if errno != EEXIST {
                    throw failure("\(what): mkdir \(name)", errno)
                }
                if let next = openDirectory(parent, name) {
                    current = next
                    continue
                }
                code = errno
            }
            if code == ENOENT && create == nil { return nil }
            if code == ENOTDIR || code == ELOOP {
                throw .unavailable("\(what): \(name) under \(rootPath) is not a directory (symlinks are not followed)")
            }
            throw failure("\(what): open \(name)", code)
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

    /// The work directory, or `.unavailable` when the root is read-only (it could not be made).
    func workDirectoryFD(_ what: String) throws(PluginFailure) -> Int32 {
        guard workFD >= 0 else { throw .unavailable("\(what): \(rootPath)/\(Self.workDirectory) is missing (read-only root?)") }
        return workFD
    }

    // MARK: - Writing

    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure) {
        let location = try VersionLocation(module: module, version: version)
        let what = location.description
        if regularFileExists(rootFD, location.file(".info")) { throw .alreadyExists("\(what): already stored") }
        var created: [(parent: Descriptor?, name: String)] = []
        guard let directory = try openVersionDirectory(location.directory, what: what, create: &created) else {
            throw .internal("\(what): @v directory vanished")
        }
        // The intent before any file: from now on a crash is repaired at start-up. The bytes go to hidden files in
        // @v (renamed within one directory: no file-system-wide rename lock), outside the module lock, so a slow
        // zip never blocks other saves of the module.
        let operation = try Operation(in: try workDirectoryFD(what), directory: location.directory, what: what)
        defer { operation.finish() }
        let modFile = try operation.file(".mod", in: directory)
        try modFile.write(mod)
        let zipFile = try operation.file(".zip", in: directory)
        try zipFile.copy(from: zip)
        let infoFile = try operation.file(".info", in: directory)
        try infoFile.write(info)
        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            guard var entries = readDirectory(directory.fd) else { throw failure("\(what): read @v", errno) }
            if entries.contains(where: { $0.name == location.escapedVersion + ".info" }) { throw .alreadyExists("\(what): already stored") }
            if Self.hasLeftovers(entries, except: location.escapedVersion, stem: operation.stem) {
                try repairLocked(directory, what: what, operation: operation)
                guard let fresh = readDirectory(directory.fd) else { throw failure("\(what): read @v", errno) }
                entries = fresh
            }
            let list = try operation.listFile(for: entries, in: directory, adding: location.escapedVersion)
            let files = [modFile, zipFile, infoFile] + (list.map { [$0] } ?? [])
            if let failed = flushAllToDisk(files.map(\.fd)) { throw failure("\(what): fsync \(files[failed].name)", errno) }
            // The new directories become durable in their parents together with the renames (see the header).
            try commit(files, as: location, in: directory, operation: operation, alsoSync: created.map { $0.parent?.fd ?? rootFD })
        }
    }

    /// Moves the synced files into place (.mod, .zip, .info - the commit -, list), then makes the renames
    /// durable with one fsync of @v, at the same time as `parents` (the parents of directories the save made).
    /// Call holding the module lock with no .info present; on failure, removes
    /// whatever it placed, so the version is absent again.
    private func commit(_ files: [WorkFile], as location: VersionLocation, in directory: Descriptor, operation: Operation,
                        alsoSync parents: [Int32]) throws(PluginFailure) {
        let what = location.description
        let names = [".mod", ".zip", ".info"].map { location.escapedVersion + $0 } + ["list"]
        var placed: [String] = []
        do throws(PluginFailure) {
            for (file, name) in zip(files, names) {
                try file.rename(as: name)
                placed.append(name)
            }
            if let failed = flushAllToDisk([directory.fd] + parents) {
                throw failure(failed == 0 ? "\(what): fsync @v" : "\(what): fsync a directory made for it", errno)
            }
        } catch {
            // Newest first: list goes back to the truth, the version stops existing before its .mod and .zip go.
            for name in placed.reversed() where name != "list" { unlinkat(directory.fd, name, 0) }
            if placed.contains("list") { try? rewriteList(directory, what, operation: operation) }
            _ = flushToDisk(directory.fd)
            throw error
        }
    }

    func remove(module: String, version: String) throws(PluginFailure) {
        let location = try VersionLocation(module: module, version: version)
        let what = location.description
        guard let directory = try openVersionDirectory(location.directory, what: what, create: nil) else { throw .notFound("\(what): not stored") }
        let operation = try Operation(in: try workDirectoryFD(what), directory: location.directory, what: what)
        defer { operation.finish() }
        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            guard regularFileExists(directory.fd, location.escapedVersion + ".info") else { throw .notFound("\(what): not stored") }
            if let entries = readDirectory(directory.fd), Self.hasLeftovers(entries, stem: operation.stem) {
                try repairLocked(directory, what: what, operation: operation)
            }
            // `list` first, then the commit marker, then the rest: at no moment does `list` name a version whose
            // .info is gone, nor does a .mod/.zip go while its .info still promises it.
            try rewriteList(directory, what, operation: operation, excluding: location.escapedVersion)
            guard unlinkat(directory.fd, location.escapedVersion + ".info", 0) == 0 else {
                throw failure("\(what): unlink .info", errno)
            }
            for suffix in [".mod", ".zip"] where unlinkat(directory.fd, location.escapedVersion + suffix, 0) != 0 && errno != ENOENT {
                throw failure("\(what): unlink \(suffix)", errno)
            }
            guard flushToDisk(directory.fd) else { throw failure("\(what): fsync @v", errno) }
        }
    }

    /// The content `list` must have for `entries` (minus `excluding`, plus `adding`).
    static func listContent(_ entries: [DirectoryEntry], in directory: Int32, excluding: String? = nil, adding: String? = nil) -> [UInt8] {
        var versions = storedVersions(entries.filter { $0.name != (excluding ?? "") + ".info" }, in: directory)
        if let adding, let version = try? ModulePath.unescapeVersion(adding) { versions.append(version) }
        // Pseudo-versions stay: without them GOPROXY=file://<root> finds no @latest for an untagged module.
        let listed = SemVer.sorted(versions)
        return Array(listed.map { $0 + "\n" }.joined().utf8)
    }

    /// Rewrites `@v/list` from the .info files present (minus `excluding`) if its content differs: a work
    /// file, fsync, rename, fsync of the directory. Call holding the module lock.
    func rewriteList(_ directory: Descriptor, _ what: String, operation: Operation, excluding: String? = nil) throws(PluginFailure) {
        guard let entries = readDirectory(directory.fd) else { throw failure("\(what): read @v", errno) }
        guard let file = try operation.listFile(for: entries, in: directory, excluding: excluding) else { return }
        try file.sync()
        try file.rename(as: "list")
        guard flushToDisk(directory.fd) else { throw failure("\(what): fsync @v", errno) }
    }
}
