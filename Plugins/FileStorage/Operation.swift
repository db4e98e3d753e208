// One save or remove in flight: its intent file in the work directory, which recovery replays after a crash.
import Glibc
import PluginKit

/// One save, remove or repair in flight: `<root>/.tmp/<stem>.intent`, flock'd by its owner for its whole life
/// and holding the `@v` directory it works on, where the operation's files are `.tmp-<stem>.<suffix>`.
/// Start-up recovery treats an intent no live process holds as a crashed operation (see FileStorage+Recovery).
final class Operation {
    let workFD: Int32
    let stem: String
    private let intentFD: Int32
    private let what: String
    private var files: [WorkFile] = []

    /// Creates the intent exclusively, locks it and writes `directory` into it.
    init(in workFD: Int32, directory: String, what: String) throws(PluginFailure) {
        self.workFD = workFD
        self.what = what
        var generator = SystemRandomNumberGenerator()
        while true {
            let candidate = String(generator.next() as UInt64, radix: 16)
            let name = candidate + ".intent"
            let fd = retrying { openat(workFD, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644) }
            if fd < 0 {
                if errno == EEXIST { continue }
                throw failure("\(what): create an intent in the work directory", errno)
            }
            guard retrying({ flock(fd, LOCK_EX) }) == 0 else {
                let code = errno
                unlinkat(workFD, name, 0)
                close(fd)
                throw failure("\(what): flock the intent", code)
            }
            // Recovery in another process may have judged the intent abandoned between our open and our flock;
            // if so, it is unlinked now and can never be unlinked under us later (recovery only takes unlocked ones).
            var st = stat()
            if fstat(fd, &st) == 0, st.st_nlink == 0 {
                close(fd)
                continue
            }
            guard Array((directory + "\n").utf8).withUnsafeBytes({ writeAll(fd, $0) }) else {
                let code = errno
                unlinkat(workFD, name, 0)
                close(fd)
                throw failure("\(what): write the intent", code)
            }
            intentFD = fd
            stem = candidate
            return
        }
    }

    /// A new file of this operation in `directory` (`.tmp-<stem><suffix>`, suffix e.g. ".zip"), removed by
    /// `finish` unless renamed into place.
    func file(_ suffix: String, in directory: Descriptor) throws(PluginFailure) -> WorkFile {
        let file = try WorkFile(in: directory, name: FileStorage.workFilePrefix + stem + suffix, what: what)
        files.append(file)
        return file
    }

    /// A work file holding the `list` that `entries` call for (minus `excluding`, plus `adding`), or nil if
    /// the directory's `list` already says exactly that.
    func listFile(for entries: [DirectoryEntry], in directory: Descriptor, excluding: String? = nil, adding: String? = nil) throws(PluginFailure) -> WorkFile? {
        let content = FileStorage.listContent(entries, in: directory.fd, excluding: excluding, adding: adding)
        if let current = readSmallFile(directory.fd, "list"), current == content { return nil }
        // Each list file of an operation has its own name: a rollback or a repair may write another one.
        let file = try self.file(".list\(files.count)", in: directory)
        try file.write(content)
        return file
    }

    /// Removes the operation's files that were not renamed away, then the intent: last, so recovery never sees
    /// this operation's files without its intent while it lives.
    func finish() {
        for file in files { file.discard() }
        unlinkat(workFD, stem + ".intent", 0)
        close(intentFD)
    }
}
