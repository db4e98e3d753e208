import Foundation
import Synchronization
import Testing
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// "/stream" answers with a stream blob of `source`; "/hello" with bytes.
private final class StreamHandler: RequestHandler {
    let source: StreamSource
    init(source: StreamSource) { self.source = source }

    func handle(_ request: Request, responder: Responder) {
        switch request.path {
        case "/stream": responder.respond(Response(status: 200, body: .blob(source.blob())))
        case "/hello": responder.respond(Response(status: 200, body: .bytes(Array("hello".utf8))))
        default: responder.respond(.text(404, "not found"))
        }
    }
}

/// Polls `condition` until it holds (30 s at most).
private func eventually(_ condition: () -> Bool) -> Bool { waitUntil(timeout: 30, condition) }

/// Reads a response head from `fd`; returns its Content-Length and the body bytes that came with it.
private func readHead(_ fd: Int32) -> (length: UInt64, rest: [UInt8])? {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        data += buffer[0..<n]
        if let end = (0..<max(0, data.count - 3)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 && data[$0 + 2] == 13 && data[$0 + 3] == 10 }) {
            let head = String(decoding: data[0..<end], as: UTF8.self).lowercased()
            guard head.hasPrefix("http/1.1 200"),
                  let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                  let length = UInt64(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else { return nil }
            return (length, Array(data[(end + 4)...]))
        }
    }
}

/// Reads a streamed body of `length` bytes from `fd` (after `rest`) and checks each byte against the pattern.
private func readPatternBody(_ fd: Int32, length: UInt64, rest: [UInt8]) -> Bool {
    var offset: UInt64 = 0
    var good = true
    func check(_ bytes: ArraySlice<UInt8>) {
        if !bytes.withUnsafeBytes({ StreamSource.matches($0, at: offset) }) { good = false }
        offset += UInt64(bytes.count)
    }
    check(rest[...])
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while offset < length {
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return false }
        check(buffer[0..<n])
    }
    return good && offset == length
}

/// Stream blobs (`read`-shaped) are pulled by the server's stream readers, never on an event loop, through a
/// bounded buffer per connection.
@Suite("stream blobs off the event loop", .blockingBodies, .serialized)
struct StreamBlobTests {
    /// Servers stay alive after their test: their loop threads run on (as every test server's do).
    private static let running = Mutex<[HTTPServer]>([])

    /// One event loop, so a loop blocked by a read would stall every other request.
    private static func server(_ source: StreamSource) throws -> HTTPServer {
        var settings = ServerSettings()
        settings.listen = "127.0.0.1:0"
        settings.threads = 1
        settings.streamReaders = 2
        let server = HTTPServer(settings: settings, handler: StreamHandler(source: source))
        try server.bind()
        server.start()
        running.withLock { $0.append(server) }
        return server
    }

