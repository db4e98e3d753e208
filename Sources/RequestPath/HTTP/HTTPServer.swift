import HostSupport
import PluginHost
import Glibc
import Foundation
import Synchronization
import SystemShims

/// Answers requests. Called on an event-loop thread: it must not block (hand slow work to a pool).
package protocol RequestHandler: AnyObject, Sendable {
    /// Answer through `responder` exactly once, now or later, from any thread.
    func handle(_ request: Request, responder: Responder)
}

/// What the server knows of a finished request, for logs and metrics.
package struct RequestRecord {
    package var method: Request.Method?
    package var target: String
    package var status: Int
    package var bytes: UInt64
    package var seconds: Double
    package var endpoint: String
    package var cacheResult: String?
    package var requestID: RequestID
    /// False when the connection failed before the response was completely written.
    package var completed: Bool
}

/// A request's id: the client's Athens-Request-ID, or "<loop prefix>-<counter in hex>". Kept as its parts so
/// the hit path builds no string: the bytes go straight into the response head and the crash line.
package struct RequestID: Sendable, CustomStringConvertible {
    /// The client's id, when it sent a sane one.
    package var given: String?
    package var prefix: String
    package var number: UInt64

    package var description: String { given ?? prefix + "-" + String(number, radix: 16) }

    /// Calls `body` with the id's UTF-8 bytes (on the stack for generated ids).
    package func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if var given { return given.withUTF8(body) }
        var prefix = prefix
        return prefix.withUTF8 { p in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: p.count + 17) { out in
                var n = 0
                for c in p { out[n] = c; n += 1 }
                out[n] = UInt8(ascii: "-"); n += 1
                var shift = 60
                while shift > 0 && (number >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
                while shift >= 0 {
                    let digit = UInt8((number >> UInt64(shift)) & 0xF)
                    out[n] = digit < 10 ? 0x30 + digit : 0x57 + digit
                    n += 1
                    shift -= 4
                }
                return body(UnsafeBufferPointer(rebasing: out[0..<n]))
            }
        }
    }
}

/// Sees every finished request, on its event loop's thread; appends any log line to `log` (the loop
/// writes the buffer out once per wake-up, not once per request).
package protocol RequestObserver: AnyObject, Sendable {
    func completed(_ record: RequestRecord, log: inout [UInt8])
}

/// Delivers the response to one request back to its connection's event loop.
package struct Responder: Sendable {
    fileprivate let loop: EventLoop?
    fileprivate let fd: Int32
    fileprivate let generation: UInt64
    /// Receives the response instead of a connection (set only by `init(sink:)`).
    private let sink: (@Sendable (Response) -> Void)?
    /// Metrics label given to responses that carry none.
    package private(set) var endpoint = "other"

    fileprivate init(loop: EventLoop, fd: Int32, generation: UInt64) {
        self.loop = loop
        self.fd = fd
        self.generation = generation
        sink = nil
    }

    /// A responder with no connection: the response goes to `sink` (fuzz/ drives the router with it).
    package init(sink: @escaping @Sendable (Response) -> Void) {
        loop = nil
        fd = -1
        generation = 0
        self.sink = sink
    }

    /// The same responder, labelling its response with `endpoint`.
    package func tagged(_ endpoint: String) -> Responder {
        var copy = self
        copy.endpoint = endpoint
        return copy
    }

    /// Sends `response`. Safe from any thread; a response for a connection that has gone is dropped.
    package func respond(_ response: Response) {
        var response = response
        if response.endpoint == "other" { response.endpoint = endpoint }
        if let sink { return sink(response) }
        loop?.deliver(fd: fd, generation: generation, response: response)
    }
}

