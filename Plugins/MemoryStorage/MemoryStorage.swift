// MemoryStorage: keeps module versions in process memory. For tests and development: nothing survives
// a restart. Thread-safe; a save becomes visible all at once, and readers share the bytes without copying.
import Digests
import Basics
import PluginKit
import FoundationEssentials
import Glibc

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.storage(name: "MemoryStorage", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try config.finish() // no keys
        return MemoryStorage()
    }
}

/// The three files of one stored version.
private struct StoredVersion {
    let info: SharedBytes, infoCount: Int
    let mod: SharedBytes, modCount: Int
    let zip: SharedBytes, zipCount: Int
}

/// Catalog order: by module, then version, compared as bytes.
private struct CatalogKey: Comparable {
    let module: String
    let version: String
    static func < (a: CatalogKey, b: CatalogKey) -> Bool {
        a.module.utf8.lexicographicallyPrecedes(b.module.utf8)
            || (a.module == b.module && a.version.utf8.lexicographicallyPrecedes(b.version.utf8))
    }
}

/// Invariant: `sortedKeys` holds exactly the keys of `versions`, sorted.
final class MemoryStorage: StorageBackend, @unchecked Sendable {
    private let lock = PosixLock()
    private var versions: [String: [String: StoredVersion]] = [:]
    private var sortedKeys: [CatalogKey] = []

    func open(module: String, version: String, artifact: Artifact) throws(PluginFailure) -> BlobSource {
        guard let stored = lock.withLock({ versions[module]?[version] }) else {
            throw .notFound("\(module)@\(version)\(artifact.fileExtension): not stored")
        }
        switch artifact {
        case .info: return .memory(stored.info, count: stored.infoCount)
        case .mod: return .memory(stored.mod, count: stored.modCount)
        case .zip: return .memory(stored.zip, count: stored.zipCount)
        }
    }

    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zip: ByteReader) throws(PluginFailure) {
        if lock.withLock({ versions[module]?[version] != nil }) {
            throw .alreadyExists("\(module)@\(version): already stored")
        }
        // Read the whole zip before taking the lock: a reader never sees a partial version.
        guard zip.size <= UInt64(Int.max / 2) else { throw .invalid("\(module)@\(version): zip too large") }
        let count = Int(zip.size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        var filled = 0
        while filled < count {
            let n: Int
            do {
                n = try zip.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<count]))
            } catch {
                buffer.deallocate()
                throw error
            }
            if n == 0 { break }
            filled += n
        }
        var extra: UInt8 = 0
        let trailing = (try? withUnsafeMutableBytes(of: &extra) { try zip.read(into: $0) }) ?? 0
        guard filled == count, trailing == 0 else {
            buffer.deallocate()
            throw .invalid("\(module)@\(version): zip stream length differs from its declared size \(count)")
        }
        let stored = StoredVersion(info: SharedBytes(copying: info), infoCount: info.count,
                                   mod: SharedBytes(copying: mod), modCount: mod.count,
                                   zip: SharedBytes(adopting: buffer, count: max(count, 1)), zipCount: count)
        let inserted: Bool = lock.withLock {
            if versions[module]?[version] != nil { return false }
            versions[module, default: [:]][version] = stored
            let key = CatalogKey(module: module, version: version)
            sortedKeys.insert(key, at: insertionIndex(of: key))
            return true
        }
        if !inserted { throw .alreadyExists("\(module)@\(version): already stored") }
    }

    func exists(module: String, version: String) throws(PluginFailure) -> Bool {
        lock.withLock { versions[module]?[version] != nil }
    }

    func list(module: String) throws(PluginFailure) -> [String] {
        lock.withLock { versions[module].map { Array($0.keys) } ?? [] }
    }

    func remove(module: String, version: String) throws(PluginFailure) {
        let removed: Bool = lock.withLock {
            guard versions[module]?.removeValue(forKey: version) != nil else { return false }
            if versions[module]?.isEmpty == true { versions[module] = nil }
            let key = CatalogKey(module: module, version: version)
            let index = insertionIndex(of: key)
            if index < sortedKeys.count, sortedKeys[index] == key { sortedKeys.remove(at: index) }
            return true
        }
        if !removed { throw .notFound("\(module)@\(version): not stored") }
    }

    func catalog(token: String, pageSize: Int) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String) {
        // The token is the last key of the previous page, hex-encoded so its content stays opaque.
        var after: CatalogKey?
        if !token.isEmpty {
            guard let decoded = Self.decodeToken(token) else { throw .invalid("catalog: bad token") }
            after = decoded
        }
        return lock.withLock {
            var index = 0
            if let after {
                index = insertionIndex(of: after)
                if index < sortedKeys.count, sortedKeys[index] == after { index += 1 }
            }
            let end = min(index + pageSize, sortedKeys.count)
            let page = sortedKeys[index..<end].map { (module: $0.module, version: $0.version) }
            let next = end < sortedKeys.count ? Self.encodeToken(sortedKeys[end - 1]) : ""
            return (page, next)
        }
    }

    /// First index whose key is not less than `key`. Call with the lock held.
    private func insertionIndex(of key: CatalogKey) -> Int {
        var low = 0, high = sortedKeys.count
        while low < high {
            let mid = (low + high) / 2
            if sortedKeys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private static func encodeToken(_ key: CatalogKey) -> String {
        Hex.encode((key.module + "\n" + key.version).utf8)
    }

    private static func decodeToken(_ token: String) -> CatalogKey? {
        let hex = Array(token.utf8)
        guard hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let byte = UInt8(String(decoding: hex[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        return CatalogKey(module: String(parts[0]), version: String(parts[1]))
    }
}
