import HostSupport
import PluginHost
import SystemShims
import Synchronization

/// One stream-blob response in flight: a bounded ring between the `StreamReaders` thread that fills it from
/// the blob's `read` and the connection that sends from it. One producer and one consumer; the lock guards
/// the counters only and is never held during the blocking `read` or the `send` (each side touches only its
/// own part of the ring: the producer the free bytes, the consumer the filled ones).
final class BlobStream: @unchecked Sendable {
    /// Most bytes buffered per connection: what a slow client can make the server hold for it.
    static let capacity = 128 << 10
    /// Largest single `read`.
    static let chunk = 64 << 10
    /// A read waits for at least this much room (or for what is left): no trickle of tiny reads.
    static let minimumRead = 16 << 10

    /// The bytes the consumer can send now, or why there are none.
    enum Readable {
        case bytes(UnsafeRawBufferPointer)
        /// Nothing buffered yet: the loop is told (`EventLoop.streamReady`) when there is.
        case waiting
        /// The blob's `read` failed or ended before `size` bytes: the response cannot be completed.
        case failed
    }

    private struct State {
        /// Bytes read from the blob (the producer's position).
        var written: UInt64 = 0
        /// Bytes handed to the socket (the consumer's position).
        var sent: UInt64 = 0
        /// A read is queued or running.
        var queued = false
        /// The consumer found the ring empty and waits to be told.
        var waiting = false
        var failed = false
        /// The connection has gone: stop reading.
        var cancelled = false
    }

    let blob: Blob
    private let ring: UnsafeMutableRawBufferPointer
    private let state = Mutex(State())
    private let readers: StreamReaders
    private let loop: EventLoop
    private let fd: Int32
    private let generation: UInt64
    /// Named in the crash line while the reader thread is inside the plugin's `read`.
    private let requestID: RequestID?

    init(blob: Blob, readers: StreamReaders, loop: EventLoop, fd: Int32, generation: UInt64, requestID: RequestID?) {
        self.blob = blob
        self.readers = readers
        self.loop = loop
        self.fd = fd
        self.generation = generation
        self.requestID = requestID
        ring = .allocate(byteCount: Int(min(UInt64(Self.capacity), max(blob.size, 1))), alignment: 16)
        readers.streams.add(1, ordering: .relaxed)
    }

    deinit {
        let left = state.withLock { Int($0.written - $0.sent) }
        readers.bufferedBytes.subtract(left, ordering: .relaxed)
        readers.streams.subtract(1, ordering: .relaxed)
        ring.deallocate()
    }

    /// Queues the first read (called once, by the connection).
    func start() {
        if state.withLock({ s in scheduleIfRoom(&s) }) { readers.enqueue(self) }
    }

    /// The connection has gone: no more reads (one in progress finishes, then the stream lets go of the blob).
    func cancel() {
        state.withLock { $0.cancelled = true }
    }

    /// Consumer: the contiguous buffered bytes from the send position.
    func readable() -> Readable {
        state.withLock { s in
            let buffered = Int(s.written - s.sent)
            if buffered > 0 {
                let at = Int(s.sent % UInt64(ring.count))
                return .bytes(UnsafeRawBufferPointer(rebasing: ring[at..<(at + min(buffered, ring.count - at))]))
            }
            if s.failed { return .failed }
            s.waiting = true
            return .waiting
        }
    }

    /// Consumer: `count` bytes of what `readable` gave were sent; makes room, so may queue a read.
    func consumed(_ count: Int) {
        readers.bufferedBytes.subtract(count, ordering: .relaxed)
        if state.withLock({ s in s.sent += UInt64(count); return scheduleIfRoom(&s) }) { readers.enqueue(self) }
    }

    /// Producer (a `StreamReaders` thread): one read into the free part of the ring. True when the stream
    /// still has room and bytes to read, and stays queued.
    func pull() -> Bool {
        let region: UnsafeMutableRawBufferPointer? = state.withLock { s in
            guard !s.cancelled, let n = readSize(s) else {
                unqueue(&s)
                return nil
            }
            let at = Int(s.written % UInt64(ring.count))
            return UnsafeMutableRawBufferPointer(rebasing: ring[at..<(at + min(n, ring.count - at))])
        }
        guard let region else { return false }
        if let requestID {
            requestID.withBytes { $0.withMemoryRebound(to: CChar.self) { athens_crash_set_request($0.baseAddress, $0.count) } }
        }
        let got = blob.readStream(into: region)
        if requestID != nil { athens_crash_set_request(nil, 0) }
        if let got, got > 0 { readers.bufferedBytes.add(got, ordering: .relaxed) }
        let (wake, again) = state.withLock { s -> (Bool, Bool) in
            if let got, got > 0 { s.written += UInt64(got) } else { s.failed = true }
            let wake = s.waiting
            s.waiting = false
            if s.failed || s.cancelled || readSize(s) == nil {
                unqueue(&s)
                return (wake, false)
            }
            return (wake, true)
        }
        if wake { loop.streamReady(fd: fd, generation: generation) }
        return again
    }

    /// How much the next read may take, or nil when it should wait (no room, or nothing left to read).
    private func readSize(_ s: State) -> Int? {
        let left = blob.size - s.written
        let room = ring.count - Int(s.written - s.sent)
        guard left > 0, UInt64(room) >= min(UInt64(Self.minimumRead), left) else { return nil }
        return Int(min(UInt64(min(room, Self.chunk)), left))
    }

    /// Marks a read queued when one is due and none is; true when the caller must enqueue it.
    private func scheduleIfRoom(_ s: inout State) -> Bool {
        guard !s.queued, !s.cancelled, !s.failed, readSize(s) != nil else { return false }
        s.queued = true
        readers.pendingReads.add(1, ordering: .relaxed)
        return true
    }

    private func unqueue(_ s: inout State) {
        if s.queued {
            s.queued = false
            readers.pendingReads.subtract(1, ordering: .relaxed)
        }
    }
}
