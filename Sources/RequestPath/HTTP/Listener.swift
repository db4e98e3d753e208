import HostSupport
import Glibc

/// The listening socket: one per server, shared by every event loop.
///
/// Each loop registers the same fd with `EPOLLEXCLUSIVE`, so a new connection wakes one loop, not all of them.
/// There is deliberately no `SO_REUSEPORT`: a second athens on the same port must fail to bind, not silently
/// take half of the connections. `SO_REUSEADDR` only lets a restart bind while old connections sit in TIME_WAIT.
enum Listener {
    /// A non-blocking socket bound to `host`:`port` and listening; throws with a one-line reason.
    static func open(host: String, port: UInt16, listen: String) throws(ServerError) -> Int32 {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let isV6 = host.contains(":")
        if isV6 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 else { throw ServerError(description: "listen \"\(listen)\": bad address") }
        } else {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            let numeric = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, numeric, &v4.sin_addr) == 1 else { throw ServerError(description: "listen \"\(listen)\": bad address (use an IP address)") }
        }
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = isV6
            ? withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            : withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ServerError(description: "listen \"\(listen)\": \(reason)")
        }
        guard Glibc.listen(fd, 1024) == 0 else {
            close(fd)
            throw ServerError(description: "listen \"\(listen)\": \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// The port `fd` is bound to (what port 0 picked).
    static func boundPort(_ fd: Int32) -> UInt16 {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        // sin_port and sin6_port sit at the same offset.
        return withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
