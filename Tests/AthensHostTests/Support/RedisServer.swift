import Foundation
import RedisClient
import Testing

/// A private redis-server (Debian's package) for one test: 127.0.0.1 on a free port, a unix socket and its data
/// in its own directory, no persistence, optional requirepass; a child process stopped by pid.
final class RedisServer {
    let process: ChildProcess
    let port: UInt16
    let directory: String
    let password: String?
    private var ownsDirectory: Bool

    var socketPath: String { directory + "/redis.sock" }
    /// `redis://[:password@]127.0.0.1:port/db`.
    func url(db: Int = 0) -> String {
        "redis://\(password.map { ":\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)@" } ?? "")127.0.0.1:\(port)/\(db)"
    }
    var pid: Int32 { process.process.processIdentifier }

    /// Starts redis-server; `port` and `directory` reuse a previous server's (a restart), else fresh ones.
    init(password: String? = nil, port: UInt16? = nil, directory: String? = nil) throws {
        self.password = password
        ownsDirectory = directory == nil
        self.directory = directory ?? TestSupport.makeTemporaryDirectory("redis")
        var attempt = 0
        while true {
            let chosen = try port ?? TestSupport.freePort()
            var arguments = ["redis-server", "--port", String(chosen), "--bind", "127.0.0.1", "--dir", self.directory,
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--unixsocket", self.directory + "/redis.sock", "--unixsocketperm", "700",
                             "--logfile", self.directory + "/redis.log", "--databases", "16"]
            if let password { arguments += ["--requirepass", password] }
            let child = try ChildProcess("/usr/bin/env", arguments)
            if RedisServer.waitReady(socket: self.directory + "/redis.sock", password: password, child: child) {
                process = child
                self.port = chosen
                return
            }
            child.stop()
            attempt += 1
            // A free port may be taken by another test between choosing and binding it: choose again.
            if port != nil || attempt >= 3 {
                let log = (try? String(contentsOfFile: self.directory + "/redis.log", encoding: .utf8)) ?? ""
                throw TestFailure("redis-server did not start: \(log.suffix(2000)) \(child.stderr)")
            }
        }
    }

    /// Polls PING on the unix socket until it answers (generous deadline) or the child exits.
    private static func waitReady(socket: String, password: String?, child: ChildProcess) -> Bool {
        var configuration = RedisConfiguration(endpoint: .unix(path: socket), password: password)
        configuration.connectTimeoutMs = 500
        configuration.commandTimeoutMs = 1000
        var ready = false
        _ = waitUntil(timeout: 20) {
            ready = (try? RedisClient(configuration)).flatMap { try? $0.command(["PING"]) }?.string == "PONG"
            return ready || !child.process.isRunning
        }
        return ready
    }

    /// A client on this server with test-friendly timeouts.
    func client(db: Int = 0, poolSize: Int = 8, unix: Bool = false) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: unix ? "unix://\(socketPath)?db=\(db)" : url(db: db))
        configuration.password = password
        configuration.poolSize = poolSize
        return try RedisClient(configuration)
    }

    /// SIGKILL, then wait for the exit: a crash, as far as clients can tell.
    func kill9() {
        if process.process.isRunning { kill(process.process.processIdentifier, SIGKILL) }
        process.stop()
    }

    /// The same server again: same port, directory and password; the new one owns (and removes) the directory.
    func restart() throws -> RedisServer {
        kill9()
        let next = try RedisServer(password: password, port: port, directory: directory)
        next.ownsDirectory = ownsDirectory
        ownsDirectory = false
        return next
    }

    /// SIGKILL rather than SIGTERM: the child may inherit a signal mask with SIGTERM blocked from the test runner's
    /// thread (it then ignores SIGTERM), and a server without persistence has nothing to save.
    func stop() {
        kill9()
        if ownsDirectory { TestSupport.removeDirectory(directory) }
    }
}

/// Number of clients blocked (flag b) in `command` (e.g. "blpop"), from CLIENT LIST.
func clientsIn(_ command: String, _ client: RedisClient) -> Int {
    guard let list = (try? client.command(["CLIENT", "LIST"]))?.string else { return 0 }
    return list.split(separator: "\n").filter { $0.contains(" flags=b ") && $0.contains(" cmd=\(command) ") }.count
}

/// A TCP listener on 127.0.0.1 that plays a broken or hostile Redis: each connection gets `behaviour`.
final class FakeRedis: @unchecked Sendable {
    enum Behaviour: Sendable {
        /// Accepts, reads, never answers.
        case silent
        /// Answers every read with these bytes.
        case reply([UInt8])
        /// Answers the first read with `head`, then writes `chunk` until `total` bytes or the client hangs up.
        case stream(head: [UInt8], chunk: [UInt8], total: Int)
    }

    let port: UInt16
    let behaviour: Behaviour
    private let listener: Int32
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var stopped = false
    private var sentBytes = 0
    private let done = DispatchGroup()

    init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { close(fd); throw TestFailure("fake redis: bind failed, errno \(errno)") }
        port = UInt16(bigEndian: address.sin_port)
        done.enter()
        Thread.detachNewThread { [self] in acceptLoop(); done.leave() }
    }

    /// Bytes written to clients so far.
    var sent: Int { lock.withLock { sentBytes } }

    private func acceptLoop() {
        while true {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            if lock.withLock({ stopped }) { return }
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            lock.withLock { connections.append(fd) }
            done.enter()
            Thread.detachNewThread { [self] in serve(fd); done.leave() }
        }
    }

    private func serve(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            guard read(fd, &buffer, buffer.count) > 0 else { return }
            switch behaviour {
            case .silent: continue
            case .reply(let bytes): if !write(fd, bytes) { return }
            case .stream(let head, let chunk, let total):
                guard write(fd, head) else { return }
                var written = head.count
                while written < total, !lock.withLock({ stopped }), write(fd, chunk) { written += chunk.count }
                return
            }
        }
    }

    private func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
            lock.withLock { sentBytes += n }
        }
        return true
    }

    func stop() {
        lock.withLock { stopped = true }
        done.wait()
        close(listener)
        lock.withLock { for fd in connections { close(fd) } }
    }
}
