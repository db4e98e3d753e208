// Saving a version: lock, .mod, .zip (single PUT or multipart), then .info with If-None-Match: * as the commit.
import Basics
import FoundationEssentials
import Glibc
import HTTPClient
import PluginKit
import S3Core

extension S3Storage {
    /// Every step runs within `call` (its deadline, its cancellation); the clean-up after a failure runs within
    /// `cleanupBudget()` instead, since what it removes would otherwise linger (and, for parts, be billed).
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader, call context: CallContext) throws(PluginFailure) {
        let keys = try keys(module, version)
        // No look before the lock: the host saves only what it found missing, and a look before would not
        // spare the one after (the previous holder may commit between the two).
        let lock = try acquireLock(keys, in: context)
        defer { lock.release() }
        if try head(keys.info, in: context) != nil { throw .alreadyExists("\(keys.description): already stored") }
        do throws(PluginFailure) {
            try put(keys.mod, mod, in: context)
            try uploadZip(keys, zip, lock: lock, in: context)
            try lock.refreshIfDue(in: context)
            let call = S3Call(method: .put, key: keys.info, headers: [("If-None-Match", "*"), ("Content-Type", "application/json")],
                              body: info, idempotent: false)
            let response = try s3.send(call, in: context)
            switch response.status {
            case 200: return
            // Only a saver that took our lock over as stale can have committed first: its .info stays.
            case 412, 409: throw PluginFailure.alreadyExists("\(keys.description): already stored")
            default: throw S3Connection.failure(call, response)
            }
        } catch {
            // We hold the lock and no .info exists: what we wrote is invisible; remove it so nothing lingers.
            if error.status != ATH_ALREADY_EXISTS {
                let cleanup = cleanupBudget()
                try? delete(keys.mod, in: cleanup)
                try? delete(keys.zip, in: cleanup)
            }
            throw error
        }
    }

    /// A context for removing what a failed or cancelled save left: the config's timeout, at most 10 s, from now.
    func cleanupBudget() -> CallContext {
        let budget = min(s3.timeout, .seconds(10))
        let nanoseconds = UInt64(budget.components.seconds) * 1_000_000_000 + UInt64(budget.components.attoseconds / 1_000_000_000)
        return CallContext(deadline: CallContext.now() + nanoseconds)
    }

    /// An unconditional, idempotent PUT.
    func put(_ key: String, _ bytes: [UInt8], in context: CallContext) throws(PluginFailure) {
        let call = S3Call(method: .put, key: key, body: bytes, idempotent: true)
        let response = try s3.send(call, in: context)
        guard response.status == 200 else { throw S3Connection.failure(call, response) }
    }

    /// Reads up to `buffer.count` bytes from the host's zip: fewer only at its end.
    private func fill(_ buffer: inout [UInt8], from zip: ByteReader) throws(PluginFailure) -> Int {
        var filled = 0
        var failure: PluginFailure?
        buffer.withUnsafeMutableBytes { raw in
            while filled < raw.count {
                do throws(PluginFailure) {
                    let n = try zip.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...]))
                    if n == 0 { return }
                    filled += n
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
        return filled
    }

    /// The zip in one PUT when it fits in a part, else as a multipart upload that is aborted on any failure.
    /// At most one part is in memory.
    /// A cancelled (or expired) context stops it before the next part, or during one, and the upload is aborted.
    private func uploadZip(_ keys: VersionKeys, _ zip: ByteReader, lock: SaveLock, in context: CallContext) throws(PluginFailure) {
        let what = keys.description
        let lengthError = PluginFailure.invalid("\(what): zip stream length differs from its declared size \(zip.size)")
        if zip.size <= UInt64(partSize) {
            // One byte more than declared is asked for, to notice a stream that is longer than it says.
            var buffer = [UInt8](repeating: 0, count: Int(zip.size) + 1)
            let n = try fill(&buffer, from: zip)
            guard n == Int(zip.size) else { throw lengthError }
            buffer.removeLast()
            try put(keys.zip, buffer, in: context)
            return
        }
        let create = S3Call(method: .post, key: keys.zip, query: [("uploads", "")], headers: [("Content-Type", "application/zip")],
                            idempotent: false)
        let created = try s3.send(create, in: context)
        guard created.status == 200 else { throw S3Connection.failure(create, created) }
        let uploadID: String
        do {
            uploadID = try InitiatedUpload(xml: created.body).uploadID
        } catch {
            throw .unavailable("S3Storage: \(create.what): unreadable answer: \(error)")
        }
        do throws(PluginFailure) {
            var etags: [String] = []
            var total: UInt64 = 0
            var buffer = [UInt8](repeating: 0, count: partSize)
            while true {
                try context.check("S3Storage: \(what): multipart upload")
                let n = try fill(&buffer, from: zip)
                if n == 0 { break }
                total += UInt64(n)
                guard total <= zip.size else { throw lengthError }
                let part = S3Call(method: .put, key: keys.zip, query: [("partNumber", String(etags.count + 1)), ("uploadId", uploadID)],
                                  body: n == buffer.count ? buffer : Array(buffer[0..<n]), idempotent: true)
                let response = try s3.send(part, in: context)
                guard response.status == 200, let etag = response.headers["ETag"] else { throw S3Connection.failure(part, response) }
                etags.append(etag)
                try lock.refreshIfDue(in: context)
            }
            guard total == zip.size else { throw lengthError }
            let complete = S3Call(method: .post, key: keys.zip, query: [("uploadId", uploadID)], body: CompletedUpload.requestBody(etags: etags),
                                  idempotent: false)
            let response = try s3.send(complete, in: context)
            guard response.status == 200 else { throw S3Connection.failure(complete, response) }
            do {
                if case .failed(let error) = try CompletedUpload(xml: response.body) {
                    throw PluginFailure.unavailable("S3Storage: \(complete.what): \(error.code)")
                }
            } catch let failure as PluginFailure {
                throw failure
            } catch {
                throw PluginFailure.unavailable("S3Storage: \(complete.what): unreadable answer: \(error)")
            }
        } catch {
            // No parts may be left behind (they are billed and invisible).
            _ = try? s3.send(S3Call(method: .delete, key: keys.zip, query: [("uploadId", uploadID)], idempotent: true), in: cleanupBudget())
            throw error
        }
    }

    // MARK: - The save lock

    /// Takes `<version>.lock`: waits while a live saver holds it, takes it over once stale (older than `lease` by the
    /// server's clock), and throws `.alreadyExists` as soon as the version is committed.
    /// Gives up with TIMEOUT / CANCELLED when `context` ends first.
    func acquireLock(_ keys: VersionKeys, in context: CallContext) throws(PluginFailure) -> SaveLock {
        let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined(separator: "-")
        let giveUp = Date().addingTimeInterval(max(60, 4 * lease))
        var pause = 0.05
        while true {
            let call = S3Call(method: .put, key: keys.lock, headers: [("If-None-Match", "*")], body: Array(token.utf8), idempotent: false)
            let response = try s3.send(call, in: context)
            if response.status == 200 { return SaveLock(storage: self, key: keys.lock, token: token, refreshEvery: lease / 3) }
            guard response.status == 412 || response.status == 409 else { throw S3Connection.failure(call, response) }
            if try head(keys.info, in: context) != nil { throw .alreadyExists("\(keys.description): already stored") }
            if let held = try head(keys.lock, in: context), isStale(held) {
                // The dead saver's unfinished upload would stay (and be billed) forever: abort it with its lock.
                try abortUploads(keys.zip, in: context)
                try delete(keys.lock, in: context)
                continue
            }
            guard Date() < giveUp else {
                throw .unavailable("S3Storage: \(keys.description): another save has held its lock for over \(Int(max(60, 4 * lease))) s")
            }
            try context.check("S3Storage: \(keys.description): waiting for another save's lock")
            PosixThread.sleep(seconds: min(pause, context.remainingNanoseconds.map { Double($0) / 1e9 } ?? pause))
            pause = min(pause * 2, 1)
        }
    }

    /// Aborts every multipart upload in progress for exactly `key`.
    private func abortUploads(_ key: String, in context: CallContext) throws(PluginFailure) {
        let call = S3Call(method: .get, key: nil, query: [("uploads", ""), ("prefix", key)], idempotent: true)
        let response = try s3.send(call, in: context)
        guard response.status == 200 else { throw S3Connection.failure(call, response) }
        let uploads: [XMLNode]
        do {
            uploads = try XMLReader.parse(response.body).children("Upload")
        } catch {
            throw .unavailable("S3Storage: list uploads of \(key): unreadable answer: \(error)")
        }
        for upload in uploads where upload.value("Key") == key {
            guard let id = upload.value("UploadId") else { continue }
            _ = try s3.send(S3Call(method: .delete, key: key, query: [("uploadId", id)], idempotent: true), in: context)
        }
    }

    /// Whether a lock's Last-Modified is more than `lease` before the server's Date (both from the server:
    /// no clock skew between instances matters).
    private func isStale(_ head: HTTPResponse) -> Bool {
        guard let modified = HTTPDate.seconds(head.headers["Last-Modified"]), let now = HTTPDate.seconds(head.headers["Date"]) else {
            return false
        }
        return Double(now - modified) > lease
    }
}

