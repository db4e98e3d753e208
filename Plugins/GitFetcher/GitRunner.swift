// GitRunner: runs git without a shell (posix_spawn, argument vector), with a deadline per call, output
// streamed or bounded, the child (and its process group: ssh, remote helpers) always killed on timeout and reaped.
import Basics
import FoundationEssentials
import PluginKit
#if canImport(Glibc)
import Glibc
#endif

/// How a git call ended when it ran to completion.
struct GitResult {
    /// The exit status (0 = success); a signal death reads as 128 + signal.
    var status: Int32
    /// Standard output, unless it was streamed to a consumer.
    var stdout: [UInt8]
    /// The end of standard error, with credentials in URLs removed.
    var stderr: String

    /// Standard output as text without the trailing newline.
    var text: String {
        var bytes = stdout[...]
        while bytes.last == 0x0A || bytes.last == 0x0D { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Spawns git. Every call may run concurrently with others.
struct GitRunner: Sendable {
    /// Absolute path of the git executable.
    let executable: String
    /// The environment every git call gets: the host's, plus no terminal prompts.
    let environment: [String]
    /// Deadline of a call that touches the network (clone, fetch).
    let networkTimeout: Double
    /// Deadline of a local call (log, archive, cat-file...).
    let localTimeout: Double

    /// Most bytes of standard output kept when it is not streamed.
    static let maxCapturedOutput = 64 << 20
    /// Most bytes of standard error kept for messages.
    static let maxCapturedError = 8 << 10

    init(executable: String, networkTimeout: Double, localTimeout: Double) {
        self.executable = executable
        self.networkTimeout = networkTimeout
        self.localTimeout = localTimeout
        var environment: [String] = []
        var seen = Set<String>()
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            let name = String(text.prefix { $0 != "=" })
            seen.insert(name)
            // A prompt would hang the call until its deadline: fail at once instead (the go command does the same).
            if name != "GIT_TERMINAL_PROMPT" { environment.append(text) }
            pointer += 1
        }
        environment.append("GIT_TERMINAL_PROMPT=0")
        if !seen.contains("GCM_INTERACTIVE") { environment.append("GCM_INTERACTIVE=never") }
        // ssh must not ask for a passphrase or a host key confirmation either; keys come from the agent.
        if !seen.contains("GIT_SSH_COMMAND") && !seen.contains("GIT_SSH") { environment.append("GIT_SSH_COMMAND=ssh -o BatchMode=yes") }
        self.environment = environment
    }

    /// Finds `git` on PATH, or takes `configured` if given.
    static func locate(configured: String?) throws(PluginFailure) -> String {
        if let configured {
            guard access(configured, X_OK) == 0 else { throw .invalid("config.gitPath: \(configured) is not an executable file") }
            return configured
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = String(directory) + "/git"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw .invalid("git not found on PATH; install git or set config.gitPath")
    }

    /// Runs `git <arguments>` and waits for it, at most `timeout` seconds (then the whole process group is
    /// killed and `.timeout` thrown). Standard output goes to `consume` piece by piece if given, else is
    /// collected (at most `maxCapturedOutput` bytes). A throwing `consume` stops the child and rethrows.
    func run(_ arguments: [String], timeout: Double, what: String,
             consume: ((UnsafeRawBufferPointer) throws(PluginFailure) -> Void)? = nil) throws(PluginFailure) -> GitResult {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard Self.pipeCloseOnExec(&outPipe) else { throw .internal("\(what): pipe: \(String(cString: strerror(errno)))") }
        guard Self.pipeCloseOnExec(&errPipe) else {
            close(outPipe[0]); close(outPipe[1])
            throw .internal("\(what): pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a timeout kills git's children (ssh, git-remote-https) too. Signals
        // are reset to default in the child: the host may ignore SIGPIPE, git must not.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigmask(&attributes, &noMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = environment.map { strdup($0) }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawn(&pid, executable, &actions, &attributes,
                            UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                            UnsafeMutablePointer(mutating: envBuffer.baseAddress!))
            }
        }
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw .internal("\(what): cannot start git: \(String(cString: strerror(spawned)))")
        }

        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var failure: PluginFailure?
        let deadline = Date().addingTimeInterval(timeout)
        var open = [outPipe[0], errPipe[0]]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        readLoop: while !open.isEmpty {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                failure = .timeout("\(what): git did not finish within \(Int(timeout)) s")
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining * 1000, 1000)) + 1)
            if ready < 0 {
                if errno == EINTR { continue }
                failure = .internal("\(what): poll: \(String(cString: strerror(errno)))")
                break
            }
            for entry in fds where entry.revents != 0 {
                let count = read(entry.fd, buffer.baseAddress, buffer.count)
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    failure = .internal("\(what): read: \(String(cString: strerror(errno)))")
                    break readLoop
                }
                if count == 0 {
                    open.removeAll { $0 == entry.fd }
                    continue
                }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                if entry.fd == outPipe[0] {
                    if let consume {
                        do throws(PluginFailure) {
                            try consume(chunk)
                        } catch {
                            failure = error
                            break readLoop
                        }
                    } else {
                        guard stdout.count + count <= Self.maxCapturedOutput else {
                            failure = .internal("\(what): git wrote more than \(Self.maxCapturedOutput) bytes")
                            break readLoop
                        }
                        stdout.append(contentsOf: chunk)
                    }
                } else {
                    stderr.append(contentsOf: chunk)
                    if stderr.count > 2 * Self.maxCapturedError { stderr.removeFirst(stderr.count - Self.maxCapturedError) }
                }
            }
        }
        if failure != nil {
            // The group is ours alone (setpgroup 0 made pid its leader).
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        close(outPipe[0])
        close(errPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if let failure { throw failure }
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let errorText = Self.redact(String(decoding: stderr.suffix(Self.maxCapturedError), as: UTF8.self))
        return GitResult(status: exit, stdout: stdout, stderr: errorText)
    }

    /// A pipe whose ends other children never inherit (the dup2 in the spawn clears the flag on 1 and 2).
    private static func pipeCloseOnExec(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    /// `text` with the userinfo of every URL removed ("https://user:token@host" → "https://host") and
    /// collapsed to one line, so that messages never carry credentials.
    static func redact(_ text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let scheme = rest.firstByteRange(of: "://") {
            out += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == " " || $0 == "\n" || $0 == "'" || $0 == "\"" } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                rest = rest[rest.index(after: at)...]
            }
        }
        out += rest
        return out.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace }
            .filter { !$0.isEmpty }.joined(separator: " / ")
    }
}
