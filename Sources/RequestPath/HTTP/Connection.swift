import HostSupport
import PluginHost
import Glibc
import SystemShims

/// One client connection speaking HTTP/1.1: reads and parses request heads, hands each request to the
/// handler, writes the responses in request order. Touched only on its loop's thread (`EventLoop` owns the
/// socket's registration, the connection table and the closing).
final class Connection: EvictionListNode {
    enum State { case reading, awaiting, writing }

    let fd: Int32
    let generation: UInt64
    /// Whom the connection counts against (per-client cap).
    let client: ClientAddress
    /// The loop that owns this connection (it outlives every connection it owns).
    private unowned(unsafe) let loop: EventLoop
    var state = State.reading
    var evictionLinks = EvictionLinks<Connection>()
    /// Set by the loop when it closes the connection: the state machine stops.
    var closed = false
    /// Buffered request bytes live in input[start..<end].
    private var input: UnsafeMutableRawBufferPointer
    private(set) var start = 0, end = 0
    /// Remembers how far the head at input[start...] has been scanned, across reads.
    private var parser: RequestParser
    /// A POST whose head is parsed and whose body is still arriving into `input` (or into its `bodySink`).
    private var awaitingBody: Request?
    /// Body bytes a streamed body (`BodyPlan.stream`) still has to deliver to its sink.
    private var streamLeft = 0
    private(set) var pending: Response?
    var keepAlive = true
    /// The request being answered is HTTP/1.0.
    private var http10 = false
    private(set) var isHead = false
    private var peerClosed = false
    private var inDrive = false
    var wantsRead = true
    var wantsWrite = false
    var deadline: Double
    /// The response being written: its head, how far it got, a stream body's reader.
    private var output = ResponseOutput()
    // The request being answered, for the observer.
    private(set) var requestStart = 0.0
    private(set) var requestMethod: Request.Method?
    private(set) var requestTarget = ""
    /// Set while a request is being answered (parsed, not yet recorded).
    var requestID: RequestID?
    /// The signal for whoever waits off the loop on the current request's behalf (`hangUpSignal`); nil: nobody.
    private var hangUp: ClientHangUp?
    /// The half-close probe (`probeHalfClose`) went out for the request being answered.
    private var probed = false

    init(fd: Int32, generation: UInt64, client: ClientAddress, loop: EventLoop, capacity: Int, deadline: Double) {
        self.fd = fd
        self.generation = generation
        self.client = client
        self.loop = loop
        input = .allocate(byteCount: capacity, alignment: 16)
        parser = RequestParser(strings: loop.strings)
        self.deadline = deadline
    }

    deinit { input.deallocate() }

    /// No request bytes are buffered: an idle keep-alive connection.
    var isIdle: Bool { state == .reading && start == end }

    /// The loop closed the socket: drop the response (and any stream blob: its reader lets go of it).
    func didClose() {
        closed = true
        hangUp?.signal()
        hangUp = nil
        pending = nil
        output.cancel()
    }

    /// The response to the request in progress arrived (on the loop's thread).
    func deliver(_ response: consuming Response) {
        guard state == .awaiting, pending == nil else { return }
        pending = response
        if !inDrive { drive() }
    }

    /// Bytes of the stream body were read, or its read failed.
    func streamReady() {
        if state == .writing && !inDrive { drive() }
    }

