import Basics
import FoundationEssentials
import Glibc
import PluginHost

/// Small stored files kept for hits that need no storage call at all: a version's .info, .mod and zip never
/// change once stored (the protocol requires it). A file comes either as its bytes, in memory, or - when the
/// storage keeps it in a file (an fd blob) and it is at least `fileEntryMinBytes` - as the storage's open file,
/// which costs a descriptor and no memory and is sent with sendfile. Bounded in bytes held in memory
/// (`maxBytes`) and in open files (`maxFiles`); FIFO eviction.
package final class ArtifactCache: @unchecked Sendable {
    /// One cached file.
    package enum Entry {
        case bytes([UInt8])
        /// An fd-shaped blob of the storage, shared by every response that sends it (sendfile reads at explicit
        /// offsets, so concurrent sends do not interfere); released when evicted and no response holds it.
        case file(Blob)

        /// The response body that serves it.
        package var body: Response.Body {
            switch self {
            case let .bytes(bytes): .bytes(bytes)
            case let .file(blob): .blob(blob)
            }
        }
    }

    package let maxBytes: Int
    package let maxFileBytes: Int
    package let maxFiles: Int
    /// Smaller files are kept as bytes even when the storage has them in a file: a head and a small body go out
    /// in one writev, where sendfile would need a second system call.
    package static let fileEntryMinBytes = 4096
    private let lock = PosixLock()
    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    private var head = 0
    private var bytes = 0
    private var files = 0

    package init(maxBytes: Int, maxFileBytes: Int, maxFiles: Int = 1024) {
        self.maxBytes = maxBytes
        self.maxFileBytes = min(maxFileBytes, maxBytes)
        self.maxFiles = maxFiles
    }

    /// Bytes of file content held in memory now (the athens_cache_bytes gauge).
    package var heldBytes: Int { lock.withLock { bytes } }
    /// Open storage files held now (the athens_cache_files gauge).
    package var heldFiles: Int { lock.withLock { files } }

    package func get(_ key: String) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    /// Drops a version's files (after an admin delete: stored files are immutable only until an operator removes them).
    /// Their keys stay in the FIFO order and are skipped when they come up (an eviction finds nothing).
    package func forget(module: String, version: String) {
        lock.withLock {
            for artifact in [".info", ".mod", ".zip"] {
                if let dropped = entries.removeValue(forKey: module + "@" + version + artifact) { account(dropped, -1) }
            }
        }
    }

    /// Drops every file (an instance that may have missed deletions made elsewhere: see Deletions).
    package func forgetAll() {
        lock.withLock {
            entries = [:]
            order = []
            head = 0
            bytes = 0
            files = 0
        }
    }

    package func put(_ key: String, _ value: [UInt8]) {
        guard value.count <= maxFileBytes, maxBytes > 0 else { return }
        insert(key, .bytes(value))
    }

    /// Keeps the storage's open file of `blob` (fd-shaped, at most `maxFileBytes`; other blobs are not kept).
    package func put(_ key: String, file blob: Blob) {
        guard case .file = blob.shape, blob.size <= UInt64(maxFileBytes), maxBytes > 0, maxFiles > 0 else { return }
        insert(key, .file(blob))
    }

    private func insert(_ key: String, _ entry: Entry) {
        lock.lock()
        defer { lock.unlock() }
        guard entries[key] == nil else { return }
        entries[key] = entry
        order.append(key)
        account(entry, 1)
        while bytes > maxBytes || files > maxFiles, head < order.count {
            if let evicted = entries.removeValue(forKey: order[head]) { account(evicted, -1) }
            head += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Adds (`sign` 1) or removes (-1) an entry's share of the bounds. Call holding the lock.
    private func account(_ entry: Entry, _ sign: Int) {
        switch entry {
        case let .bytes(value): bytes += sign * value.count
        case .file: files += sign
        }
    }
}
