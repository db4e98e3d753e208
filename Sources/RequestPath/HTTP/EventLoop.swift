import Basics
import HostSupport
import PluginHost
import Glibc
import FoundationEssentials
import Synchronization
import SystemShims

/// An epoll loop on its own thread: accepts from the shared listener, owns its connections (their table,
/// epoll registration, timeouts, eviction and closing), and takes work handed back from other threads
/// (responses, stream-blob progress) through its mailbox.
final class EventLoop: @unchecked Sendable {
    unowned let server: HTTPServer
    let handler: RequestHandler
    let settings: ServerSettings
    private let listener: Int32
    private let epoll: Int32
    private let wakeFD: Int32
    private var connections: [Int32: Connection] = [:]
    private var nextGeneration: UInt64 = 1
    private var thread: pthread_t?
    private let mailboxLock = PosixLock()
    private var mailbox: [(fd: Int32, generation: UInt64, response: Response)] = []
    /// Connections whose stream body has bytes again (or failed), from `StreamReaders` threads.
    private var streamWakes: [(fd: Int32, generation: UInt64)] = []
    private var cachedDate: [UInt8] = []
    private var cachedSecond = 0
    /// Largest input buffer of a connection.
    let inputCapacity: Int
    private var lastSweep = 0.0
    /// The monotonic time of the current wake-up.
    private(set) var now = MonotonicClock.now()
    private var logBuffer: [UInt8] = []
    /// Shutdown has reached this loop: no keep-alive any more.
    private(set) var drained = false
    /// This loop's ids for the requests of its connections.
    var requestIDs = RequestIDSource()
    /// The strings its connections' heads decoded lately (warm heads parse without allocating).
    let strings = StringTable()
    /// Connections without a request in progress (idle keep-alive, or head not complete), oldest first:
    /// the ones evicted when the server nears its cap.
    private var evictable = EvictionList<Connection>()
    /// `evictable.count` for other loops choosing where to evict.
    let idleCount = Atomic<Int>(0)
    /// Evictions other loops asked of this one (they had nothing to evict themselves).
    let evictionRequests = Atomic<Int>(0)

    init(server: HTTPServer, listener: Int32, handler: RequestHandler) {
        self.server = server
        self.listener = listener
        self.handler = handler
        settings = server.settings
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        // Room for a maximal head plus slack, so the parser always reaches a verdict before the buffer fills.
        inputCapacity = settings.limits.maxRequestLine + settings.limits.maxHeaderBytes + 8192 + settings.limits.maxBodyBytes
        // EPOLLEXCLUSIVE: every loop watches the one listener; a new connection wakes one of them.
        add(listener, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, token: -1)
        add(wakeFD, events: EPOLLIN.rawValue, token: -2)
    }