/// Server settings, from the manifest.
package struct ServerSettings: Sendable {
    /// e.g. "127.0.0.1:3000", ":3000", "[::1]:3000"; port 0 picks a free port.
    package var listen = "127.0.0.1:3000"
    /// Event-loop threads; 0 means one per CPU in the affinity mask.
    package var threads = 0
    package var limits = RequestLimits()
    /// Seconds allowed from a request's first byte to the end of its head.
    package var headerTimeout: Double = 10
    /// Seconds a keep-alive connection may sit idle between requests.
    package var idleTimeout: Double = 60
    /// Seconds a response may make no write progress (slow readers) before the connection is closed.
    package var writeTimeout: Double = 60
    /// Open connections allowed in all; near it idle ones are evicted, past it new ones get 503.
    package var maxConnections = 10_000
    /// Open connections allowed from one client address (IPv6: one /64); nil: a tenth of `maxConnections`.
    package var maxConnectionsPerClient: Int?

    /// The per-client cap in force.
    package var perClientCap: Int { min(maxConnections, maxConnectionsPerClient ?? max(1, maxConnections / 10)) }
}

/// Why the server could not start.
package struct ServerError: Error, CustomStringConvertible {
    package var description: String
}

/// HTTP/1.1 server on epoll: one event loop per thread, each with its own SO_REUSEPORT listener.
/// Keep-alive and pipelining (responses in request order), GET and HEAD, sendfile for fd blobs.
package final class HTTPServer: @unchecked Sendable {
    package let settings: ServerSettings
    private let handler: RequestHandler
    /// Sees finished requests (logs, metrics); nil for none.
    package let observer: RequestObserver?
    fileprivate var loops: [EventLoop] = []
    /// The shared listening socket; -1 before `bind`.
    private var listenerFD: Int32 = -1
    /// Loops that have let go of the listener at shutdown; the last one closes it.
    fileprivate let loopsDrained = Atomic<Int>(0)
    /// Requests parsed and not yet completely answered, across loops.
    fileprivate let activeRequests = Atomic<Int>(0)
    fileprivate let draining = Atomic<Bool>(false)
    /// The bound port (useful when listening on port 0).
    package private(set) var port: UInt16 = 0
    /// Admission: the global and per-client caps, shared by the loops.
    package let limiter: ConnectionLimiter

    package init(settings: ServerSettings, handler: RequestHandler, observer: RequestObserver? = nil) {
        self.settings = settings
        self.handler = handler
        self.observer = observer
        limiter = ConnectionLimiter(maxConnections: settings.maxConnections, maxPerClient: settings.perClientCap)
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

    /// Binds the listeners; throws with a one-line reason (bad address, port in use).
    package func bind() throws(ServerError) {
        let (host, requestedPort) = try Self.parseListen(settings.listen)
        let threadCount = settings.threads > 0 ? settings.threads : Self.availableCPUs()
        // One listening socket shared by every loop (EPOLLEXCLUSIVE wakes one loop per connection).
        // No SO_REUSEPORT: a second athens on the same port must fail, not silently share it.
        let fd = try Self.listener(host: host, port: requestedPort, listen: settings.listen)
        listenerFD = fd
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        // sin_port and sin6_port sit at the same offset.
        port = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        for _ in 0..<threadCount {
            loops.append(EventLoop(server: self, listener: fd, handler: handler))
        }
    }

    /// Asks the loop with the most evictable connections (other than `loop`) to close one.
    fileprivate func requestEviction(besides loop: EventLoop) {
        guard let target = loops.filter({ $0 !== loop }).max(by: { $0.idleCount.load(ordering: .relaxed) < $1.idleCount.load(ordering: .relaxed) }),
              target.idleCount.load(ordering: .relaxed) > 0 else { return }
        target.evictionRequests.add(1, ordering: .relaxed)
        target.wake()
    }

    /// Starts the loops on their own threads and returns.
    package func start() {
        for loop in loops {
            let thread = Thread { loop.run() }
            thread.name = "athens-http"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

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

    private static func listener(host: String, port: UInt16, listen: String) throws(ServerError) -> Int32 {
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
}

/// One connection's state, touched only on its loop's thread.
private final class Connection: EvictionListNode {
    enum State { case reading, awaiting, writing }

    let fd: Int32
    let generation: UInt64
    /// Whom the connection counts against (per-client cap).
    let client: ClientAddress
    var state = State.reading
    var evictionLinks = EvictionLinks<Connection>()
    /// Buffered request bytes live in input[start..<end].
    var input: UnsafeMutableRawBufferPointer
    var start = 0, end = 0
    var pending: Response?
    var keepAlive = true
    /// The request being answered is HTTP/1.0.
    var http10 = false
    var isHead = false
    var peerClosed = false
    var inDrive = false
    var wantsRead = true
    var wantsWrite = false
    var deadline: Double
    // Output in progress.
    var head: [UInt8] = []
    var headSent = 0
    var bodySent: UInt64 = 0
    var scratch: [UInt8] = []
    // The request being answered, for the observer.
    var requestStart = 0.0
    var requestMethod: Request.Method?
    var requestTarget = ""
    /// Set while a request is being answered (parsed, not yet recorded).
    var requestID: RequestID?

    init(fd: Int32, generation: UInt64, client: ClientAddress, capacity: Int, deadline: Double) {
        self.fd = fd
        self.generation = generation
        self.client = client
        input = .allocate(byteCount: capacity, alignment: 16)
        self.deadline = deadline
    }

    deinit { input.deallocate() }
}

/// An epoll loop on its own thread, owning a listener and its connections.
package final class EventLoop: @unchecked Sendable {
    private unowned let server: HTTPServer
    private let handler: RequestHandler
    private let listener: Int32
    private let epoll: Int32
    private let wakeFD: Int32
    private var connections: [Int32: Connection] = [:]
    private var nextGeneration: UInt64 = 1
    private var thread: pthread_t?
    private let mailboxLock = NSLock()
    private var mailbox: [(fd: Int32, generation: UInt64, response: Response)] = []
    private var cachedDate: [UInt8] = []
    private var cachedSecond = 0
    private let inputCapacity: Int
    private var lastSweep = 0.0
    /// The monotonic time of the current wake-up.
    private var loopNow = MonotonicClock.now()
    private var logBuffer: [UInt8] = []
    private var drained = false
    /// Prefix of generated request ids: random per loop, so ids are unique across loops and restarts.
    private let idPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    private var idCounter: UInt64 = 0
    /// Connections without a request in progress (idle keep-alive, or head not complete), oldest first:
    /// the ones evicted when the server nears its cap.
    private var evictable = EvictionList<Connection>()
    /// `evictable.count` for other loops choosing where to evict.
    fileprivate let idleCount = Atomic<Int>(0)
    /// Evictions other loops asked of this one (they had nothing to evict themselves).
    fileprivate let evictionRequests = Atomic<Int>(0)

    fileprivate init(server: HTTPServer, listener: Int32, handler: RequestHandler) {
        self.server = server
        self.listener = listener
        self.handler = handler
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        // Room for a maximal head plus slack, so the parser always reaches a verdict before the buffer fills.
        inputCapacity = server.settings.limits.maxRequestLine + server.settings.limits.maxHeaderBytes + 8192
        add(listener, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, token: -1)
        add(wakeFD, events: EPOLLIN.rawValue, token: -2)
    }

    private func add(_ fd: Int32, events: UInt32, token: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = token == -1 || token == -2 ? token : fd
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    fileprivate func run() {
        thread = pthread_self()
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), 1000) }
            // One clock read per wake-up serves every deadline and duration of this batch.
            loopNow = MonotonicClock.now()
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait: \(String(cString: strerror(errno)))")
            }
            for i in 0..<Int(n) {
                let event = events[i]
                let token = event.data.fd
                if token == -1 {
                    acceptAll()
                } else if token == -2 {
                    drainMailbox()
                } else if let connection = connections[token] {
                    if event.events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 && event.events & EPOLLIN.rawValue == 0 {
                        close(connection)
                        continue
                    }
                    if event.events & EPOLLIN.rawValue != 0 { readAvailable(connection) }
                    if connections[token] === connection { drive(connection) }
                }
            }
            if !logBuffer.isEmpty { flushLog() }
            if server.draining.load(ordering: .relaxed) && !drained { drain() }
            let now = loopNow
            if now - lastSweep >= 1 {
                lastSweep = now
                sweep(now: now)
            }
        }
    }

    /// Wakes the loop from another thread (shutdown).
    fileprivate func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Shutdown: stop accepting here, close idle connections, let busy ones finish without keep-alive.
    private func drain() {
        drained = true
        epoll_ctl(epoll, EPOLL_CTL_DEL, listener, nil)
        if server.loopsDrained.add(1, ordering: .acquiringAndReleasing).newValue == server.loops.count { Glibc.close(listener) }
        for connection in Array(connections.values) {
            if connection.state == .reading && connection.start == connection.end {
                close(connection)
            } else {
                connection.keepAlive = false
            }
        }
    }

    private func flushLog() {
        var done = 0
        logBuffer.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Glibc.write(2, raw.baseAddress! + done, raw.count - done)
                if n <= 0 { if errno == EINTR { continue }; break }
                done += n
            }
        }
        logBuffer.removeAll(keepingCapacity: logBuffer.count < 1 << 20)
    }

    /// Tells the observer about the connection's current request, once.
    private func record(_ c: Connection, completed: Bool) {
        guard c.state == .writing || c.state == .awaiting, let requestID = c.requestID else { return }
        server.activeRequests.subtract(1, ordering: .relaxed)
        if let observer = server.observer {
            let response = c.pending
            let record = RequestRecord(method: c.requestMethod, target: c.requestTarget, status: response?.status ?? 0,
                                       bytes: c.isHead ? 0 : response?.body.count ?? 0, seconds: MonotonicClock.now() - c.requestStart,
                                       endpoint: response?.endpoint ?? "other", cacheResult: response?.cacheResult,
                                       requestID: requestID, completed: completed)
            observer.completed(record, log: &logBuffer)
            if logBuffer.count > 1 << 16 { flushLog() }
        }
        c.requestID = nil
    }

    /// The client's Athens-Request-ID when it is a sane token, else a new one.
    private func requestID(for request: Request) -> RequestID {
        idCounter += 1
        if let given = request.header("athens-request-id"), !given.isEmpty, given.utf8.count <= 128,
           given.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E || $0 == 0x3A }) {
            return RequestID(given: given, prefix: idPrefix, number: idCounter)
        }
        return RequestID(given: nil, prefix: idPrefix, number: idCounter)
    }

    private func acceptAll() {
        while true {
            var peer = sockaddr_storage()
            var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { athens_accept_nonblocking(listener, $0, &peerLength) }
            }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return // EAGAIN, or EMFILE: try again on the next event; EINVAL: shut down
            }
            let client = ClientAddress(peer)
            switch server.limiter.admit(client) {
            case .clientFull:
                server.limiter.refusedPerClient.add(1, ordering: .relaxed)
                refuse(fd, "too many connections from this address (server.maxConnectionsPerClient)")
                continue
            case .full:
                // Every slot taken: make room from this loop's idle connections, else refuse and have
                // another loop make room for the retry.
                guard evictOne(), case .admitted = server.limiter.admit(client) else {
                    server.requestEviction(besides: self)
                    server.limiter.refusedFull.add(1, ordering: .relaxed)
                    refuse(fd, "too many connections (server.maxConnections)")
                    continue
                }
            case let .admitted(makeRoom):
                if makeRoom && !evictOne() { server.requestEviction(besides: self) }
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // Start small (most heads are a few hundred bytes); readAvailable grows it up to the limit.
            let connection = Connection(fd: fd, generation: nextGeneration, client: client, capacity: min(4096, inputCapacity),
                                        deadline: loopNow + server.settings.headerTimeout)
            nextGeneration += 1
            connections[fd] = connection
            listIdle(connection)
            add(fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue, token: fd)
        }
    }

    /// Answers 503 to a connection that is not admitted, and closes it.
    private func refuse(_ fd: Int32, _ reason: String) {
        var response = Response.text(503, "service unavailable: " + reason, close: true)
        response.headers.append(("Retry-After", "1"))
        refreshDate()
        var bytes: [UInt8] = []
        response.writeHead(into: &bytes, date: cachedDate[...], keepAlive: false, requestID: UnsafeBufferPointer(start: nil, count: 0))
        if case let .bytes(body) = response.body { bytes += body }
        // Best effort, one send: the socket is new, its buffer is empty.
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.close(fd)
    }

    /// Connection `c` has no request in progress (new, or its response is done): it may be evicted.
    private func listIdle(_ c: Connection) {
        evictable.append(c)
        idleCount.store(evictable.count, ordering: .relaxed)
    }

    /// A request started on `c`, or it closed.
    private func unlistIdle(_ c: Connection) {
        evictable.remove(c)
        idleCount.store(evictable.count, ordering: .relaxed)
    }

    /// Closes one evictable connection: among the oldest few, the one whose client holds the most
    /// connections. False when this loop has none.
    @discardableResult
    private func evictOne() -> Bool {
        let candidates = evictable.oldest(32)
        guard let index = server.limiter.heaviest(candidates.map(\.client)) else { return false }
        server.limiter.evicted.add(1, ordering: .relaxed)
        close(candidates[index])
        return true
    }

    private func updateInterest(_ c: Connection) {
        var event = epoll_event()
        event.events = (c.wantsRead ? EPOLLIN.rawValue | EPOLLRDHUP.rawValue : 0) | (c.wantsWrite ? EPOLLOUT.rawValue : 0)
        event.data.fd = c.fd
        epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &event)
    }

    private func close(_ c: Connection) {
        record(c, completed: false)
        unlistIdle(c)
        epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nil)
        Glibc.close(c.fd)
        connections[c.fd] = nil
        c.pending = nil
        server.limiter.release(c.client)
    }

    /// Reads what the socket has into free buffer space. Pauses reading when the buffer is full.
    private func readAvailable(_ c: Connection) {
        if c.start > 0 && c.end == c.input.count {
            // Compact: move unparsed bytes to the front.
            let count = c.end - c.start
            if count > 0 { memmove(c.input.baseAddress!, c.input.baseAddress! + c.start, count) }
            c.start = 0
            c.end = count
        }
        if c.end == c.input.count && c.input.count < inputCapacity {
            let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: min(c.input.count * 2, inputCapacity), alignment: 16)
            grown.baseAddress!.copyMemory(from: c.input.baseAddress! + c.start, byteCount: c.end - c.start)
            c.input.deallocate()
            c.input = grown
            c.end -= c.start
            c.start = 0
        }
        let free = c.input.count - c.end
        if free == 0 {
            // Pipelined requests filled the buffer while a response is pending: stop reading for now.
            if c.wantsRead { c.wantsRead = false; updateInterest(c) }
            return
        }
        let n = recv(c.fd, c.input.baseAddress! + c.end, free, 0)
        if n > 0 {
            if c.end == c.start && c.state == .reading {
                c.deadline = loopNow + server.settings.headerTimeout
            }
            c.end += n
        } else if n == 0 {
            c.peerClosed = true
            if c.wantsRead { c.wantsRead = false; updateInterest(c) }
        } else if errno != EAGAIN && errno != EINTR {
            c.peerClosed = true
            c.keepAlive = false
            if c.wantsRead { c.wantsRead = false; updateInterest(c) }
        }
    }

    /// Runs the connection's state machine as far as it can go without blocking.
    private func drive(_ c: Connection) {
        c.inDrive = true
        defer { c.inDrive = false }
        while connections[c.fd] === c {
            switch c.state {
            case .reading:
                if c.start == c.end {
                    c.start = 0
                    c.end = 0
                    if c.peerClosed { close(c); return }
                    if !c.wantsRead { c.wantsRead = true; updateInterest(c) }
                    return
                }
                let result = RequestParser.parse(UnsafeRawBufferPointer(rebasing: c.input[c.start..<c.end]), limits: server.settings.limits)
                switch result {
                case .incomplete:
                    if c.peerClosed { close(c); return }
                    if !c.wantsRead { c.wantsRead = true; updateInterest(c) }
                    return
                case let .failure(status, reason, allow):
                    var response = Response.text(status, Response.reason(status).lowercased() + ": " + reason, close: true)
                    if allow { response.headers.append(("Allow", "GET, HEAD")) }
                    response.endpoint = "invalid"
                    c.keepAlive = false
                    c.isHead = false
                    c.start = c.end
                    unlistIdle(c)
                    c.state = .awaiting
                    c.requestStart = loopNow
                    c.requestMethod = nil
                    c.requestTarget = ""
                    idCounter += 1
                    let id = RequestID(given: nil, prefix: idPrefix, number: idCounter)
                    c.requestID = id
                    server.activeRequests.add(1, ordering: .relaxed)
                    response.headers.append(("Athens-Request-ID", id.description))
                    c.pending = response
                case let .request(request, consumed):
                    c.start += consumed
                    c.keepAlive = request.keepAlive && !c.peerClosed && !drained
                    c.isHead = request.method == .head
                    c.http10 = request.minorVersion == 0
                    unlistIdle(c)
                    c.state = .awaiting
                    c.requestStart = loopNow
                    c.requestMethod = request.method
                    c.requestTarget = request.target
                    let id = requestID(for: request)
                    c.requestID = id
                    server.activeRequests.add(1, ordering: .relaxed)
                    // A crash while handling names this request (CrashReporter.setRequest, without a String).
                    id.withBytes { $0.withMemoryRebound(to: CChar.self) { athens_crash_set_request($0.baseAddress, $0.count) } }
                    handler.handle(request, responder: Responder(loop: self, fd: c.fd, generation: c.generation))
                    CrashReporter.setRequest("")
                }
            case .awaiting:
                guard let response = c.pending else { return }
                if response.close || drained { c.keepAlive = false }
                // Into the connection's reused buffer: no allocation once it has grown to a head's size.
                c.head.removeAll(keepingCapacity: true)
                let keepAlive = c.keepAlive, http10 = c.http10
                refreshDate()
                if let id = c.requestID {
                    id.withBytes { response.writeHead(into: &c.head, date: cachedDate[...], keepAlive: keepAlive, requestID: $0, http10: http10) }
                } else {
                    response.writeHead(into: &c.head, date: cachedDate[...], keepAlive: keepAlive, requestID: UnsafeBufferPointer(start: nil, count: 0),
                                       http10: http10)
                }
                c.headSent = 0
                c.bodySent = 0
                c.state = .writing
                c.deadline = loopNow + server.settings.writeTimeout
            case .writing:
                switch write(c) {
                case .blocked:
                    if !c.wantsWrite { c.wantsWrite = true; updateInterest(c) }
                    return
                case .failed:
                    close(c)
                    return
                case .done:
                    record(c, completed: true)
                    c.pending = nil
                    if c.head.capacity > 4096 { c.head = [] } else { c.head.removeAll(keepingCapacity: true) }
                    if c.wantsWrite { c.wantsWrite = false; updateInterest(c) }
                    if !c.keepAlive { close(c); return }
                    c.state = .reading
                    listIdle(c)
                    c.deadline = loopNow + (c.start == c.end ? server.settings.idleTimeout : server.settings.headerTimeout)
                    if !c.wantsRead { c.wantsRead = true; updateInterest(c) }
                }
            }
        }
    }

    private enum WriteResult { case done, blocked, failed }

    /// Writes as much of the pending response as the socket takes.
    private func write(_ c: Connection) -> WriteResult {
        // The body alone, not the whole Response: copying a Response retains all its fields.
        guard let body = c.pending?.body else { return .done }
        let bodyTotal = c.isHead ? 0 : body.count
        // Head, plus in-memory bodies in the same writev.
        while c.headSent < c.head.count {
            var bodyBytes: UnsafeRawBufferPointer?
            switch body {
            case let .bytes(bytes) where !c.isHead:
                bodyBytes = bytes.withUnsafeBytes { $0 } // stable: `bytes` is kept alive by c.pending
            case let .blob(blob) where !c.isHead:
                if case let .bytes(b) = blob.shape { bodyBytes = b }
            default:
                break
            }
            let n: Int
            if let bodyBytes, bodyBytes.count > 0 {
                n = c.head.withUnsafeBytes { h in
                    var iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress! + c.headSent), iov_len: h.count - c.headSent),
                               iovec(iov_base: UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress!), iov_len: bodyBytes.count)]
                    return writev(c.fd, &iov, 2)
                }
            } else {
                let more = bodyTotal > 0 ? Int32(MSG_MORE) : 0
                n = c.head.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.headSent, $0.count - c.headSent, Int32(MSG_NOSIGNAL) | more) }
            }
            if n < 0 { return errno == EAGAIN || errno == EINTR ? .blocked : .failed }
            let headLeft = c.head.count - c.headSent
            if n >= headLeft {
                c.headSent = c.head.count
                c.bodySent = UInt64(n - headLeft)
            } else {
                c.headSent += n
            }
            c.deadline = loopNow + server.settings.writeTimeout
        }
        while c.bodySent < bodyTotal {
            let left = bodyTotal - c.bodySent
            var n: Int
            switch body {
            case .empty:
                return .done
            case let .bytes(bytes):
                n = bytes.withUnsafeBytes { send(c.fd, $0.baseAddress! + Int(c.bodySent), Int(left), Int32(MSG_NOSIGNAL)) }
            case let .blob(blob):
                switch blob.shape {
                case let .bytes(b):
                    n = send(c.fd, b.baseAddress! + Int(c.bodySent), Int(left), Int32(MSG_NOSIGNAL))
                case let .file(fd, offset):
                    var position = off_t(offset + c.bodySent)
                    n = sendfile(c.fd, fd, &position, Int(min(left, 1 << 30)))
                    if n == 0 { return .failed } // file shorter than promised
                case .stream:
                    if c.scratch.isEmpty {
                        var chunk = [UInt8](repeating: 0, count: Int(min(left, 65536)))
                        guard let got = chunk.withUnsafeMutableBytes({ blob.readStream(into: $0) }), got > 0 else { return .failed }
                        c.scratch = Array(chunk[0..<got])
                    }
                    n = c.scratch.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 { c.scratch.removeFirst(n) }
                }
            }
            if n < 0 { return errno == EAGAIN || errno == EINTR ? .blocked : .failed }
            c.bodySent += UInt64(n)
            c.deadline = loopNow + server.settings.writeTimeout
        }
        return .done
    }

    /// Closes connections past their deadline (header, idle or write timeout).
    private func sweep(now: Double) {
        for connection in Array(connections.values) where connection.state != .awaiting && connection.deadline < now {
            close(connection)
        }
    }

    /// Keeps `cachedDate` at the current second's IMF-fixdate (formatted once a second).
    private func refreshDate() {
        let second = time(nil)
        if second != cachedSecond || cachedDate.isEmpty {
            cachedSecond = second
            cachedDate = Array(httpDate(second).utf8)
        }
    }

    /// Hands a response to its connection: directly when already on this loop, else via the mailbox.
    fileprivate func deliver(fd: Int32, generation: UInt64, response: Response) {
        if let thread, pthread_equal(thread, pthread_self()) != 0 {
            deliverNow(fd: fd, generation: generation, response: response)
            return
        }
        mailboxLock.lock()
        mailbox.append((fd, generation, response))
        let first = mailbox.count == 1
        mailboxLock.unlock()
        if first {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    private func deliverNow(fd: Int32, generation: UInt64, response: Response) {
        guard let c = connections[fd], c.generation == generation, c.state == .awaiting, c.pending == nil else { return }
        c.pending = response
        if !c.inDrive { drive(c) }
    }

    private func drainMailbox() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
        mailboxLock.lock()
        let items = mailbox
        mailbox.removeAll(keepingCapacity: true)
        mailboxLock.unlock()
        for item in items { deliverNow(fd: item.fd, generation: item.generation, response: item.response) }
        var evictions = evictionRequests.exchange(0, ordering: .relaxed)
        while evictions > 0 && evictOne() { evictions -= 1 }
    }
}
