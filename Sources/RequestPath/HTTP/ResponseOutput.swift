import Glibc
import SystemShims

/// The output side of one connection: the response head in a buffer reused across responses, how much of head
/// and body the socket has taken, and a stream body's reader. Owned by its `Connection`, touched only on its loop's
/// thread; one response at a time (`begin` … `finish`).
struct ResponseOutput {
    enum Progress { case done, blocked, waiting, failed }

    /// Bytes the half-close probe's `100 Continue` left unsent: they go out before the next head.
    var leftover: [UInt8] = []
    private var head: [UInt8] = []
    private var headSent = 0
    private var bodySent: UInt64 = 0
    /// The bytes of a stream blob body, read on a `StreamReaders` thread.
    private var stream: BlobStream?

    /// Starts a response: `writeHead` appends its head (after any leftover bytes) to the reused buffer, so no
    /// allocation once it has grown to a head's size.
    mutating func begin(writeHead: (inout [UInt8]) -> Void) {
        head.removeAll(keepingCapacity: true)
        head += leftover
        leftover = []
        writeHead(&head)
        headSent = 0
        bodySent = 0
    }

    /// A stream body: its reader starts at once and `write` sends what it has read.
    mutating func startStream(_ stream: BlobStream) {
        self.stream = stream
        stream.start()
    }

    /// The response was written: its reader is done. A head buffer grown past a normal head's size is let go.
    mutating func finish() {
        stream = nil
        if head.capacity > 4096 { head = [] } else { head.removeAll(keepingCapacity: true) }
    }

    /// The connection closed mid-response: the stream's reader lets go of the blob.
    mutating func cancel() {
        stream?.cancel()
        stream = nil
    }

    /// Writes as much of the response (its head, then `body` unless `headOnly`) as the socket `fd` takes. Every
    /// write that moves bytes sets `deadline` to `renewed`: a slow reader is cut off only when it stops reading.
    mutating func write(fd: Int32, body: Response.Body, headOnly: Bool, deadline: inout Double, renewed: Double) -> Progress {
        let bodyTotal = headOnly ? 0 : body.count
        // Head, plus in-memory bodies in the same writev.
        while headSent < head.count {
            var bodyBytes: UnsafeRawBufferPointer?
            switch body {
            case let .bytes(bytes) where !headOnly:
                bodyBytes = bytes.withUnsafeBytes { $0 } // stable: the caller's Response keeps `bytes` alive
            case let .blob(blob) where !headOnly:
                if case let .bytes(b) = blob.shape { bodyBytes = b }
            default:
                break
            }
            let n: Int
            let sent = headSent
            if let bodyBytes, bodyBytes.count > 0 {
                n = head.withUnsafeBytes { h in
                    var iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress! + sent), iov_len: h.count - sent),
                               iovec(iov_base: UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress!), iov_len: bodyBytes.count)]
                    return writev(fd, &iov, 2)
                }
            } else {
                let more = bodyTotal > 0 ? Int32(MSG_MORE) : 0
                n = head.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL) | more) }
            }
            if n < 0 { return errno == EAGAIN || errno == EINTR ? .blocked : .failed }
            let headLeft = head.count - headSent
            if n >= headLeft {
                headSent = head.count
                bodySent = UInt64(n - headLeft)
            } else {
                headSent += n
            }
            deadline = renewed
        }
        while bodySent < bodyTotal {
            let left = bodyTotal - bodySent
            var n: Int
            switch body {
            case .empty:
                return .done
            case let .bytes(bytes):
                n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + Int(bodySent), Int(left), Int32(MSG_NOSIGNAL)) }
            case let .blob(blob):
                switch blob.shape {
                case let .bytes(b):
                    n = send(fd, b.baseAddress! + Int(bodySent), Int(left), Int32(MSG_NOSIGNAL))
                case let .file(fileFD, offset):
                    var position = off_t(offset + bodySent)
                    n = sendfile(fd, fileFD, &position, Int(min(left, 1 << 30)))
                    if n == 0 { return .failed } // file shorter than promised
                case .stream:
                    guard let stream else { return .failed }
                    switch stream.readable() {
                    case .failed:
                        return .failed
                    case .waiting:
                        return .waiting
                    case let .bytes(b):
                        n = send(fd, b.baseAddress!, b.count, Int32(MSG_NOSIGNAL))
                        if n > 0 { stream.consumed(n) }
                    }
                }
            }
            if n < 0 { return errno == EAGAIN || errno == EINTR ? .blocked : .failed }
            bodySent += UInt64(n)
            deadline = renewed
        }
        return .done
    }
}