    @Test("a stream read that blocks holds no event loop: the loop's other requests are answered meanwhile")
    func blockedReadStallsNothing() throws {
        let source = StreamSource(size: 300_000)
        let server = try Self.server(source)
        defer { server.beginShutdown() }
        source.gate.close()
        let slow = try RawClient(port: server.port)
        slow.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually { source.gate.held == 1 }, "the first read never started")
        // The read is held: were it on the loop, these would wait for it.
        for _ in 0..<3 {
            let other = try RawClient(port: server.port)
            other.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(other.readResponse(timeout: 30))
            #expect(response.status == 200 && response.body == Array("hello".utf8))
            #expect(source.gate.held == 1, "answered while the read is still held")
        }
        source.gate.openGate()
        let head = try #require(readHead(slow.fd))
        #expect(head.length == source.size)
        #expect(readPatternBody(slow.fd, length: head.length, rest: head.rest), "the streamed body is byte-exact")
        #expect(eventually { source.released == 1 }, "the blob is released once the response is sent")
        #expect(eventually { server.streamReaders.streams.load(ordering: .relaxed) == 0 })
    }

    /// A client whose receive buffer is small, so the kernel holds little of what it does not read.
    private static func smallWindowClient(port: UInt16) throws -> RawClient {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var size: Int32 = 64 << 10
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw TestFailure("connect: \(String(cString: strerror(errno)))") }
        return RawClient(adopting: fd)
    }

    @Test("a client that reads nothing makes the server hold at most one buffer of the blob, and stop reading it")
    func backpressure() throws {
        let source = StreamSource(size: 64 << 20)
        let server = try Self.server(source)
        defer { server.beginShutdown() }
        let client = try Self.smallWindowClient(port: server.port)
        client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        let readers = server.streamReaders
        // Reading stops by itself once the socket buffers and the ring are full: no read queued or running.
        let stalled = eventually {
            source.pulled > 0 && readers.pendingReads.load(ordering: .relaxed) == 0
                && readers.bufferedBytes.load(ordering: .relaxed) > BlobStream.capacity - BlobStream.minimumRead
        }
        #expect(stalled, "pulled \(source.pulled), buffered \(readers.bufferedBytes.load(ordering: .relaxed))")
        #expect(readers.bufferedBytes.load(ordering: .relaxed) <= BlobStream.capacity)
        // What left the ring sits in the kernel's socket buffers (the server's send buffer: a few MiB), not in athens.
        #expect(source.pulled < 32 << 20, "pulled \(source.pulled) of \(source.size) bytes for a client that reads nothing")
        let head = try #require(readHead(client.fd))
        #expect(readPatternBody(client.fd, length: head.length, rest: head.rest), "the whole 64 MiB arrive, byte-exact")
        #expect(source.pulled == source.size)
        #expect(eventually { source.released == 1 && readers.bufferedBytes.load(ordering: .relaxed) == 0 })
    }

    @Test("a client that goes away mid-stream: the blob is released, also when its read was blocked")
    func clientGoesAway() throws {
        let source = StreamSource(size: 64 << 20)
        let server = try Self.server(source)
        defer { server.beginShutdown() }
        do {
            // Gone while the server waits for the socket (the client read a little, then closed).
            let client = try RawClient(port: server.port)
            client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try #require(readHead(client.fd))
        }
        #expect(eventually { source.released == 1 }, "released \(source.released) of \(source.made)")
        #expect(source.pulled < source.size)
        do {
            // Gone while the storage's read blocks: released when that read returns, and no read follows.
            source.gate.close()
            let client = try RawClient(port: server.port)
            client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(eventually { source.gate.held == 1 })
        }
        // The server sees the close when it next writes, after the held read returns.
        source.gate.openGate()
        #expect(eventually { source.released == 2 }, "released \(source.released) of \(source.made)")
        #expect(source.pulled < 2 * source.size, "reads stop once the connection is gone")
        #expect(eventually { server.streamReaders.streams.load(ordering: .relaxed) == 0 && server.inFlight == 0 })
    }
}

/// athens (one event loop, no memory cache: every hit is a storage blob) on the C storage fixture, whose
/// zip reads for a "slow-read" module sleep 1 s each and give 64 bytes.
@Suite("stream blobs of a slow C storage", .blockingBodies, .serialized)
final class SlowStreamStorageTests {
    let work = TestSupport.makeTemporaryDirectory("slow-stream")
    let events: String
    let storagePath: String
    let fetcherPath: String
    static let slowZip = "/example.com/ok/slow-read/@v/v1.0.0.zip"

    init() throws {
        events = work + "/events"
        storagePath = try TestSupport.compileCPlugin("test_storage.c", defines: ["EVENTS_FILE=\"\(events)\""], into: work, name: "libCSlowStorage.so")
        fetcherPath = try TestSupport.compileCPlugin("test_fetcher.c", into: work, name: "libCTestFetcher.so")
    }

    deinit { TestSupport.removeDirectory(work) }

