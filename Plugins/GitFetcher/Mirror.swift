// Mirror: one bare mirror per repository under cacheDirectory, cloned once and updated with `git fetch`.
// Updates take a per-repository lock (in-process lock + flock, so two athens processes sharing the
// directory also take turns); reads (log, archive, cat-file) run concurrently with each other and with fetches.
import Basics
import FoundationEssentials
import PluginKit
#if canImport(Glibc)
import Glibc
#endif

/// A bare mirror of one repository: refs/heads/*, refs/tags/* and the remote's HEAD.
final class Mirror: @unchecked Sendable {
    // @unchecked: `lastRefresh` and `refs` are guarded by `lock`; the rest is immutable.
    /// The repository URL as configured (may carry credentials: never print it, print `shownURL`).
    let url: String
    /// `url` without userinfo, for messages.
    let shownURL: String
    /// The mirror's directory (a bare repository).
    let directory: String
    private let git: GitRunner
    private let lock = PosixLock()
    /// Held while cloning or fetching, so one update runs at a time and the others wait for its result.
    private let updateLock = PosixLock()
    private var lastRefresh: Date?
    private var cachedRefs: Refs?

    /// The refs of the mirror: tag name → peeled commit, branch name → commit, and the remote HEAD's commit.
    struct Refs {
        var tags: [String: String] = [:]
        var branches: [String: String] = [:]
        var head: String?
    }

    init(url: String, directory: String, git: GitRunner) {
        self.url = url
        shownURL = GitRunner.redact(url)
        self.directory = directory
        self.git = git
    }

    /// Whether the mirror has been cloned (by this process or an earlier one).
    var exists: Bool { FileManager.default.fileExists(atPath: directory + "/HEAD") }

    /// Runs a local git command in the mirror.
    func run(_ arguments: [String], what: String,
             consume: ((UnsafeRawBufferPointer) throws(PluginFailure) -> Void)? = nil) throws(PluginFailure) -> GitResult {
        try git.run(["--git-dir=" + directory] + arguments, timeout: git.localTimeout, what: what, consume: consume)
    }

    /// Makes sure the mirror exists and, if `maxAge` is given, that it was fetched at most that long ago.
    func update(maxAge: Double?, subject: String) throws(PluginFailure) {
        if isFresh(maxAge) { return }
        // One update at a time; whoever waited re-checks, because the update it waited for may be enough.
        updateLock.lock()
        defer { updateLock.unlock() }
        if isFresh(maxAge) { return }
        let fileLock = try FileLock(path: directory + ".lock", subject: subject)
        defer { fileLock.release() }
        var refreshed = Date()
        if exists {
            if maxAge != nil || !hasRefs() {
                try fetch(subject: subject)
            } else {
                // Made by an earlier run or another process: good for tags and commits, but never fetched
                // by us, so anything that wants a recent mirror fetches first.
                refreshed = .distantPast
            }
        } else {
            try clone(subject: subject)
        }
        lock.withLock {
            lastRefresh = refreshed
            cachedRefs = nil
        }
    }

    /// Whether the mirror exists and, if `maxAge` is given, was fetched at most that long ago.
    private func isFresh(_ maxAge: Double?) -> Bool {
        lock.withLock {
            guard let lastRefresh else { return false }
            guard let maxAge else { return true }
            return Date().timeIntervalSince(lastRefresh) < maxAge
        }
    }

    private func hasRefs() -> Bool {
        guard let result = try? run(["for-each-ref", "--count=1", "--format=%(refname)"], what: "list refs") else { return false }
        return result.status == 0 && !result.stdout.isEmpty
    }

    private func clone(subject: String) throws(PluginFailure) {
        let parent = directory.deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        // Clone beside the final place and rename: a half-made mirror is never seen, even after a crash.
        let temporary = directory + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        let initialized = try git.run(["init", "--bare", "--quiet", temporary], timeout: git.localTimeout, what: "\(subject): git init")
        guard initialized.status == 0 else { throw .unavailable("\(subject): git init \(temporary) failed: \(initialized.stderr)") }
        let configured = try git.run(["--git-dir=" + temporary, "config", "remote.origin.url", url], timeout: git.localTimeout,
                                     what: "\(subject): git config")
        guard configured.status == 0 else { throw .unavailable("\(subject): git config in \(temporary) failed: \(configured.stderr)") }
        try fetch(into: temporary, subject: subject, action: "git clone")
        // As the go command does (golang.org/issue/27153): the tree's .gitattributes must not change what
        // `git archive` writes, so export-subst and export-ignore are switched off for every path.
        let attributes = temporary + "/info/attributes"
        try? FileManager.default.createDirectory(atPath: temporary + "/info", withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: attributes, contents: Data("\n* -export-subst -export-ignore\n".utf8)) else {
            throw .unavailable("\(subject): cannot write \(attributes)")
        }
        guard rename(temporary, directory) == 0 else {
            throw .unavailable("\(subject): cannot move the new mirror into place: \(String(cString: strerror(errno)))")
        }
    }

