import Basics
import HostSupport
import FoundationEssentials
import Glibc
import Synchronization

/// The server's threads that pull the bytes of stream blobs (`Blob.Shape.stream`, a storage `read` callback),
/// so a `read` that blocks for seconds never holds an event loop: the ABI promises that plugins are called
/// from a loop only for `open`.
///
/// Why a small pool of its own and not the responder's thread: the download pool's threads are sized for
/// fetches and a response may outlive them; one thread per stream would be unbounded. A job is one read of
/// at most one chunk into its stream's bounded buffer (`BlobStream`); a stream whose buffer still has room
/// goes back to the tail of the queue, so streams share the threads chunk by chunk and a slow `read` holds
/// one thread, not everyone's turn. A stream whose buffer is full is not queued at all (its connection
/// queues it again as it sends), so a slow client costs memory bounded by `BlobStream.capacity` and no
/// thread. Threads start on first use, up to `threads`: a server whose storage never hands out streams
/// has none.
package final class StreamReaders: @unchecked Sendable {
    private let condition = PosixCondition()
    /// Streams waiting for a thread, oldest first from `head`.
    private var queue: [BlobStream] = []
    private var head = 0
    private var started = 0
    private var idle = 0
    private let maxThreads: Int
    /// Reads queued or running now.
    package let pendingReads = Atomic<Int>(0)
    /// Bytes read from storage and not yet sent, over every stream.
    package let bufferedBytes = Atomic<Int>(0)
    /// Stream responses in progress.
    package let streams = Atomic<Int>(0)

    package init(threads: Int) {
        maxThreads = max(1, threads)
    }

    /// Queues one read for `stream` (which marked itself queued); starts a thread when all are busy.
    func enqueue(_ stream: BlobStream) {
        condition.lock()
        queue.append(stream)
        if queue.count - head > idle && started < maxThreads {
            started += 1
            PosixThread.start(name: "athens-stream") { [self] in work() }
        }
        if idle > 0 { condition.signal() }
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let stream = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            // Back to the tail while it has room to fill: fair among streams, chunk by chunk.
            if stream.pull() { enqueue(stream) }
        }
    }
}
