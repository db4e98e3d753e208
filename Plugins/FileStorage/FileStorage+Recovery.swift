// Start-up recovery: removes what crashed saves left behind, so the tree again holds only complete versions and
// every `list` matches its .info files. Safe while other processes use the same root: each @v directory is
// cleaned under its module lock, and a temporary file is removed only if no live writer holds its flock.
import Glibc
import PluginKit

extension FileStorage {
    /// Walks the whole tree (never through symlinks) and repairs every @v directory.
    func recover() throws(PluginFailure) {
        guard let root = openDirectory(rootFD, ".") else { throw failure("open root \(rootPath)", errno) }
        try recover(root, path: rootPath)
    }

    private func recover(_ directory: Descriptor, path: String) throws(PluginFailure) {
        guard let entries = readDirectory(directory.fd) else { throw failure("read \(path)", errno) }
        for entry in entries where entry.mayBeDirectory && !entry.name.hasPrefix(".") {
            // A symlink or a file that is not a directory is skipped: it is not ours to walk into.
            guard let child = openDirectory(directory.fd, entry.name) else { continue }
            if entry.name == "@v" {
                try recoverVersionDirectory(child, path: path + "/@v")
            } else {
                try recover(child, path: path + "/" + entry.name)
            }
        }
    }

    /// Removes abandoned temporary files, .mod/.zip without .info, and .info without .mod or .zip (possible only
    /// after a power loss reordered renames), then rewrites `list` if it differs from the .info files.
    private func recoverVersionDirectory(_ directory: Descriptor, path: String) throws(PluginFailure) {
        let what = "recover \(path)"
        let lockFD = retrying { openat(directory.fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644) }
        if lockFD < 0 {
            // A read-only root cannot be repaired, and nothing can be writing into it either.
            if errno == EROFS { return }
            throw failure("\(what): open .lock", errno)
        }
        close(lockFD)
        try withModuleLock(directory.fd, what) { () throws(PluginFailure) in
            guard let entries = readDirectory(directory.fd) else { throw failure("\(what): read", errno) }
            let names = Set(entries.map(\.name))
            var changed = false
            for name in names where name.hasPrefix(TemporaryFile.prefix) && removeIfAbandoned(directory.fd, name) {
                changed = true
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
            try rewriteList(directory.fd, what)
        }
    }

    /// Removes a temporary file that no live writer holds (writers flock theirs from creation to rename).
    /// Returns whether it was removed.
    private func removeIfAbandoned(_ directory: Int32, _ name: String) -> Bool {
        let fd = retrying { openat(directory, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
        guard fd >= 0 else { return false }
        // Unlink while holding the flock: a writer that created the file but has not locked it yet gets the lock
        // only after this, finds the file unlinked, and starts over with a new one.
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        return unlinkat(directory, name, 0) == 0
    }
}