    /// Reads what the socket has into free buffer space. Pauses reading when the buffer is full.
    func readAvailable() {
        let inputCapacity = loop.inputCapacity
        if start > 0 && end == input.count {
            // Compact: move unparsed bytes to the front (the parser's positions are relative to `start`).
            let count = end - start
            if count > 0 { memmove(input.baseAddress!, input.baseAddress! + start, count) }
            start = 0
            end = count
        }
        if end == input.count && input.count < inputCapacity {
            let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: min(input.count * 2, inputCapacity), alignment: 16)
            grown.baseAddress!.copyMemory(from: input.baseAddress! + start, byteCount: end - start)
            input.deallocate()
            input = grown
            end -= start
            start = 0
        }
        let free = input.count - end
        if free == 0 {
            // Pipelined requests filled the buffer while a response is pending: stop reading for now.
            if wantsRead { wantsRead = false; loop.updateInterest(self) }
            return
        }
        let n = recv(fd, input.baseAddress! + end, free, 0)
        if n > 0 {
            if end == start && state == .reading && awaitingBody == nil {
                deadline = loop.now + loop.settings.headerTimeout
            }
            end += n
        } else if n == 0 {
            peerClosed = true
            if wantsRead { wantsRead = false; loop.updateInterest(self) }
            if state == .awaiting && hangUp != nil { probeHalfClose() }
        } else if errno != EAGAIN && errno != EINTR {
            peerClosed = true
            keepAlive = false
            if wantsRead { wantsRead = false; loop.updateInterest(self) }
            // Reset: nobody will read the answer, and a waiter off the loop is told now (didClose).
            if state == .awaiting { loop.close(self) }
        }
    }

    /// The hang-up signal of the request being answered, made for a job that waits for it off the loop.
    /// Nil when no request is awaiting its response.
    func hangUpSignal() -> ClientHangUp? {
        guard state == .awaiting, pending == nil else { return nil }
        if let hangUp { return hangUp }
        let signal = ClientHangUp()
        hangUp = signal
        // The FIN came with the request, before anyone waited.
        if peerClosed { probeHalfClose() }
        return signal
    }

    /// A FIN while a request waits off the loop. It says only that the client sends no more: `close()` and
    /// `shutdown(SHUT_WR)` look the same. nginx (by default) and Go's net/http server take it as an abort; athens
    /// does not, and asks: an interim `100 Continue` goes out (every HTTP/1.1 client must skip an unexpected 1xx);
    /// a client that still reads skips it and gets its answer, the kernel of one that closed answers with a reset
    /// (EPOLLHUP: the loop closes the connection, and the waiter is told). HTTP/1.0 has no 1xx: its half-closed
    /// clients are told apart from gone ones only when the answer is written.
    private func probeHalfClose() {
        guard !probed, !http10 else { return }
        probed = true
        let bytes = Self.probe
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno != EAGAIN && errno != EINTR { return loop.close(self) }
        output.leftover = Array(bytes[max(0, n)...])
    }

    private static let probe = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Runs the state machine as far as it can go without blocking.
    func drive() {
        inDrive = true
        defer { inDrive = false }
        while !closed {
            switch state {
            case .reading:
                if start == end {
                    start = 0
                    end = 0
                    if peerClosed { loop.close(self); return }
                    if !wantsRead { wantsRead = true; loop.updateInterest(self) }
                    return
                }
                if let request = awaitingBody, let sink = request.bodySink {
                    // Streamed: what has arrived goes to the sink, so the input buffer never holds more than its capacity.
                    let n = min(streamLeft, end - start)
                    if n > 0 {
                        guard sink.write(UnsafeRawBufferPointer(rebasing: input[start..<(start + n)])) else {
                            awaitingBody = nil
                            refuse(request, sink.refusal)
                            continue
                        }
                        start += n
                        streamLeft -= n
                        // A long upload may take minutes: it is cut off only when it stops arriving.
                        deadline = loop.now + loop.settings.headerTimeout
                    }
                    guard streamLeft == 0 else {
                        if peerClosed { loop.close(self); return }
                        if !wantsRead { wantsRead = true; loop.updateInterest(self) }
                        return
                    }
                    awaitingBody = nil
                    dispatch(request)
                    continue
                }
                if var request = awaitingBody {
                    // The whole body is buffered (the input capacity allows the largest) before the handler runs.
                    guard end - start >= request.contentLength else {
                        if peerClosed { loop.close(self); return }
                        if !wantsRead { wantsRead = true; loop.updateInterest(self) }
                        return
                    }
                    awaitingBody = nil
                    request.body = Array(UnsafeRawBufferPointer(rebasing: input[start..<(start + request.contentLength)]))
                    start += request.contentLength
                    dispatch(request)
                    continue
                }
                switch parser.parse(UnsafeRawBufferPointer(rebasing: input[start..<end]), limits: loop.settings.limits) {
                case .incomplete:
                    if peerClosed { loop.close(self); return }
                    if !wantsRead { wantsRead = true; loop.updateInterest(self) }
                    return
                case let .failure(status, reason, allow):
                    var response = Response.text(status, Response.reason(status).lowercased() + ": " + reason, close: true)
                    if allow { response.headers.append(("Allow", "GET, HEAD")) }
                    response.endpoint = "invalid"
                    keepAlive = false
                    isHead = false
                    start = end
                    begin(method: nil, target: "", id: loop.requestIDs.next())
                    pending = response
                case let .request(request, consumed):
                    start += consumed
                    if request.contentLength > 0 {
                        // Decided from the head, before a body byte is read: a refusal buffers nothing.
                        var request = request
                        request.peer = PeerName.of(fd)
                        switch loop.handler.plan(request) {
                        case let .refuse(response):
                            refuse(request, response)
                            continue
                        case .buffer:
                            guard request.contentLength <= loop.settings.limits.maxBodyBytes else {
                                refuse(request, .text(413, "payload too large: request body larger than \(loop.settings.limits.maxBodyBytes) bytes"))
                                continue
                            }
                            awaitingBody = request
                        case let .stream(sink):
                            var streamed = request
                            streamed.bodySink = sink
                            awaitingBody = streamed
                            streamLeft = request.contentLength
                        }
                        // The body must arrive within a header timeout of the head (slow bodies are cut off).
                        deadline = loop.now + loop.settings.headerTimeout
                        continue
                    }
                    dispatch(request)
                }
            case .awaiting:
                guard pending != nil else { return }
                startWriting()
            case .writing:
                switch write() {
                case .blocked:
                    if !wantsWrite { wantsWrite = true; loop.updateInterest(self) }
                    return
                case .waiting:
                    // No socket interest while the storage reads: `streamReady` resumes.
                    if wantsWrite { wantsWrite = false; loop.updateInterest(self) }
                    return
                case .failed:
                    loop.close(self)
                    return
                case .done:
                    loop.record(self, completed: true)
                    pending = nil
                    hangUp = nil
                    probed = false
                    output.finish()
                    if wantsWrite { wantsWrite = false; loop.updateInterest(self) }
                    if !keepAlive { loop.close(self); return }
                    state = .reading
                    loop.listIdle(self)
                    deadline = loop.now + (start == end ? loop.settings.idleTimeout : loop.settings.headerTimeout)
                    if !wantsRead { wantsRead = true; loop.updateInterest(self) }
                }
            }
        }
    }

    /// Answers a request from its head alone (its body unread or partly read): the bytes buffered are dropped and
    /// the connection closes after the answer, as the rest of the body may still be on its way.
    private func refuse(_ request: Request, _ response: Response) {
        var response = response
        response.close = true
        keepAlive = false
        isHead = false
        http10 = request.minorVersion == 0
        start = end
        begin(method: request.method, target: request.target, id: loop.requestIDs.id(for: request))
        pending = response
    }

    /// Hands a complete request to the handler.
    private func dispatch(_ request: Request) {
        var request = request
        if request.method == .post { request.peer = PeerName.of(fd) }
        keepAlive = request.keepAlive && !peerClosed && !loop.drained
        isHead = request.method == .head
        http10 = request.minorVersion == 0
        let id = loop.requestIDs.id(for: request)
        begin(method: request.method, target: request.target, id: id)
        // A crash while handling names this request (CrashReporter.setRequest, without a String).
        id.withBytes { $0.withMemoryRebound(to: CChar.self) { athens_crash_set_request($0.baseAddress, $0.count) } }
        loop.handler.handle(request, responder: Responder(loop: loop, fd: fd, generation: generation))
        CrashReporter.setRequest("")
    }

    /// A request (or an unparseable head) is now being answered.
    private func begin(method: Request.Method?, target: String, id: RequestID) {
        loop.unlistIdle(self)
        state = .awaiting
        requestStart = loop.now
        requestMethod = method
        requestTarget = target
        requestID = id
        loop.server.activeRequests.add(1, ordering: .relaxed)
    }

    /// Writes the head of `pending` and starts its body; a stream body starts being read at once. Reads `pending`
    /// in place: a copy of a Response retains all its fields.
    private func startWriting() {
        if pending!.close || loop.drained { keepAlive = false }
        let keepAlive = keepAlive, http10 = http10
        let date = loop.currentDate()
        output.begin { head in
            if let id = requestID {
                id.withBytes { pending!.writeHead(into: &head, date: date, keepAlive: keepAlive, requestID: $0, http10: http10) }
            } else {
                pending!.writeHead(into: &head, date: date, keepAlive: keepAlive, requestID: UnsafeBufferPointer(start: nil, count: 0), http10: http10)
            }
        }
        if !isHead, case let .blob(blob)? = pending?.body, case .stream = blob.shape, blob.size > 0 {
            output.startStream(BlobStream(blob: blob, readers: loop.server.streamReaders, loop: loop, fd: fd, generation: generation, requestID: requestID))
        }
        state = .writing
        deadline = loop.now + loop.settings.writeTimeout
    }

    /// Writes as much of the pending response as the socket takes.
    private func write() -> ResponseOutput.Progress {
        // The body alone, not the whole Response: copying a Response retains all its fields.
        guard let body = pending?.body else { return .done }
        return output.write(fd: fd, body: body, headOnly: isHead, deadline: &deadline, renewed: loop.now + loop.settings.writeTimeout)
    }
}
