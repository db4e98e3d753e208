// The storage checks that run many threads at one instance: saves racing on one version, reads racing,
// and many versions at once (StorageChecks.swift has the list and the helpers).
import Basics
import Dispatch
import FoundationEssentials
import Glibc
import HostSupport
import PluginABI
import PluginHost

extension StorageChecks {
    func concurrentSaves() throws -> String {
        let module = prefix + "/race", version = "v1.0.0"
        let count = 8
        let zips = (0..<count).map { PatternBytes(seed: 100 + UInt64($0)).bytes(200_000 + $0) }
        let infos = (0..<count).map { info(version, tag: "candidate \($0)") }
        let mods = (0..<count).map { mod(module, tag: "candidate \($0)") }
        let problems = ProblemLog()
        let outcomes = OutcomeCounter()
        DispatchQueue.concurrentPerform(iterations: count * 2) { i in
            if i < count {
                do throws(PluginCallError) {
                    try save(module, version, info: infos[i], mod: mods[i], zip: zips[i])
                    outcomes.add("ok")
                } catch {
                    if error.isAlreadyExists { outcomes.add("exists") } else { problems.add("\(error)") }
                }
            } else {
                // Readers race the savers: whatever they see must be one candidate's bytes.
                for _ in 0..<50 {
                    do {
                        let bytes = try read(module, version, .zip)
                        if !zips.contains(bytes) { problems.add("a reader saw a .zip of \(bytes.count) bytes that is no candidate's") }
                        return
                    } catch let error as PluginCallError where error.isNotFound {
                        usleep(1000)
                    } catch {
                        problems.add("\(error)")
                        return
                    }
                }
            }
        }
        if let summary = problems.summary { throw CheckFailure(summary) }
        let zip = try read(module, version, .zip)
        guard let winner = zips.firstIndex(of: zip) else { throw CheckFailure("the stored .zip is no candidate's") }
        guard try read(module, version, .info) == infos[winner], try read(module, version, .mod) == mods[winner] else {
            throw CheckFailure("mixed bytes: the stored .zip is candidate \(winner)'s but .info or .mod is another's")
        }
        guard try storage.list(module) == [version] else { throw CheckFailure("list after racing saves is \(try storage.list(module))") }
        let ok = outcomes.count("ok")
        guard ok >= 1 else { throw CheckFailure("no save answered ATH_OK") }
        return "\(ok) OK, \(outcomes.count("exists")) ALREADY_EXISTS; all three files from candidate \(winner)"
            + (ok > 1 ? " (note: the ABI says one save wins and the others answer ATH_ALREADY_EXISTS)" : "")
    }

    func concurrentReads() throws -> String {
        let module = prefix + "/readers", version = "v1.0.0"
        let zip = PatternBytes(seed: 7).bytes(250_000)
        let infoBytes = info(version)
        try save(module, version, info: infoBytes, mod: mod(module), zip: zip)
        let problems = ProblemLog()
        let held = BlobBag()
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            do {
                let blob = try storage.open(module, version, i % 2 == 0 ? .zip : .info)
                let bytes = try Self.readAll(blob, what: "reader \(i)")
                if bytes != (i % 2 == 0 ? zip : infoBytes) { problems.add("reader \(i) read wrong bytes") }
                // Half the blobs are released later, by another thread (release may come from any thread).
                if i % 4 < 2 { held.add(blob) }
            } catch {
                problems.add("\(error)")
            }
        }
        let releasedElsewhere = held.count
        // Released on a thread of its own: dispatch_sync may run on the calling thread.
        let done = DispatchSemaphore(value: 0)
        PosixThread.start(name: "check-release") { held.removeAll(); done.signal() }
        done.wait()
        if let summary = problems.summary { throw CheckFailure(summary) }
        return "32 concurrent opens and reads; \(releasedElsewhere) blobs released on another thread"
    }

    func concurrentMany() throws -> String {
        let module = prefix + "/many"
        let problems = ProblemLog()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let version = "v1.0.\(i)"
            let zip = PatternBytes(seed: 1000 + UInt64(i)).bytes(1000 + i * 37)
            do {
                try save(module, version, info: info(version), mod: mod(module), zip: zip)
                if try read(module, version, .zip) != zip { problems.add("\(version): bytes differ") }
            } catch {
                problems.add("\(version): \(error)")
            }
        }
        if let summary = problems.summary { throw CheckFailure(summary) }
        let listed = try storage.list(module)
        guard Set(listed) == Set((0..<64).map { "v1.0.\($0)" }), listed.count == 64 else {
            throw CheckFailure("list gives \(listed.count) versions (\(Set(listed).count) distinct) after 64 saves")
        }
        return "64 versions saved and read back from parallel threads"
    }
}

/// Counts named outcomes across threads.
final class OutcomeCounter: @unchecked Sendable {
    private let lock = PosixLock()
    private var counts: [String: Int] = [:]

    func add(_ key: String) { lock.withLock { counts[key, default: 0] += 1 } }
    func count(_ key: String) -> Int { lock.withLock { counts[key, default: 0] } }
}

/// Blobs kept alive by one thread and released by another.
final class BlobBag: @unchecked Sendable {
    private let lock = PosixLock()
    private var blobs: [Blob] = []

    func add(_ blob: Blob) { lock.withLock { blobs.append(blob) } }
    var count: Int { lock.withLock { blobs.count } }
    func removeAll() {
        let taken = lock.withLock { () -> [Blob] in
            let all = blobs
            blobs = []
            return all
        }
        _ = taken
    }
}
