// PosixThread: starting a detached thread and sleeping one, what Foundation's Thread did, without
// libFoundation.so.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Threads of the host and the plugins.
package enum PosixThread {
    /// Runs `body` on a new detached thread named `name` (the kernel keeps 15 bytes of it: `top -H`, gdb).
    /// `stackSize` nil: the process default (RLIMIT_STACK). False when the kernel refused a thread (EAGAIN: out
    /// of threads or memory): `body` does not run, as with Foundation's Thread, but a line on stderr says so.
    @discardableResult
    package static func start(name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attributes, max(stackSize, Int(PTHREAD_STACK_MIN))) }
        let box = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, &attributes, threadMain, box)
        guard started == 0 else {
            Unmanaged<ThreadStart>.fromOpaque(box).release()
            FileDescriptor.writeAll(2, "cannot start thread \(name): \(String(cString: strerror(started)))\n")
            return false
        }
        return true
    }

    fileprivate static func run(_ start: ThreadStart) {
        nameCurrentThread(start.name)
        start.body()
    }

    /// Glibc's module does not export pthread_setname_np (a _GNU_SOURCE declaration); the kernel takes the
    /// name from the thread's comm file as well. A failure leaves the inherited name, which is harmless.
    private static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = FileDescriptor.writeAll(fd, Array(name.utf8.prefix(15)))
        close(fd)
    }

    /// Blocks the calling thread for `seconds` (nothing when ≤ 0); resumes after a signal handler too.
    package static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        let whole = Int(min(seconds, 1e9))
        var request = timespec(tv_sec: whole, tv_nsec: Int((seconds - Double(whole)) * 1e9))
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
    }
}

/// What a new thread runs, handed over through pthread_create's argument (retained once, released by the thread).
private final class ThreadStart: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
}

private func threadMain(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    PosixThread.run(Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue())
    return nil
}