    private func add(_ fd: Int32, events: UInt32, token: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = token == -1 || token == -2 ? token : fd
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    func run() {
        thread = pthread_self()
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), 1000) }
            // One clock read per wake-up serves every deadline and duration of this batch.
            now = MonotonicClock.now()
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
                    if event.events & EPOLLIN.rawValue != 0 { connection.readAvailable() }
                    if !connection.closed { connection.drive() }
                }
            }
            if !logBuffer.isEmpty { flushLog() }
            if server.draining.load(ordering: .relaxed) && !drained { drain() }
            if now - lastSweep >= 1 {
                lastSweep = now
                sweep(now: now)
            }
        }
    }

    /// Wakes the loop from another thread (shutdown, eviction requests).
    func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Shutdown: stop accepting here, close idle connections, let busy ones finish without keep-alive.
    private func drain() {
        drained = true
        epoll_ctl(epoll, EPOLL_CTL_DEL, listener, nil)
        if server.loopsDrained.add(1, ordering: .acquiringAndReleasing).newValue == server.loops.count { Glibc.close(listener) }
        for connection in Array(connections.values) {
            if connection.isIdle {
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
    func record(_ c: Connection, completed: Bool) {
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
            let connection = Connection(fd: fd, generation: nextGeneration, client: client, loop: self,
                                        capacity: min(4096, inputCapacity), deadline: now + settings.headerTimeout)
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
        var bytes: [UInt8] = []
        response.writeHead(into: &bytes, date: currentDate(), keepAlive: false, requestID: UnsafeBufferPointer(start: nil, count: 0))
        if case let .bytes(body) = response.body { bytes += body }
        // Best effort, one send: the socket is new, its buffer is empty.
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.close(fd)
    }

    /// Connection `c` has no request in progress (new, or its response is done): it may be evicted.
    func listIdle(_ c: Connection) {
        evictable.append(c)
        idleCount.store(evictable.count, ordering: .relaxed)
    }

    /// A request started on `c`, or it closed.
    func unlistIdle(_ c: Connection) {
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

    /// Registers what `c` waits for (`wantsRead`, `wantsWrite`).
    func updateInterest(_ c: Connection) {
        var event = epoll_event()
        event.events = (c.wantsRead ? EPOLLIN.rawValue | EPOLLRDHUP.rawValue : 0) | (c.wantsWrite ? EPOLLOUT.rawValue : 0)
        event.data.fd = c.fd
        epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &event)
    }

    /// Closes `c`'s socket and forgets it; a request in progress is recorded as not completed.
    func close(_ c: Connection) {
        record(c, completed: false)
        unlistIdle(c)
        epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nil)
        Glibc.close(c.fd)
        connections[c.fd] = nil
        c.didClose()
        server.limiter.release(c.client)
    }

    /// Closes connections past their deadline (header, idle or write timeout).
    private func sweep(now: Double) {
        for connection in Array(connections.values) where connection.state != .awaiting && connection.deadline < now {
            close(connection)
        }
    }

    /// The current second's IMF-fixdate (formatted once a second).
    func currentDate() -> ArraySlice<UInt8> {
        let second = time(nil)
        if second != cachedSecond || cachedDate.isEmpty {
            cachedSecond = second
            cachedDate = Array(httpDate(second).utf8)
        }
        return cachedDate[...]
    }

    /// Hands a response to its connection: directly when already on this loop, else via the mailbox.
    func deliver(fd: Int32, generation: UInt64, response: consuming Response) {
        if let thread, pthread_equal(thread, pthread_self()) != 0 {
            connection(fd, generation)?.deliver(consume response)
            return
        }
        mailboxLock.lock()
        mailbox.append((fd, generation, response))
        let first = mailbox.count + streamWakes.count == 1
        mailboxLock.unlock()
        if first { wake() }
    }

    /// The hang-up signal of connection `fd`'s request in progress (`Connection.hangUpSignal`); nil off this loop's
    /// thread, or when the connection has gone or answers no request.
    func hangUpSignal(fd: Int32, generation: UInt64) -> ClientHangUp? {
        guard let thread, pthread_equal(thread, pthread_self()) != 0 else { return nil }
        return connection(fd, generation)?.hangUpSignal()
    }

    /// A stream body of connection `fd` has bytes to send (or failed). Called from `StreamReaders` threads.
    func streamReady(fd: Int32, generation: UInt64) {
        mailboxLock.lock()
        streamWakes.append((fd, generation))
        let first = mailbox.count + streamWakes.count == 1
        mailboxLock.unlock()
        if first { wake() }
    }

    /// The connection `fd` if it is still the one of `generation` (fds are reused).
    private func connection(_ fd: Int32, _ generation: UInt64) -> Connection? {
        guard let c = connections[fd], c.generation == generation else { return nil }
        return c
    }

    private func drainMailbox() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
        mailboxLock.lock()
        let items = mailbox
        mailbox.removeAll(keepingCapacity: true)
        let wakes = streamWakes
        streamWakes.removeAll(keepingCapacity: true)
        mailboxLock.unlock()
        for item in items { connection(item.fd, item.generation)?.deliver(item.response) }
        for item in wakes { connection(item.fd, item.generation)?.streamReady() }
        var evictions = evictionRequests.exchange(0, ordering: .relaxed)
        while evictions > 0 && evictOne() { evictions -= 1 }
    }
}