    /// Lines of the fixture's event file for the slow zip ("read" or "released").
    func slowZipEvents(_ kind: String) -> Int {
        let text = (try? String(contentsOfFile: events, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0 == "\(kind) example.com/ok/slow-read@v1.0.0 2" }.count
    }

    /// With the memory cache on, the zip is small enough to be cached: its first hit on the loop must still not
    /// read it there (it is streamed, and cached only by a later hit off the loop).
    @Test("a zip whose reads sleep streams while the same loop answers other files and /healthz; it arrives byte-exact; a client that leaves releases its blob",
          arguments: [#""cache": {"maxFileBytes": 0}"#, #""cache": {"maxFileBytes": 65536}"#])
    func slowReadStallsNothing(cache: String) throws {
        // The expected bytes: the same fetcher's zip through MemoryStorage (a bytes blob, nothing slow).
        let reference = try AthensServer(manifest: """
            {"spoolDirectory": "\(work)", "storage": {"plugin": "MemoryStorage"}, "fetchers": [{"name": "c", "plugin": "\(fetcherPath)"}]}
            """, directory: work)
        let expected = try reference.get(Self.slowZip)
        reference.stop()
        try #require(expected.status == 200)
        let reads = (expected.body.count + 63) / 64
        #expect(reads >= 4, "a zip of \(expected.body.count) bytes: too few slow reads to overlap anything")

        let athens = try AthensServer(manifest: """
            {"spoolDirectory": "\(work)", "storage": {"plugin": "\(storagePath)"}, "fetchers": [{"name": "c", "plugin": "\(fetcherPath)"}],
             "server": {"threads": 1}, \(cache)}
            """, directory: work)
        defer { athens.stop() }
        // Store both versions (fetching a .info saves its zip too); only the slow module's zip reads are slow.
        let others = ["/example.com/ok/fast/@v/v1.0.0.info", "/example.com/ok/fast/@v/v1.0.0.mod", "/example.com/ok/fast/@v/v1.0.0.zip", "/healthz"]
        for path in others + ["/example.com/ok/slow-read/@v/v1.0.0.info"] {
            #expect(try athens.get(path).status == 200, "\(path)")
        }

        // Reads and releases of the slow zip so far (storing may have read it back).
        let readsBefore = slowZipEvents("read"), releasesBefore = slowZipEvents("released")
        let slow = try Download(port: athens.port, path: Self.slowZip)
        // The download is under way once its first slow read has returned.
        #expect(eventually { slowZipEvents("read") > readsBefore })
        for round in 0..<2 {
            for path in others {
                let response = try athens.get(path)
                #expect(response.status == 200, "\(path)")
                // Were the zip read on the event loop, nothing else would be answered until its last read.
                #expect(slowZipEvents("read") < readsBefore + reads, "round \(round): \(path) was answered only after the slow zip's reads")
                #expect(!slow.done, "\(path) answered after the slow zip completed")
            }
        }
        _ = waitUntil(timeout: 120) { slow.done }
        let response = try #require(slow.response)
        #expect(response.status == 200)
        #expect(response.body == expected.body, "the slow zip arrives complete and byte-exact")
        let cached = cache.contains("65536")
        if cached {
            // Opened once on the loop (released unread), then read whole on the pool and cached.
            #expect(eventually { slowZipEvents("released") == releasesBefore + 2 })
            let readsAfter = slowZipEvents("read")
            #expect(try athens.get(Self.slowZip).body == expected.body, "served from memory")
            #expect(slowZipEvents("read") == readsAfter, "a cached zip is not read again")
            return
        }
        #expect(eventually { slowZipEvents("released") == releasesBefore + 1 })

        // A client that leaves mid-stream: its blob is released (after the read in progress returns).
        do {
            let leaving = try RawClient(port: athens.port)
            leaving.send("GET \(Self.slowZip) HTTP/1.1\r\nHost: x\r\n\r\n")
            let before = slowZipEvents("read")
            #expect(eventually { slowZipEvents("read") > before }, "its download got under way")
        }
        #expect(eventually { slowZipEvents("released") == releasesBefore + 2 }, "the blob of the client that left was released")
        #expect(try athens.get("/healthz").status == 200)
    }
}

/// One GET read to its end on a thread of its own.
private final class Download: @unchecked Sendable {
    private let client: RawClient
    private let lock = NSLock()
    private var result: (status: Int, headers: [String: String], body: [UInt8])?
    private var finished = false

    init(port: UInt16, path: String) throws {
        client = try RawClient(port: port)
        client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread { [self] in
            let response = client.readResponse(timeout: 120)
            lock.withLock { result = response; finished = true }
        }.start()
    }

    var done: Bool { lock.withLock { finished } }
    var response: (status: Int, headers: [String: String], body: [UInt8])? { lock.withLock { result } }
}
