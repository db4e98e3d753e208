import Basics
import Dispatch
import FoundationEssentials
import Glibc
import HostSupport
import Synchronization

/// Marks served versions as downloaded, cheaply enough for the hit path, and writes the marks to an
/// `AccessStore` in batches (every `flushSeconds`, when the table fills, and at shutdown).
///
/// A mark costs a hash of module and version, one short uncontended lock and a probe of a fixed-size
/// open-addressing table; it allocates nothing (a slot keeps the request's own strings). A flush swaps the
/// table for an empty one and appends its versions to the store, stamped with the flush's wall time: a
/// recorded time is at most one interval late, and N hits of a version between flushes are one record.
/// A table three quarters full wakes the flusher early; a mark that still finds no free slot within
/// `probes` is dropped and counted (`athens_access_marks_dropped_total`): that version keeps its older time.
package final class AccessRecorder: Sendable {
    struct Slot {
        /// 0: free.
        var hash: UInt64 = 0
        var module = ""
        var version = ""
    }

    struct Table {
        var slots: [Slot]
        var used = 0
    }

    private let table: Mutex<Table>
    /// Slots in the table; a power of two.
    package let capacity: Int
    private static let probes = 32
    private let store: any AccessStore
    private let wallClock: @Sendable () -> Int64
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let droppedMarks = Atomic<Int>(0)
    private let appendCalls = Atomic<Int>(0)
    /// Held for a whole flush (take the marks, append them): a flush returns only once every flush begun before
    /// it has written, so the last one at shutdown does not return while the flusher thread still holds marks.
    private let flushing = PosixLock()

    /// `capacity` is rounded up to a power of two; `wallClock` gives Unix seconds (tests inject one).
    package init(store: any AccessStore, capacity: Int = 4096,
                 wallClock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        var size = 16
        while size < capacity { size <<= 1 }
        self.capacity = size
        self.store = store
        self.wallClock = wallClock
        table = Mutex(Table(slots: [Slot](repeating: Slot(), count: size)))
    }

    /// Marks module@version downloaded. Called on the event loop for every served file.
    package func note(module: String, version: String) {
        let hash = Self.hash(module, version)
        let mask = capacity - 1
        let wakeAt = capacity - capacity / 4
        // 0: marked; 1: marked, and the table is now full enough to flush; 2: no free slot.
        let outcome: Int = table.withLock { table in
            var index = Int(truncatingIfNeeded: hash) & mask
            for _ in 0..<Self.probes {
                if table.slots[index].hash == 0 {
                    table.slots[index] = Slot(hash: hash, module: module, version: version)
                    table.used += 1
                    return table.used == wakeAt ? 1 : 0
                }
                if table.slots[index].hash == hash, table.slots[index].module == module, table.slots[index].version == version { return 0 }
                index = (index + 1) & mask
            }
            return 2
        }
        if outcome == 1 { wake.signal() } else if outcome == 2 { droppedMarks.add(1, ordering: .relaxed) }
    }

    /// FNV-1a over module, a 0 byte and version: no allocation, and the same in every process. Over the strings'
    /// contiguous UTF-8 (a borrowed buffer): iterating `String.UTF8View` cost about 30 instructions a byte.
    static func hash(_ module: String, _ version: String) -> UInt64 {
        func mix(_ hash: inout UInt64, _ text: String) {
            let done: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
                for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            }
            if done == nil { for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 } }
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        mix(&hash, module)
        hash = (hash ^ 0) &* 0x100_0000_01b3
        mix(&hash, version)
        return hash == 0 ? 1 : hash
    }

    /// Writes the marks since the last flush to the store (one `append`); returns how many versions it wrote.
    @discardableResult
    package func flush() throws(AccessStoreError) -> Int {
        flushing.lock()
        defer { flushing.unlock() }
        let fresh = [Slot](repeating: Slot(), count: capacity)
        let taken: [Slot] = table.withLock { table in
            guard table.used > 0 else { return [] }
            let slots = table.slots
            table = Table(slots: fresh)
            return slots
        }
        let versions = taken.compactMap { $0.hash == 0 ? nil : VersionID($0.module, $0.version) }
        guard !versions.isEmpty else { return 0 }
        appendCalls.add(1, ordering: .relaxed)
        try store.append(versions, at: wallClock())
        return versions.count
    }

    /// Marks dropped because the table had no free slot near their hash.
    package var dropped: Int { droppedMarks.load(ordering: .relaxed) }
    /// Appends made to the store so far (one per flush that had marks).
    package var appends: Int { appendCalls.load(ordering: .relaxed) }

    /// Flushes every `seconds` (and when the table fills) on a thread of its own until `stop()`.
    package func start(every seconds: Double) {
        PosixThread.start(name: "access-flush") { [self] in
            while !stopped.load(ordering: .acquiring) {
                _ = wake.wait(timeout: .now() + seconds)
                flushLogging()
            }
        }
    }

    /// Ends the flusher thread after one last flush (shutdown, or an assembly replaced by a reload).
    package func stop() {
        stopped.store(true, ordering: .releasing)
        wake.signal()
        flushLogging()
    }

    /// A flush whose failure is logged, not thrown: the marks of that batch are lost, serving goes on.
    package func flushLogging() {
        do {
            try flush()
        } catch {
            Log.error("access journal write failed", [("cause", error.description)])
        }
    }
}
