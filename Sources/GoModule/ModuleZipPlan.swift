// ModuleZipPlan: which files of a source tree go into a module zip (golang.org/x/mod/zip checkFiles), decided
// from names and file kinds alone, so that a fetcher can stream the contents afterwards.

/// Go's rules for building a module zip from a list of files (`zip.Create`'s `checkFiles`): vendored packages,
/// nested modules, `.hg_archival.txt`, symlinks and other irregular files are omitted; unclean or malformed
/// names, upper-case root `go.mod` names and case-fold collisions are errors. Sizes are checked while streaming
/// (`ModuleZipPlan.SizeBudget`).
public enum ModuleZipPlan {
    /// What a file in the tree is.
    public enum Kind: Sendable {
        /// A regular file: it goes into the zip.
        case regular
        /// A symbolic link: omitted, but its name still counts for collisions.
        case symlink
        /// Anything else git can hold (a submodule): omitted.
        case other
    }

    /// The files of `files` (paths relative to the module root, `/`-separated) that belong in the zip, in the
    /// given order. `goVersion` is the root go.mod's `go` line: from 1.24 on, vendor/modules.txt is omitted and
    /// nested vendor directories are measured correctly (earlier lines keep the old rule, golang.org/issue/37397).
    /// - Throws: Go's `Create` message: one "<path>: <reason>" line per invalid file (the first 10).
    public static func plan(files: [(path: String, kind: Kind)], goVersion: String?) throws(ZipError) -> [String] {
        let modern = GoModFile.goVersion(goVersion, atLeast: "1.24")
        var haveGoMod = Set<String>()
        for file in files where file.kind == .regular {
            let (dir, base) = split(file.path)
            if asciiLower(base) == "go.mod" { haveGoMod.insert(dir) }
        }
        func inSubmodule(_ path: String) -> Bool {
            var p = Substring(path)
            while let slash = p.utf8.lastIndex(of: UInt8(ascii: "/")) {
                let dir = p[..<slash]
                if haveGoMod.contains(String(dir) + "/") { return true }
                p = dir
            }
            return false
        }
        var collisions = FoldCollisions()
        var valid: [String] = []
        var invalid: [String] = []
        var reported = Set<String>()
        func reject(_ path: String, _ reason: String) {
            if reported.insert(path).inserted { invalid.append("\(path): \(reason)") }
        }
        for file in files {
            let p = file.path
            // Go checks path.Clean first, which keeps a leading "/"; then that the path is relative.
            if !isClean(p.hasPrefix("/") ? String(p.dropFirst()) : p) {
                reject(p, "file path is not clean")
                continue
            }
            if p.hasPrefix("/") {
                reject(p, "file path is not relative")
                continue
            }
            if isVendoredPackage(p, modern: modern) || inSubmodule(p) || p == ".hg_archival.txt" { continue }
            do {
                try ModulePath.checkFilePath(p)
            } catch {
                reject(p, error.message)
                continue
            }
            if asciiLower(Substring(p)) == "go.mod" && p != "go.mod" {
                reject(p, "go.mod files must have lowercase names")
                continue
            }
            if let collision = collisions.check(p) {
                reject(p, collision)
                continue
            }
            guard file.kind == .regular else { continue }
            valid.append(p)
        }
        if !invalid.isEmpty {
            let shown = invalid.prefix(10).joined(separator: "\n")
            throw ZipError(message: invalid.count > 10 ? shown + "\n(and \(invalid.count - 10) more invalid files)" : shown)
        }
        return valid
    }

    /// The size limits `Create` applies to valid files, checked as their sizes become known.
    public struct SizeBudget: Sendable {
        private var left = ModuleZip.maxZipFile

        /// A fresh budget of `ModuleZip.maxZipFile` bytes.
        public init() {}

        /// Counts a file of `size` bytes named `path`.
        /// - Throws: "module source tree too large", "go.mod file too large" or "LICENSE file too large".
        public mutating func add(path: String, size: UInt64) throws(ZipError) {
            guard size <= left else {
                throw ZipError(message: "module source tree too large (max size is \(ModuleZip.maxZipFile) bytes)")
            }
            left -= size
            if path == "go.mod" && size > ModuleZip.maxGoMod {
                throw ZipError(message: "go.mod: go.mod file too large (max size is \(ModuleZip.maxGoMod) bytes)")
            }
            if path == "LICENSE" && size > ModuleZip.maxLICENSE {
                throw ZipError(message: "LICENSE: LICENSE file too large (max size is \(ModuleZip.maxLICENSE) bytes)")
            }
        }
    }

    /// zip.isVendoredPackage: files in a subdirectory of a vendor directory (see `plan` for the two rules).
    static func isVendoredPackage(_ name: String, modern: Bool) -> Bool {
        if modern && name == "vendor/modules.txt" { return true }
        let bytes = Array(name.utf8)
        var start: Int
        if name.hasPrefix("vendor/") {
            start = 7
        } else if let range = findSubsequence(bytes, Array("/vendor/".utf8)) {
            // Before 1.24 the offset was measured from the start of the name (golang.org/issue/37397).
            start = modern ? range + 8 : 8
        } else {
            return false
        }
        return start <= bytes.count && bytes[start...].contains(UInt8(ascii: "/"))
    }

    private static func findSubsequence(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }

    /// path.Split: ("a/b/", "c") for "a/b/c", ("", "c") for "c".
    private static func split(_ path: String) -> (String, Substring) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ("", Substring(path)) }
        let after = path.utf8.index(after: slash)
        return (String(path[..<after]), path[after...])
    }

    private static func asciiLower(_ s: Substring) -> String {
        String(decoding: s.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// Whether path.Clean leaves `p` unchanged (for relative, non-empty paths).
    private static func isClean(_ p: String) -> Bool {
        if p.isEmpty { return false }
        for element in p.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if element.isEmpty || element.elementsEqual(".".utf8) || element.elementsEqual("..".utf8) { return false }
        }
        return true
    }
}

/// zip's collisionChecker for files: case-fold collisions and names used both as a file and a directory,
/// for the path and each of its parents.
struct FoldCollisions {
    private var seen: [[UInt8]: (path: String, isDirectory: Bool)] = [:]

    mutating func check(_ file: String) -> String? {
        var path = file
        var isDirectory = false
        while true {
            let fold = Array(foldCase(path).utf8)
            if let other = seen[fold] {
                if !path.utf8.elementsEqual(other.path.utf8) {
                    return "case-insensitive file name collision: \(GoQuote.string(other.path)) and \(GoQuote.string(path))"
                }
                if isDirectory != other.isDirectory { return "entry \(GoQuote.string(path)) is both a file and a directory" }
                if !isDirectory { return "multiple entries for file \(GoQuote.string(path))" }
                // A directory already recorded: its parents were recorded with it.
                return nil
            }
            seen[fold] = (path, isDirectory)
            guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
            path = String(path[..<slash])
            isDirectory = true
        }
    }
}
