// One connection to Redis on a non-blocking socket; every wait is a poll(2) bounded by the call's deadline.
#if canImport(Glibc)
import Glibc
#endif

/// A single connection, used by one thread at a time (the pool hands it out). Once any I/O or protocol error
/// happens it is `broken` and must be closed: a reply may be half read, so the stream cannot be trusted.
final class RedisConnection {
    private(set) var fd: Int32 = -1
    private(set) var broken = false
    private var reader: RESPReader
    private let configuration: RedisConfiguration

    /// Connects, then sends AUTH and SELECT as configured, all within `deadline`.
    init(_ configuration: RedisConfiguration, deadline: Deadline) throws(RedisError) {
        self.configuration = configuration
        reader = RESPReader(limits: configuration.limits)
        do throws(RedisError) {
            try open(deadline: deadline)
            var setup: [[[UInt8]]] = []
            if let password = configuration.password {
                setup.append(configuration.username.map { [Array("AUTH".utf8), Array($0.utf8), Array(password.utf8)] }
                             ?? [Array("AUTH".utf8), Array(password.utf8)])
            }
            if configuration.database != 0 { setup.append([Array("SELECT".utf8), Array(String(configuration.database).utf8)]) }
            if !setup.isEmpty {
                let replies = try pipeline(setup, deadline: deadline)
                for (command, reply) in zip(setup, replies) {
                    if case .error(let text) = reply {
                        let what = command[0] == Array("AUTH".utf8) ? "AUTH" : "SELECT \(configuration.database)"
                        throw RedisError.server("\(what) failed on \(configuration): \(text)")
                    }
                }
            }
        } catch {
            close()
            throw error.redacting(configuration.password)
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        broken = true
    }

    /// False when the idle connection has been closed by the server or has unexpected bytes waiting; checked
    /// before a pooled connection is reused, so a restart of Redis costs no failed call.
    var looksHealthy: Bool {
        guard fd >= 0, !broken, reader.bufferedCount == 0 else { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) == 0
    }

    /// Sends the commands in one write and reads one reply per command. Error replies are returned as `.error`
    /// values (the caller decides); I/O, timeout and protocol failures throw and break the connection.
    func pipeline(_ commands: [[[UInt8]]], deadline: Deadline) throws(RedisError) -> [RedisValue] {
        guard !broken, fd >= 0 else { throw .unavailable("connection to \(configuration) is closed") }
        do throws(RedisError) {
            var out: [UInt8] = []
            for command in commands { RESPEncoder.command(command, into: &out) }
            try write(out, deadline: deadline)
            var replies: [RedisValue] = []
            replies.reserveCapacity(commands.count)
            while replies.count < commands.count { replies.append(try readReply(deadline: deadline)) }
            return replies
        } catch {
            close()
            throw error.redacting(configuration.password)
        }
    }

    // MARK: - Sockets

    private func open(deadline: Deadline) throws(RedisError) {
        switch configuration.endpoint {
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .invalidArgument("unix socket path too long") }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            try withUnsafeBytes(of: &address) { raw throws(RedisError) in
                try connect(family: AF_UNIX, address: raw.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                            length: socklen_t(MemoryLayout<sockaddr_un>.size), deadline: deadline)
            }
        case .tcp(let host, let port):
            // getaddrinfo blocks without a timeout of its own; numeric hosts (the usual 127.0.0.1) resolve at once.
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let first = list else {
                throw .unavailable("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(list) }
            var lastError: RedisError = .unavailable("no address for \(host)")
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                do {
                    try connect(family: current.pointee.ai_family, address: current.pointee.ai_addr,
                                length: current.pointee.ai_addrlen, deadline: deadline)
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return
                } catch {
                    lastError = error
                    if case .timeout = error { throw error }
                }
                entry = current.pointee.ai_next
            }
            throw lastError
        }
    }

    private func connect(family: Int32, address: UnsafePointer<sockaddr>, length: socklen_t, deadline: Deadline) throws(RedisError) {
        let socketFD = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else { throw .unavailable("socket(): \(errorText(errno))") }
        var connected = false
        defer { if !connected { Glibc.close(socketFD) } }
        if Glibc.connect(socketFD, address, length) != 0 {
            guard errno == EINPROGRESS || errno == EAGAIN else { throw .unavailable("connect to \(configuration): \(errorText(errno))") }
            try waitFor(socketFD, events: Int16(POLLOUT), deadline: deadline, doing: "connecting to")
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socketFD, SOL_SOCKET, SO_ERROR, &error, &size)
            guard error == 0 else { throw .unavailable("connect to \(configuration): \(errorText(error))") }
        }
        connected = true
        fd = socketFD
    }

    private func waitFor(_ socketFD: Int32, events: Int16, deadline: Deadline, doing: String) throws(RedisError) {
        while true {
            let remaining = deadline.remaining
            if remaining <= 0 { throw .timeout("\(doing) \(configuration)") }
            var pfd = pollfd(fd: socketFD, events: events, revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining, Int(Int32.max))))
            if ready > 0 { return }  // readable, writable, or an error/hangup the next call reports
            if ready < 0 && errno != EINTR { throw .unavailable("poll: \(errorText(errno))") }
        }
    }

    private func write(_ bytes: [UInt8], deadline: Deadline) throws(RedisError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent > 0 { offset += sent; continue }
            if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                try waitFor(fd, events: Int16(POLLOUT), deadline: deadline, doing: "writing to")
                continue
            }
            if sent < 0 && errno == EINTR { continue }
            throw .unavailable("writing to \(configuration): \(errorText(errno))")
        }
    }

    private func readReply(deadline: Deadline) throws(RedisError) -> RedisValue {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            if let value = try reader.next() { return value }
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received > 0 {
                reader.feed(chunk[..<received])
                continue
            }
            if received == 0 { throw .unavailable("connection closed by \(configuration)") }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                try waitFor(fd, events: Int16(POLLIN), deadline: deadline, doing: "waiting for a reply from")
                continue
            }
            if errno == EINTR { continue }
            throw .unavailable("reading from \(configuration): \(errorText(errno))")
        }
    }
}

func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