    private func fetch(subject: String) throws(PluginFailure) {
        try fetch(into: directory, subject: subject, action: "git fetch")
    }

    /// Fetches every branch and tag, and the remote's HEAD (its default branch, for `latest` without tags)
    /// into refs/athens/remote-head.
    private func fetch(into repository: String, subject: String, action: String) throws(PluginFailure) {
        let result = try git.run(["--git-dir=" + repository, "fetch", "--quiet", "--prune", "--force", "--no-tags", "origin",
                                  "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", "+HEAD:refs/athens/remote-head"],
                                 timeout: git.networkTimeout, what: "\(subject): \(action) \(shownURL)")
        guard result.status == 0 else { throw Self.remoteFailure(result, subject: subject, action: action, url: shownURL) }
    }

    /// A failed clone or fetch: a repository the server says does not exist is not found (so GOPROXY falls
    /// through); anything else (network, authentication, server error) is unavailable.
    static func remoteFailure(_ result: GitResult, subject: String, action: String, url: String) -> PluginFailure {
        let text = result.stderr.lowercased()
        let missing = ["repository not found", "does not appear to be a git repository", "does not exist",
                       "not found", "no such file or directory"]
        let message = "\(subject): \(action) \(url) failed: \(result.stderr.prefix(300))"
        if missing.contains(where: text.contains) && !text.contains("could not resolve host") {
            return .notFound(message)
        }
        return .unavailable(message)
    }

    /// The refs, read once per update.
    func refs() throws(PluginFailure) -> Refs {
        if let cached = lock.withLock({ cachedRefs }) { return cached }
        let result = try run(["for-each-ref", "--format=%(objectname) %(*objectname) %(refname)",
                              "refs/tags", "refs/heads", "refs/athens/remote-head"], what: "list refs of \(shownURL)")
        guard result.status == 0 else { throw .unavailable("git for-each-ref in the mirror of \(shownURL) failed: \(result.stderr)") }
        var refs = Refs()
        for line in result.stdout.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, let name = String(validating: fields[2], as: UTF8.self) else { continue }
            let object = String(decoding: fields[0], as: UTF8.self)
            let peeled = String(decoding: fields[1], as: UTF8.self)
            let commit = peeled.isEmpty ? object : peeled
            if name.hasPrefix("refs/tags/") {
                refs.tags[String(name.dropFirst(10))] = commit
            } else if name.hasPrefix("refs/heads/") {
                refs.branches[String(name.dropFirst(11))] = commit
            } else if name == "refs/athens/remote-head" {
                refs.head = commit
            }
        }
        lock.withLock { cachedRefs = refs }
        return refs
    }
}

/// An exclusive flock on a file, for updates shared by several processes.
struct FileLock {
    private let fd: Int32

    init(path: String, subject: String) throws(PluginFailure) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .unavailable("\(subject): cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let message = String(cString: strerror(errno))
            close(fd)
            throw .unavailable("\(subject): cannot lock \(path): \(message)")
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Every mirror of one plugin instance, one per repository URL.
final class MirrorStore: @unchecked Sendable {
    // @unchecked: `mirrors` is guarded by `lock`.
    private let root: String
    private let git: GitRunner
    private let lock = PosixLock()
    private var mirrors: [String: Mirror] = [:]

    init(root: String, git: GitRunner) {
        self.root = root
        self.git = git
    }

    /// The mirror of `url` (not yet cloned: call `update`).
    func mirror(for url: String) -> Mirror {
        lock.withLock {
            if let mirror = mirrors[url] { return mirror }
            let mirror = Mirror(url: url, directory: root + "/" + Self.directoryName(url), git: git)
            mirrors[url] = mirror
            return mirror
        }
    }

    /// A readable, collision-free folder name: the URL without credentials, squeezed to [A-Za-z0-9._-],
    /// plus a hash of the whole URL (so two URLs that squeeze alike stay apart).
    static func directoryName(_ url: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in url.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        var readable = ""
        for scalar in GitRunner.redact(url).unicodeScalars.suffix(80) {
            if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "." || scalar == "-" {
                readable.unicodeScalars.append(scalar)
            } else {
                readable += "_"
            }
        }
        let hex = String(hash, radix: 16)
        return readable + "-" + String(repeating: "0", count: 16 - hex.count) + hex + ".git"
    }
}
