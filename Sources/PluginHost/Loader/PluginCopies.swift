import Basics
import HostSupport
import FoundationEssentials
import Glibc

/// What tells one build of a plugin file from the next without reading it: a replaced file (`mv`, `install`)
/// has a new inode; one overwritten in place has a new size or mtime.
package struct FileIdentity: Equatable, Sendable {
    package var device: UInt64
    package var inode: UInt64
    package var size: Int64
    package var modified: timespec

    package init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = info.st_mtim
    }

    package static func == (a: FileIdentity, b: FileIdentity) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
    }
}

/// Loads plugin files through private, content-named copies, so that a plugin file replaced on disk is loaded
/// as new code at the next reload, and one overwritten in place cannot pull the code out from under the host.
///
/// `dlopen` returns the library already loaded for a path, so a new build at the same path would never be
/// loaded; and a file overwritten in place changes the pages of every mapping of it, so the next call into the
/// old code would run garbage. Both go away when the host maps a copy it alone writes: each distinct content
/// gets one file, `<tmp>/athens-plugins-<pid>-XXXXXX/<fnv64>-<size>.so`, made once and dlopen'ed once; the same
/// content (an unchanged file, or the same build at two paths) reuses it.
///
/// Cost: nothing is ever unloaded (RTLD_NODELETE: unloading a Swift image is unsafe; docs/PLUGINS.md §3.1), so every distinct build loaded
/// stays mapped, and its copy stays on disk, until the process exits; docs/PLUGINS.md gives the figures.
package final class PluginStore: @unchecked Sendable {
    /// The process's store: used by the server (start and every reload) and by plugin-check.
    package static let shared = PluginStore(parent: temporaryDirectory())

    private let lock = PosixLock()
    private let parent: String
    private var directory: String?
    /// Last load of each path as given: the identity it had, and what it gave.
    private var byPath: [String: (identity: FileIdentity, library: PluginLibrary)] = [:]
    /// Every copy loaded, by its path: a copy is dlopen'ed and checked once.
    private var byCopy: [String: PluginLibrary] = [:]

    /// `parent` holds the per-process directory of copies (created at the first load).
    package init(parent: String) { self.parent = parent }

    /// The private directory of copies, once one was made.
    package var copiesDirectory: String? { lock.withLock { directory } }

    /// The plugin at `path`: the library loaded before if the file's identity has not changed since, else the
    /// file's current content, loaded from its private copy.
    package func library(at path: String) throws(PluginLoadError) -> PluginLibrary {
        func reject(_ reason: String) -> PluginLoadError { PluginLoadError(path: path, reason: reason) }
        lock.lock()
        defer { lock.unlock() }
        var info = stat()
        guard stat(path, &info) == 0 else { throw reject("cannot load: " + String(cString: strerror(errno))) }
        if let known = byPath[path], known.identity == FileIdentity(info) { return known.library }

        // Read from one descriptor, and check it did not change meanwhile: a build still being written
        // must not be loaded half-way (the next reload will take it whole).
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw reject("cannot load: " + String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw reject("cannot load: not a regular file") }
        let identity = FileIdentity(info)
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw reject("cannot load: the file changed or failed while being read (\(n < 0 ? String(cString: strerror(errno)) : "shorter than its size"))") }
            filled += n
        }
        guard fstat(fd, &info) == 0, FileIdentity(info) == identity else {
            throw reject("cannot load: the file changed while being read (still being written?)")
        }

        let copy = try privateCopy(of: bytes, reject: reject)
        let library: PluginLibrary
        if let loaded = byCopy[copy] {
            library = loaded
        } else {
            do {
                library = try PluginLibrary(path: path, loadingFrom: copy)
            } catch {
                // A copy that did not load maps nothing and goes; one that loaded and then failed a check is
                // mapped for good (NODELETE) and stays.
                if dlopen(copy, RTLD_NOW | RTLD_NOLOAD) == nil { unlink(copy) }
                throw error
            }
            byCopy[copy] = library
        }
        if let previous = byPath[path], previous.library !== library {
            Log.info("plugin file changed: loaded its new content", [("path", path), ("copy", copy)])
        }
        byPath[path] = (identity, library)
        return library
    }

    /// The copy holding exactly `bytes`, written now if there is none. Names are content hashes; two contents
    /// with one hash (never seen, but possible) get suffixes, since a copy is compared byte for byte before reuse.
    private func privateCopy(of bytes: [UInt8], reject: (String) -> PluginLoadError) throws(PluginLoadError) -> String {
        let directory = try copiesDirectory(reject: reject)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let base = directory + "/" + String(hash, radix: 16) + "-" + String(bytes.count)
        for attempt in 0..<100 {
            let name = base + (attempt == 0 ? "" : "-\(attempt)") + ".so"
            if let existing = FileManager.default.contents(atPath: name) {
                if existing.elementsEqual(bytes) { return name }
                continue
            }
            // Written under a temporary name and renamed: a copy that exists is always complete. Read-only,
            // so that nothing in this process can overwrite a mapped copy by mistake.
            let partial = name + ".partial"
            let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o500)
            guard fd >= 0 else { throw reject("cannot copy to \(partial): " + String(cString: strerror(errno))) }
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    let cause = String(cString: strerror(errno))
                    close(fd)
                    unlink(partial)
                    throw reject("cannot copy to \(partial): \(cause)")
                }
                written += n
            }
            close(fd)
            guard rename(partial, name) == 0 else {
                let cause = String(cString: strerror(errno))
                unlink(partial)
                throw reject("cannot copy to \(name): \(cause)")
            }
            return name
        }
        throw reject("cannot copy: 100 different contents share the hash \(base)")
    }

    /// The per-process directory (mode 0700, made with mkdtemp: no other user can plant files in it); made
    /// at the first load, when the directories left by processes that no longer run are removed too.
    private func copiesDirectory(reject: (String) -> PluginLoadError) throws(PluginLoadError) -> String {
        if let directory { return directory }
        Self.removeAbandoned(in: parent)
        var template = ((parent.hasSuffix("/") ? parent : parent + "/") + "athens-plugins-\(getpid())-XXXXXX").utf8CString
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw reject("cannot make a directory for private copies in \(parent): " + String(cString: strerror(errno)))
        }
        let path = String(cString: made)
        directory = path
        return path
    }

    /// Removes the directory of copies at exit. Only when nothing will call into a plugin again (the server has
    /// stopped); the mappings stay valid anyway (an unlinked file lives on while mapped), but while the
    /// process runs its copies stay on disk, for debuggers and crash tools that read the mapped files.
    package func removeCopies() {
        lock.withLock {
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
        }
    }

    /// Directories of copies whose process has ended (killed, crashed: it could not clean up), if they are ours.
    private static func removeAbandoned(in parent: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where name.hasPrefix("athens-plugins-") {
            let fields = name.split(separator: "-")
            guard fields.count == 4, let pid = pid_t(fields[2]), pid != getpid() else { continue }
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            let path = (parent.hasSuffix("/") ? parent : parent + "/") + name
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid() else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

/// One process can hold one Go runtime: a second Go `c-shared` library would start another, whose signal
/// handlers and threads fight the first's (Go does not support it). So the first Go library loaded owns the
/// process, and any other is refused before it is dlopen'ed, since dlopen runs its runtime's initialiser.
package enum GoRuntimeGuard {
    /// Symbols that the Go runtime's cgo glue defines in every `c-shared` library (see `nm -D`).
    package static let runtimeSymbols: Set<String> = ["_cgo_wait_runtime_init_done", "x_cgo_init", "crosscall2"]

    private static let lock = PosixLock()
    nonisolated(unsafe) private static var owner: (device: UInt64, inode: UInt64, path: String)?

    /// Runs `load` (the dlopen of `file`, shown to users as `path`) unless `file` is a Go library and another
    /// Go library owns the process; returns the refusal's reason instead of running it.
    package static func load(_ file: String, shownAs path: String, _ load: () -> UnsafeMutableRawPointer?) -> Result<UnsafeMutableRawPointer?, PluginLoadError> {
        guard ELFSymbols.definesAny(of: runtimeSymbols, inFileAt: file) else { return .success(load()) }
        var info = stat()
        guard stat(file, &info) == 0 else { return .success(load()) }
        return lock.withLock {
            if let owner, owner.device != UInt64(info.st_dev) || owner.inode != UInt64(info.st_ino) {
                return .failure(PluginLoadError(path: path, reason: "is a Go c-shared library, and the Go plugin \(owner.path) is already loaded: a process can hold only one Go runtime, so athens loads one Go plugin (a new build of it needs a restart)"))
            }
            let handle = load()
            if handle != nil && owner == nil { owner = (UInt64(info.st_dev), UInt64(info.st_ino), path) }
            return .success(handle)
        }
    }
}

/// Reads the names a 64-bit little-endian ELF file defines in its dynamic symbol table, without loading it.
package enum ELFSymbols {
    /// Whether the file defines (not merely imports) one of `names`; false for anything that is not such an ELF file.
    package static func definesAny(of names: Set<String>, inFileAt path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        func bytes(_ offset: UInt64, _ count: UInt64) -> [UInt8]? {
            guard count <= 256 << 20 else { return nil }
            var out = [UInt8](repeating: 0, count: Int(count))
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(count), off_t(offset)) }
            return n == Int(count) ? out : nil
        }
        func integer<T: FixedWidthInteger>(_ data: [UInt8], _ at: Int, _: T.Type) -> T {
            var value: T = 0
            for i in 0..<MemoryLayout<T>.size { value |= T(data[at + i]) << (8 * i) }
            return value
        }
        // e_ident: magic, ELFCLASS64, ELFDATA2LSB.
        guard let header = bytes(0, 64), header[0...3] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1 else { return false }
        let sectionsOffset = integer(header, 0x28, UInt64.self)
        let entrySize = UInt64(integer(header, 0x3a, UInt16.self)), count = UInt64(integer(header, 0x3c, UInt16.self))
        guard entrySize >= 64, let sections = bytes(sectionsOffset, entrySize * count) else { return false }
        func section(_ index: UInt64) -> (type: UInt32, offset: UInt64, size: UInt64, link: UInt32) {
            let at = Int(index * entrySize)
            return (integer(sections, at + 4, UInt32.self), integer(sections, at + 24, UInt64.self),
                    integer(sections, at + 32, UInt64.self), integer(sections, at + 40, UInt32.self))
        }
        let dynsymType: UInt32 = 11
        for index in 0..<count where section(index).type == dynsymType {
            let symbols = section(index)
            guard UInt64(symbols.link) < count, let table = bytes(symbols.offset, symbols.size) else { return false }
            let strings = section(UInt64(symbols.link))
            guard let strtab = bytes(strings.offset, strings.size) else { return false }
            var at = 0
            while at + 24 <= table.count {
                let nameOffset = Int(integer(table, at, UInt32.self)), sectionIndex = integer(table, at + 6, UInt16.self)
                at += 24
                guard sectionIndex != 0, nameOffset < strtab.count else { continue }   // SHN_UNDEF: imported
                let end = strtab[nameOffset...].firstIndex(of: 0) ?? strtab.count
                if names.contains(String(decoding: strtab[nameOffset..<end], as: UTF8.self)) { return true }
            }
        }
        return false
    }
}
