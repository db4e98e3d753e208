import Basics
import HostSupport
import PluginHost
import Glibc
import FoundationEssentials
import Synchronization
import SystemShims

/// HTTP/1.1 server on epoll: one event loop per thread, all sharing one listening socket (`Listener`).
/// Keep-alive and pipelining (responses in request order), GET and HEAD, sendfile for fd blobs, stream
/// blobs pulled by `StreamReaders` off the loops.
///
/// This type is the facade: it binds, starts the loops, begins the shutdown and counts what is open.
/// `EventLoop` runs epoll, `Connection` speaks HTTP/1.1 on one socket, `RequestParser` reads heads.
package final class HTTPServer: @unchecked Sendable {
    package let settings: ServerSettings
    private let handler: RequestHandler
    /// Sees finished requests (logs, metrics); nil for none.
    package let observer: RequestObserver?
    private(set) var loops: [EventLoop] = []
    /// The shared listening socket; -1 before `bind`.
    private var listenerFD: Int32 = -1
    /// Loops that have let go of the listener at shutdown; the last one closes it.
    let loopsDrained = Atomic<Int>(0)
    /// Requests parsed and not yet completely answered, across loops.
    let activeRequests = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)
    /// The bound port (useful when listening on port 0).
    package private(set) var port: UInt16 = 0
    /// Admission: the global and per-client caps, shared by the loops.
    package let limiter: ConnectionLimiter
    /// The threads that read stream blobs for every loop's connections.
    package let streamReaders: StreamReaders

    package init(settings: ServerSettings, handler: RequestHandler, observer: RequestObserver? = nil) {
        self.settings = settings
        self.handler = handler
        self.observer = observer
        limiter = ConnectionLimiter(maxConnections: settings.maxConnections, maxPerClient: settings.perClientCap)
        streamReaders = StreamReaders(threads: settings.streamReaders)
    }

    /// Requests in progress right now.
    package var inFlight: Int { activeRequests.load(ordering: .relaxed) }

    /// Open client connections right now.
    package var connectionCount: Int { limiter.open }

    /// Refuses new connections at once (the listener stops listening: connect gets ECONNREFUSED, so a
    /// load balancer fails over instead of waiting); each connection closes after its current response,
    /// idle ones at once. Returns immediately: poll `inFlight` to wait for the drain.
    package func beginShutdown() {
        draining.store(true, ordering: .relaxed)
        // shutdown, not close: the loops may be inside accept on this fd; the last loop to drain closes it.
        if listenerFD >= 0 { Glibc.shutdown(listenerFD, Int32(SHUT_RDWR)) }
        for loop in loops { loop.wake() }
    }

    /// CPUs in this process's affinity mask (what a `taskset` allows), at least 1.
    package static func availableCPUs() -> Int {
        let count = Int(athens_affinity_cpu_count())
        return count > 0 ? count : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Binds the listener and makes the loops; throws with a one-line reason (bad address, port in use).
    package func bind() throws(ServerError) {
        let (host, requestedPort) = try Self.parseListen(settings.listen)
        let threadCount = settings.threads > 0 ? settings.threads : Self.availableCPUs()
        let fd = try Listener.open(host: host, port: requestedPort, listen: settings.listen)
        listenerFD = fd
        port = Listener.boundPort(fd)
        for _ in 0..<threadCount {
            loops.append(EventLoop(server: self, listener: fd, handler: handler))
        }
    }

    /// Starts the loops on their own threads and returns.
    package func start() {
        for loop in loops {
            PosixThread.start(name: "athens-http", stackSize: 1 << 20) { loop.run() }
        }
    }

    /// Asks the loop with the most evictable connections (other than `loop`) to close one.
    func requestEviction(besides loop: EventLoop) {
        guard let target = loops.filter({ $0 !== loop }).max(by: { $0.idleCount.load(ordering: .relaxed) < $1.idleCount.load(ordering: .relaxed) }),
              target.idleCount.load(ordering: .relaxed) > 0 else { return }
        target.evictionRequests.add(1, ordering: .relaxed)
        target.wake()
    }

    /// Splits a `listen` setting into host and port: "127.0.0.1:3000", ":3000" (every address), "[::1]:3000".
    package static func parseListen(_ listen: String) throws(ServerError) -> (host: String, port: UInt16) {
        // Bytes, not Characters: "[" or ":" followed by a combining mark is one Character (fuzzed).
        let utf8 = listen.utf8
        var host: Substring, portText: Substring
        if utf8.first == UInt8(ascii: "[") {
            guard let close = utf8.firstIndex(of: UInt8(ascii: "]")) else { throw ServerError(description: "listen \"\(listen)\": bad IPv6 address") }
            host = listen[utf8.index(after: utf8.startIndex)..<close]
            let colon = utf8.index(after: close)
            guard colon < utf8.endIndex, utf8[colon] == UInt8(ascii: ":") else { throw ServerError(description: "listen \"\(listen)\": missing port") }
            portText = listen[utf8.index(after: colon)...]
        } else {
            guard let colon = utf8.lastIndex(of: UInt8(ascii: ":")) else { throw ServerError(description: "listen \"\(listen)\": missing port (e.g. 127.0.0.1:3000)") }
            host = listen[..<colon]
            portText = listen[utf8.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw ServerError(description: "listen \"\(listen)\": bad port") }
        // A bracket left in the host ("0[::1]:80") is never an address, and ATHENS_PORT could not re-bracket it (fuzzed).
        guard !host.utf8.contains(UInt8(ascii: "[")), !host.utf8.contains(UInt8(ascii: "]")) else {
            throw ServerError(description: "listen \"\(listen)\": bad address")
        }
        return (host.isEmpty ? "0.0.0.0" : String(host), port)
    }
}
