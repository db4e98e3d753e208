// Where module versions live in the bucket: a GOPROXY tree under the prefix, so the bucket itself can be served
// as a GOPROXY by a static host or CDN (like FileStorage's folder).
import Basics
import FoundationEssentials
import Glibc
import GoModule

/// The keys of one module version: `<prefix><escaped module>/@v/<escaped version>.info|.mod|.zip`.
public struct VersionKeys: Sendable, Equatable {
    /// `module@version`, for messages.
    public let description: String
    /// `<prefix><escaped module>/@v/`: what `list` lists.
    public let directory: String
    public let info: String
    public let mod: String
    public let zip: String
    /// `<escaped version>.lock`: held by the one saver writing the version (not part of the GOPROXY protocol).
    public let lock: String
}

/// Turns module paths and versions into object keys and back. The one place S3Storage builds keys.
public struct S3Layout: Sendable {
    /// Longest key below the prefix: the catalog token carries one, base64url-encoded, within
    /// ATH_CATALOG_TOKEN_CAPACITY; S3 itself allows 1024 bytes including the prefix.
    public static let maxRelativeKey = 700

    /// "" or "elements/ending/in/": every key starts with it.
    public let prefix: String

    /// `prefix` as configured: slashes at either end are ignored; empty elements, "." and ".." are refused.
    public init(prefix configured: String) throws(LayoutError) {
        let trimmed = configured.split(separator: "/", omittingEmptySubsequences: false)
        var elements = trimmed[...]
        while elements.first == "" { elements = elements.dropFirst() }
        while elements.last == "" { elements = elements.dropLast() }
        for element in elements where element.isEmpty || element == "." || element == ".." || element.contains("\0") {
            throw LayoutError(message: "prefix \(configured.debugDescription): empty, \".\" or \"..\" element")
        }
        prefix = elements.isEmpty ? "" : elements.joined(separator: "/") + "/"
        guard prefix.utf8.count <= 1024 - Self.maxRelativeKey else {
            throw LayoutError(message: "prefix longer than \(1024 - Self.maxRelativeKey) bytes")
        }
    }

    /// `<prefix><escaped module>/@v/`.
    public func directory(module: String) throws(LayoutError) -> String {
        do {
            return prefix + (try ModulePath.escapePath(module)) + "/@v/"
        } catch {
            throw LayoutError(message: "\(module): \(error.message)")
        }
    }

    /// The three keys of `module@version`.
    public func keys(module: String, version: String) throws(LayoutError) -> VersionKeys {
        let what = module + "@" + version
        let escapedVersion: String
        let directory: String
        do {
            directory = prefix + (try ModulePath.escapePath(module)) + "/@v/"
            escapedVersion = try ModulePath.escapeVersion(version)
        } catch {
            throw LayoutError(message: "\(what): \(error.message)")
        }
        let base = directory + escapedVersion
        guard base.utf8.count - prefix.utf8.count + ".info".utf8.count <= Self.maxRelativeKey else {
            throw LayoutError(message: "\(what): key longer than \(Self.maxRelativeKey) bytes")
        }
        return VersionKeys(description: what, directory: directory, info: base + ".info", mod: base + ".mod", zip: base + ".zip",
                           lock: base + ".lock")
    }

    /// The version a key in `directory` commits (`<escaped version>.info` directly in it), else nil.
    public func version(ofInfoKey key: String, in directory: String) -> String? {
        guard key.hasPrefix(directory), key.hasSuffix(".info") else { return nil }
        let name = key.dropFirst(directory.count).dropLast(5)
        guard !name.isEmpty, !name.contains("/") else { return nil }
        return try? ModulePath.unescapeVersion(String(name))
    }

    /// The module version whose commit marker is `key`, for any key of the tree; nil for anything else.
    public func moduleVersion(ofInfoKey key: String) -> (module: String, version: String)? {
        guard key.hasPrefix(prefix), key.hasSuffix(".info") else { return nil }
        let relative = String(key.dropFirst(prefix.count))
        guard let marker = relative.lastByteRange(of: "/@v/") else { return nil }
        let escapedModule = String(relative[..<marker.lowerBound])
        let name = String(relative[marker.upperBound...].dropLast(5))
        guard !name.isEmpty, !name.contains("/"),
              let module = try? ModulePath.unescapePath(escapedModule),
              let version = try? ModulePath.unescapeVersion(name) else { return nil }
        return (module, version)
    }
}

/// A prefix, module path or version that makes no key.
public struct LayoutError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
