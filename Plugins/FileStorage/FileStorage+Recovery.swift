// Recovery: removes what crashed operations left behind, so the tree again holds only complete versions and
// every `list` matches its .info files. Start-up reads only the work directory (<root>/.tmp): each intent no
// live process holds names the one @v directory its crashed operation may have left half-done (hidden files,
// .mod/.zip without .info, a stale list). Safe while other processes use the same root: a live operation holds
// its intent's flock, and @v directories are repaired under their module lock.
import Glibc
import PluginKit

extension FileStorage {
    /// The prefix of an operation's files in an @v directory: `.tmp-<stem><suffix>`. (Older FileStorage versions
    /// used the same names for files they flock'd themselves, without an intent; both kinds are recognised.)
    static let workFilePrefix = ".tmp-"

    /// Repairs what crashed operations left, as the work directory says; never walks the tree.
    func recover() throws(PluginFailure) {
        guard workFD >= 0 else { return } // read-only root: nothing can have been written, nothing can be repaired
        guard let entries = readDirectory(workFD) else { throw failure("read \(rootPath)/\(Self.workDirectory)", errno) }
        var byStem: [String: [String]] = [:]
        for entry in entries {
            let stem = entry.name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            byStem[stem, default: []].append(entry.name)
        }
        for (stem, names) in byStem { try recoverOperation(stem, names: names) }
    }

    /// One operation's leftovers: if its intent is held, it is alive and left alone; if the intent is there and
    /// free, its operation crashed: repair the directory it names, then remove its files and the intent (last);
    /// with no intent, its files are garbage (an operation unlinks its intent only after its files).
    private func recoverOperation(_ stem: String, names: [String]) throws(PluginFailure) {
        let intent = stem + ".intent"
        let fd = retrying { openat(workFD, intent, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
        if fd < 0 {
            guard errno == ENOENT else { throw failure("recover: open \(Self.workDirectory)/\(intent)", errno) }
            for name in names { unlinkat(workFD, name, 0) }
            return
        }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }
        // An empty intent (its writer died before writing it) named nothing yet: nothing outside .tmp to repair.
        if let bytes = readSmallFile(workFD, intent, limit: 4096), let line = String(validating: bytes, as: UTF8.self)?.split(separator: "\n").first,
           line.hasSuffix("/@v"), VersionLocation.isSafeRelativePath(String(line.dropLast(3))),
           let directory = try openVersionDirectory(String(line), what: "recover \(line)", create: nil) {
            try repair(directory, path: String(line), dead: stem)
        }
        for name in names where name != intent { unlinkat(workFD, name, 0) }
        // Unlinked while we hold its flock: an owner that had created it but not locked it yet finds it unlinked
        // once it gets the lock, and starts over with a new one.
        unlinkat(workFD, intent, 0)
    }

    /// Whether `entries` of an @v directory may hold something a crash or power loss left: another operation's
    /// hidden file (dead or alive: the repair tells), a .mod/.zip without its .info, or a .info without its .mod
    /// or .zip. `except` is the version a save is about to commit (its own orphans are about to be replaced),
    /// `stem` the caller's own operation.
    static func hasLeftovers(_ entries: [DirectoryEntry], except: String? = nil, stem: String) -> Bool {
        var parts: [String: Int] = [:]
        for entry in entries {
            if entry.name.hasPrefix(workFilePrefix) && workStem(entry.name) != stem { return true }
            if entry.name.hasPrefix(".") { continue }
            for (bit, suffix) in [(1, ".info"), (2, ".mod"), (4, ".zip")] where entry.name.hasSuffix(suffix) {
                let stem = String(entry.name.dropLast(suffix.count))
                if stem != except { parts[stem, default: 0] |= bit }
            }
        }
        return parts.values.contains { $0 != 7 }
    }

    /// Repairs one @v directory under its module lock, with an intent of its own (a crash during the repair is
    /// repaired at the next start-up).
    /// `dead` is the stem of a crashed operation whose intent the caller holds.
    func repair(_ directory: Descriptor, path: String, dead: String? = nil) throws(PluginFailure) {
        let what = "repair \(path)"
        let lockFD = retrying { openat(directory.fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644) }
        if lockFD < 0 {
            // A read-only root cannot be repaired, and nothing can be writing into it either.
            if errno == EROFS { return }
            throw failure("\(what): open .lock", errno)
        }
        close(lockFD)
        let operation = try Operation(in: try workDirectoryFD(what), directory: path, what: what)
        defer { operation.finish() }
        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            try repairLocked(directory, what: what, operation: operation, dead: dead)
        }
    }

    /// Removes abandoned hidden work files, .mod/.zip without .info, and .info without .mod or .zip (possible
    /// only after a power loss reordered renames), then rewrites `list` if it differs from the .info files.
    /// Call holding the module lock.
    func repairLocked(_ directory: Descriptor, what: String, operation: Operation, dead: String? = nil) throws(PluginFailure) {
        guard let entries = readDirectory(directory.fd) else { throw failure("\(what): read", errno) }
        let names = Set(entries.map(\.name))
        var changed = false
        for name in names where name.hasPrefix(Self.workFilePrefix) {
            let stem = Self.workStem(name)
            guard stem != operation.stem else { continue }
            if stem == dead ? unlinkat(directory.fd, name, 0) == 0 : removeIfAbandoned(directory.fd, name, stem: stem) { changed = true }
        }
        var stems: Set<String> = []
        for name in names where !name.hasPrefix(".") {
            for suffix in [".info", ".mod", ".zip"] where name.hasSuffix(suffix) {
                stems.insert(String(name.dropLast(suffix.count)))
            }
        }
        for stem in stems {
            let info = names.contains(stem + ".info"), mod = names.contains(stem + ".mod"), zip = names.contains(stem + ".zip")
            if info && mod && zip { continue }
            // The marker first, as in remove: the version stops existing before its parts go.
            for suffix in [".info", ".mod", ".zip"] where names.contains(stem + suffix) {
                guard unlinkat(directory.fd, stem + suffix, 0) == 0 || errno == ENOENT else {
                    throw failure("\(what): unlink \(stem + suffix)", errno)
                }
                changed = true
            }
        }
        if changed, !flushToDisk(directory.fd) { throw failure("\(what): fsync", errno) }
        try rewriteList(directory, what, operation: operation)
    }

    /// The stem of a work file name: `.tmp-<stem>.<suffix>` → `<stem>`.
    static func workStem(_ name: String) -> String {
        String(name.dropFirst(workFilePrefix.count).prefix { $0 != "." })
    }

    /// Removes the work file `name` if no live operation owns it: its intent exists and no one holds it, or it
    /// has no intent and no one holds the file itself (an older FileStorage's writer flock'd its files instead).
    /// An operation creates its intent before its files and unlinks it after them, so a missing intent never
    /// belongs to a live operation of this version. Returns whether it was removed.
    private func removeIfAbandoned(_ directory: Int32, _ name: String, stem: String) -> Bool {
        var fd = workFD >= 0 ? retrying({ openat(workFD, stem + ".intent", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }) : -1
        if fd < 0 {
            guard workFD < 0 || errno == ENOENT else { return false }
            fd = retrying { openat(directory, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
            guard fd >= 0 else { return false }
        }
        defer { close(fd) }
        // Unlinked while the lock is held: an older writer that created the file but has not locked it yet gets
        // the lock only after this, finds the file unlinked, and starts over with a new one.
        return flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(directory, name, 0) == 0
    }
}
