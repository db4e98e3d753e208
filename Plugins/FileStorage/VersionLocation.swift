// Where a module version lives under the root. The one place that turns caller input into path names, so the
// one place that guarantees no name can leave the root.
import GoModule
import PluginKit

/// The relative paths of one module version: `<escaped module>/@v/<escaped version>.info|.mod|.zip`.
///
/// Invariant: `directory` is made of non-empty elements that never are "." or "..", never start with "." and
/// hold no NUL; `escapedVersion` is one such element too. So every path built here stays below the root, and
/// never collides with FileStorage's own hidden names (`.tmp`, `.lock`, an older version's `.tmp-…`).
struct VersionLocation {
    /// The longest relative path of a version (without its extension) FileStorage stores: catalog tokens carry
    /// one, base64-encoded, in at most ATH_CATALOG_TOKEN_CAPACITY - 1 characters. (Far below PATH_MAX, 4096.)
    static let maxRelativePath = 750
    /// The longest escaped path element FileStorage stores: NAME_MAX (255) less the longest extension, ".info".
    static let maxElement = 250

    /// The decoded module path, as the caller gave it.
    let module: String
    /// The decoded version, as the caller gave it.
    let version: String
    /// `<escaped module>/@v`.
    let directory: String
    /// The version's file name without extension.
    let escapedVersion: String

    /// Validates and escapes; throws `.invalid` for anything that is not a module path and a version Go accepts,
    /// or that would not make safe file names, and `.notFound` for names valid but beyond `maxElement` or
    /// `maxRelativePath` (the storage cannot hold them, so it holds none).
    init(module: String, version: String) throws(PluginFailure) {
        self.module = module
        self.version = version
        let escapedModule: String
        do {
            escapedModule = try ModulePath.escapePath(module)
            escapedVersion = try ModulePath.escapeVersion(version)
        } catch {
            throw .invalid("\(module)@\(version): \(error.message)")
        }
        // Go's rules already exclude all of this; checked again here because a path outside the root must be
        // impossible whatever the rules library says.
        guard Self.isSafeRelativePath(escapedModule), Self.isSafeElement(escapedVersion) else {
            throw .invalid("\(module)@\(version): not usable as a file name")
        }
        directory = escapedModule + "/@v"
        // Valid for the go command but beyond what this layout can hold: not stored, so never found (404, and
        // GOPROXY falls through), rather than a file-system error reported as an outage. The limit comes first
        // in the message because the module path may be long enough to be cut off.
        let longest = escapedModule.utf8.split(separator: UInt8(ascii: "/")).map(\.count).max() ?? 0
        if max(longest, escapedVersion.utf8.count) > Self.maxElement {
            throw .notFound("not stored: FileStorage holds no escaped path element over \(Self.maxElement) bytes "
                + "(NAME_MAX 255 less \".info\"), this one has \(max(longest, escapedVersion.utf8.count)): \(module)@\(version)")
        }
        let length = directory.utf8.count + 1 + escapedVersion.utf8.count
        if length > Self.maxRelativePath {
            throw .notFound("not stored: FileStorage holds no escaped path over \(Self.maxRelativePath) bytes "
                + "(a catalog token must carry it), this one has \(length): \(module)@\(version)")
        }
    }

    /// `<escaped module>/@v/<escaped version><fileExtension>`.
    func file(_ fileExtension: String) -> String { directory + "/" + escapedVersion + fileExtension }

    /// `module@version`, for messages.
    var description: String { module + "@" + version }

    /// One path element FileStorage may create: not empty, not hidden (so neither "." nor ".."), no "/" or NUL.
    /// (Length is a limit of the layout, checked in `init`, not a matter of safety.)
    static func isSafeElement(_ element: some StringProtocol) -> Bool {
        let bytes = element.utf8
        guard let first = bytes.first, first != UInt8(ascii: ".") else { return false }
        return !bytes.contains(0) && !bytes.contains(UInt8(ascii: "/"))
    }

    /// Safe elements joined by single slashes, with no leading or trailing slash.
    static func isSafeRelativePath(_ path: String) -> Bool {
        let elements = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        return !elements.isEmpty && elements.allSatisfy { element in
            isSafeElement(String(decoding: element, as: UTF8.self)) && !element.elementsEqual("@v".utf8)
        }
    }
}
