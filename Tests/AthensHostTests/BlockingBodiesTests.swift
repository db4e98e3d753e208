import Foundation
import Synchronization
import Testing

@Suite("test support: blocking bodies run on threads of their own", .blockingBodies)
struct BlockingBodiesTests {
    @Test("a body of a .blockingBodies suite runs on the executor's threads, not the cooperative pool")
    func runsOnItsOwnThread() {
        #expect(BlockingTestExecutor.shared.ownsCurrentThread)
    }

    @Test("an executor of width 4 runs four blocked tasks at once, on its own threads")
    func waitingBodiesOverlap() async {
        // An executor of its own: the shared one's threads are busy with the rest of the suite.
        let executor = BlockingTestExecutor(width: 4)
        let started = StartedCount()
        // Each task blocks its thread until all four have started, which only ends in time on four threads at once.
        let all = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 {
                group.addTask(executorPreference: executor) {
                    started.value.add(1, ordering: .releasing)
                    return waitUntil(timeout: 10) { started.value.load(ordering: .acquiring) == 4 } && executor.ownsCurrentThread
                }
            }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(all)
    }

    @Test("the width bounds the threads: on width 2, no more than two of three blocked tasks ever run at once")
    func widthBounds() async {
        let executor = BlockingTestExecutor(width: 2)
        let running = StartedCount(), most = StartedCount()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask(executorPreference: executor) {
                    let now = running.value.add(1, ordering: .acquiringAndReleasing).newValue
                    most.value.max(now, ordering: .acquiringAndReleasing)
                    // Waits for a third to join, which cannot happen: the wait runs out and the task ends.
                    _ = waitUntil(timeout: 0.5) { running.value.load(ordering: .acquiring) == 3 }
                    running.value.subtract(1, ordering: .releasing)
                }
            }
        }
        #expect(most.value.load(ordering: .acquiring) == 2)
    }
}

private final class StartedCount: Sendable {
    let value = Atomic<Int>(0)
}
