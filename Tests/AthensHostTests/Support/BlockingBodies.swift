import Foundation
import RequestPath
import Synchronization
import Testing

/// Runs a suite's test bodies on threads of their own instead of Swift's cooperative pool.
///
/// Most end-to-end tests here are synchronous: they wait on child processes (athens, go, git, nginx), on sockets and
/// on `waitUntil` polls. On the cooperative pool, which has one thread per core (two on the CI machine), two such
/// tests hold every thread there is, and every other test — even a table of string checks — queues behind them while
/// the cores sit idle (measured 2026-12-02: 57% idle over the test phase, trivial tests ending at ~250 s of a 500 s
/// run; `scripts/suite_timeline.py` shows it). A suite that waits says `@Suite("…", .blockingBodies)`.
///
/// The executor's width bounds how many such bodies run at once, so the machine is kept busy without running every
/// end-to-end test at the same time (their timeouts assume a machine that is loaded, not thrashing).
///
/// The longest suites are `.serialized` chains (a whole deployment, the real S3 server) that set the run's length.
/// Each of their steps would queue behind every other suite's waiting bodies; `.blockingChain` gives them threads of
/// their own (`BlockingTestExecutor.chains`), so they start at once and their steps never wait.
struct BlockingBodiesTrait: SuiteTrait, TestTrait, TestScoping {
    /// Where the bodies run: `BlockingTestExecutor.shared` or `.chains`.
    let executor: BlockingTestExecutor
    var isRecursive: Bool { true }

    /// Only test cases get the scope: a suite's own scope would wrap all of its tests in one preference, which is the
    /// same executor anyway, and would be one more level for every test to pass through.
    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? { testCase == nil ? nil : self }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(executor) {
            // The preference takes effect at the next suspension: without one, a synchronous body would run on where
            // the scope began, the cooperative pool. The yield moves the task to the executor before the body.
            await Task.yield()
            try await function()
        }
    }
}

extension Trait where Self == BlockingBodiesTrait {
    /// The suite's tests block (processes, sockets, polls): run their bodies on `BlockingTestExecutor`.
    static var blockingBodies: Self { Self(executor: .shared) }
    /// A long `.serialized` suite whose tests block: its bodies run on `BlockingTestExecutor.chains`.
    static var blockingChain: Self { Self(executor: .chains) }
}

/// A task executor on `width` threads of its own: the host's `WorkerPool` (FIFO), with a queue that never refuses.
/// Threads are never stopped: the test process ends with the run.
final class BlockingTestExecutor: TaskExecutor, @unchecked Sendable {
    /// `ATHENS_TEST_BLOCKING_THREADS` overrides the width. Measured on the two-core CI machine: the test phase took
    /// 500 s on the cooperative pool, 240-290 s with 6 threads (cores ~94% busy) and 284-303 s with 8. The default is
    /// 4, for margin: at 6 the saturated cores made load-sensitive tests fail now and then.
    static let shared = BlockingTestExecutor(
        width: ProcessInfo.processInfo.environment["ATHENS_TEST_BLOCKING_THREADS"].flatMap { Int($0) }.map { max(1, $0) } ?? 4)

    /// The long serialized suites' (`.blockingChain`): one thread for each such suite, which runs one test at a time.
    static let chains = BlockingTestExecutor(width: 2)

    /// True on one of this executor's threads: how its own tests see where a body ran.
    var ownsCurrentThread: Bool { ownThreads.withLock { $0.contains(UInt(pthread_self())) } }
    private let ownThreads = Mutex(Set<UInt>())

    let width: Int
    private let pool: WorkerPool

    init(width: Int) {
        self.width = width
        pool = WorkerPool(name: "blocking-body", threads: width, capacity: .max)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        pool.submit { [self] in
            _ = ownThreads.withLock { $0.insert(UInt(pthread_self())) }
            job.runSynchronously(on: executor)
        }
    }
}
