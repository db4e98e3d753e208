import Foundation

/// A blocking TCP client on 127.0.0.1 for sending exact bytes and reading raw answers.
final class RawClient {
    let fd: Int32

    /// Connects to 127.0.0.1:`port` from `source` (any 127.x works on loopback, so tests can be several clients).
    init(port: UInt16, from source: String = "127.0.0.1") throws {
        fd = Self.connect(port: port, from: source)
        guard fd >= 0 else { throw TestFailure("connect from \(source): \(String(cString: strerror(-fd)))") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A blocking TCP connection to 127.0.0.1:`port` from `source`: the fd, or -errno (ECONNREFUSED…).
    static func connect(port: UInt16, from source: String = "127.0.0.1") -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -errno }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = local
        remote.sin_port = port.bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        // Bound only when not the default, so the usual client keeps the kernel's choice of source.
        let bound = source == "127.0.0.1" ? 0
            : withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = bound == 0 && withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        if connected { return fd }
        let error = errno
        close(fd)
        return -error
    }

    /// Takes over a connected socket (one bound to another source address, say); closes it on deinit.
    init(adopting fd: Int32) {
        self.fd = fd
    }

    deinit { close(fd) }

    /// Turns Nagle's algorithm off, so every `send` leaves as its own segment (a byte at a time really is one).
    func setNoDelay() {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends `text` one byte per write with TCP_NODELAY, pausing `pause` µs after each byte: pacing as a slow
    /// client sends, so the peer gets the bytes in separate reads.
    func sendByteByByte(_ text: String, pause: useconds_t = 2_000) {
        setNoDelay()
        for byte in text.utf8 {
            send([byte])
            usleep(pause)
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            done += n
        }
    }

    /// Reads until the peer closes or `timeout` passes.
    func readAll(timeout: Double = 10) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// Reads one complete response (head + Content-Length body). HEAD responses have no body.
    func readResponse(head isHead: Bool = false, timeout: Double = 10) -> (status: Int, headers: [String: String], body: [UInt8])? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let end = Self.headEnd(data) {
                let head = String(decoding: data[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
                var headers: [String: String] = [:]
                for line in lines where !line.isEmpty {
                    if let colon = line.firstIndex(of: ":") {
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                }
                let length = isHead ? 0 : Int(headers["content-length"] ?? "0") ?? 0
                if data.count >= end + 4 + length {
                    pending = Array(data[(end + 4 + length)...])
                    return (status, headers, Array(data[(end + 4)..<(end + 4 + length)]))
                }
            }
            if !pending.isEmpty { data += pending; pending = []; continue }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            data += buffer[0..<n]
        }
        return nil
    }

    private var pending: [UInt8] = []

    private static func headEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i }
        return nil
    }

    /// True when the server has closed the connection (reads EOF within `timeout`).
    func isClosed(timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var byte: UInt8 = 0
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { return true }
        }
        return false
    }
}
