// Catalog paging. The order is that of a depth-first walk with each directory's entries sorted bytewise, i.e.
// relative paths compared element by element ("@v" is just one more entry, so example.com/a's versions and the
// nested module example.com/a/b sort by "@v" < "b"). The token is the last path returned, base64url-encoded
// behind a version tag; the next page walks only the directories on that path and the subtrees after it.
import GoModule
import Glibc
import PluginKit

extension FileStorage {
    /// Prefix of every token FileStorage issues.
    static let tokenTag = "fs1."

    func catalog(token: String, pageSize: Int) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String) {
        var after: [String] = []
        if !token.isEmpty {
            guard let path = Self.decodeToken(token) else { throw .invalid("catalog: not a token this storage issued") }
            after = path
        }
        guard let root = openDirectory(rootFD, ".") else { throw failure("catalog: open root \(rootPath)", errno) }
        // One entry beyond the page tells whether another page follows.
        var walk = CatalogWalk(limit: pageSize + 1)
        try walk.visit(root, elements: [], after: after[...])
        let page = Array(walk.found.prefix(pageSize))
        let next = walk.found.count > pageSize ? Self.encodeToken(page[page.count - 1].path) : ""
        return (page.map { (module: $0.module, version: $0.version) }, next)
    }

    /// "fs1." + base64url(path), where path is e.g. "example.com/!foo/@v/v1.0.0".
    static func encodeToken(_ path: String) -> String {
        tokenTag + Base64URL.encode(Array(path.utf8))
    }

    /// The path elements a token stands for, or nil if FileStorage could not have issued it.
    static func decodeToken(_ token: String) -> [String]? {
        guard token.hasPrefix(tokenTag), let bytes = Base64URL.decode(token.dropFirst(tokenTag.count)),
              bytes.count <= VersionLocation.maxRelativePath else { return nil }
        let path = String(decoding: bytes, as: UTF8.self)
        guard Array(path.utf8) == bytes else { return nil } // not UTF-8
        let elements = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard elements.count >= 3, elements[elements.count - 2] == "@v",
              VersionLocation.isSafeRelativePath(elements.dropLast(2).joined(separator: "/")),
              VersionLocation.isSafeElement(elements[elements.count - 1]) else { return nil }
        return elements
    }
}

/// One catalog walk: collects up to `limit` versions strictly after a path, in catalog order.
private struct CatalogWalk {
    struct Found {
        var module: String
        var version: String
        /// Relative path without extension, the token's content.
        var path: String
    }

    let limit: Int
    var found: [Found] = []

    init(limit: Int) { self.limit = limit }

    /// Visits `directory` (reached by `elements`); `after` is the rest of the resume path below it, empty when
    /// the whole directory comes after the token.
    mutating func visit(_ directory: Descriptor, elements: [String], after: ArraySlice<String>) throws(PluginFailure) {
        guard let entries = readDirectory(directory.fd) else {
            throw failure("catalog: read \(elements.joined(separator: "/"))", errno)
        }
        let names = entries.filter { $0.mayBeDirectory && !$0.name.hasPrefix(".") }.map(\.name).sorted(by: bytewiseLess)
        // Skip whatever sorts before the resume element; resume inside it if it is there.
        var start = names.startIndex
        if let first = after.first {
            start = names.partitioningIndex { !bytewiseLess($0, first) }
        }
        for name in names[start...] {
            let inner = name == after.first ? after.dropFirst() : []
            let resumesHere = name == after.first
            if name == "@v" {
                // A resume path that ends at "@v" itself (never issued) means: everything in it comes after.
                try visitVersions(directory, elements: elements, after: resumesHere ? inner.first : nil)
            } else if let child = openDirectory(directory.fd, name) {
                try visit(child, elements: elements + [name], after: inner)
            }
            if found.count >= limit { return }
        }
    }

    /// Collects the committed versions of the module at `elements`, in byte order, after the escaped version `after`.
    private mutating func visitVersions(_ parent: Descriptor, elements: [String], after: String?) throws(PluginFailure) {
        // example.com/@v cannot be a module; a stray "@v" at the root has no module path at all.
        guard !elements.isEmpty, let module = try? ModulePath.unescapePath(elements.joined(separator: "/")),
              let directory = openDirectory(parent.fd, "@v") else { return }
        guard let entries = readDirectory(directory.fd) else {
            throw failure("catalog: read \(elements.joined(separator: "/"))/@v", errno)
        }
        var escaped = entries.filter { $0.isRegularFile(in: directory.fd) }
            .compactMap { FileStorage.committedVersionName($0.name) }.sorted(by: bytewiseLess)
        if let after { escaped = escaped.filter { bytewiseLess(after, $0) } }
        let prefix = elements.joined(separator: "/") + "/@v/"
        for name in escaped {
            guard let version = try? ModulePath.unescapeVersion(name) else { continue }
            let path = prefix + name
            // A path too long for a token cannot have been saved through this storage; skip it rather than
            // issue a token the host cannot hold.
            guard path.utf8.count <= VersionLocation.maxRelativePath else { continue }
            found.append(Found(module: module, version: version, path: path))
            if found.count >= limit { return }
        }
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, which must be false then true along the array.
    fileprivate func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if predicate(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

/// base64url without padding (RFC 4648 §5): tokens stay printable and free of "/".
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i]), b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            let chars = min(4, bytes.count - i + 1)
            for k in 0..<chars { out.append(alphabet[Int(group >> (18 - 6 * UInt32(k)) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        var values: [UInt32] = []
        for byte in text.utf8 {
            guard let index = alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt32(index))
        }
        // A final group of 1 character cannot encode a byte.
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let n = min(4, values.count - i)
            var group: UInt32 = 0
            for k in 0..<4 { group = group << 6 | (k < n ? values[i + k] : 0) }
            for k in 0..<(n - 1) { out.append(UInt8(truncatingIfNeeded: group >> (16 - 8 * UInt32(k)))) }
            i += 4
        }
        // Canonical encoding only, so one path has exactly one token.
        guard encode(out) == String(text) else { return nil }
        return out
    }
}