/// The lock of one save in progress: refreshed while the zip uploads, deleted at the end.
final class SaveLock {
    private let storage: S3Storage
    private let key: String
    private let token: String
    private let refreshEvery: Double
    private var refreshed = Date()

    init(storage: S3Storage, key: String, token: String, refreshEvery: Double) {
        self.storage = storage
        self.key = key
        self.token = token
        self.refreshEvery = refreshEvery
    }

    /// Rewrites the lock (a new Last-Modified) once a third of the lease has passed since the last write.
    func refreshIfDue(in context: CallContext) throws(PluginFailure) {
        guard Date().timeIntervalSince(refreshed) >= refreshEvery else { return }
        try storage.put(key, Array(token.utf8), in: context)
        refreshed = Date()
    }

    /// Deletes the lock (best effort: a lock left behind goes stale and is taken over).
    func release() { try? storage.delete(key, in: storage.cleanupBudget()) }
}

/// IMF-fixdate ("Tue, 01 Dec 2026 09:19:56 GMT"), the form S3 servers send, as seconds since 1970.
enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func seconds(_ text: String?) -> Int? {
        guard let parts = text?.split(separator: " "), parts.count == 6, parts[5] == "GMT",
              let day = Int(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])), let year = Int(parts[3]) else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int($0) }
        guard clock.count == 3, (1...31).contains(day) else { return nil }
        // Days from 1970-01-01 to the date (the proleptic Gregorian calendar, Howard Hinnant's days_from_civil).
        let y = monthIndex < 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let month = monthIndex + 1
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
    }
}
