// ModuleZip: the rules golang.org/x/mod/zip's CheckZip applies to a module zip, over its central directory.
import CZlib

/// Go's module zip rules (`golang.org/x/mod/zip`), applied to entries read by `ZipDirectory`.
public enum ModuleZip {
    /// The largest module zip, and the largest total uncompressed size of its files: 500 MiB (`zip.MaxZipFile`).
    public static let maxZipFile: UInt64 = 500 << 20
    /// The largest root `go.mod`: 16 MiB (`zip.MaxGoMod`).
    public static let maxGoMod: UInt64 = 16 << 20
    /// The largest root `LICENSE`: 16 MiB (`zip.MaxLICENSE`).
    public static let maxLICENSE: UInt64 = 16 << 20

    /// zip.CheckZip's rules: size, every entry under "<module>@<version>/", clean valid file paths, no case-fold collisions, go.mod only at root and lowercase, total uncompressed size and go.mod/LICENSE limits.
    ///
    /// Checks run in Go's order and fail with Go's messages: the version must be canonical, then
    /// `ModulePath.check` must pass, then `zipSize` must be within `maxZipFile`. Entries are then checked one by one;
    /// like `CheckedFiles.Err`, a total-size error wins, otherwise every invalid entry is reported as
    /// "<name>: <reason>", one per line (the first 10, then a count of the rest).
    ///
    /// One rule goes beyond `CheckZip`: a file compressed with a method other than stored (0) or deflate (8) is
    /// invalid, because the go command's `Unzip` could not extract it.
    public static func check(module: String, version: String, entries: [ZipEntry], zipSize: UInt64) throws(ZipError) {
        let canonical = ModulePath.canonicalVersion(version) ?? ""
        guard canonical == version else {
            throw ZipError(message: "version \(GoQuote.string(version)) is not canonical (should be \(GoQuote.string(canonical)))")
        }
        do {
            try ModulePath.check(path: module, version: version)
        } catch {
            throw ZipError(message: error.message)
        }
        guard zipSize <= maxZipFile else {
            throw ZipError(message: "module zip file is too large (\(zipSize) bytes; limit is \(maxZipFile) bytes)")
        }

        let prefix = "\(module)@\(version)/"
        var collisions = CollisionChecker()
        var invalid = InvalidFiles()
        var sizeError: String?
        var totalSize: UInt64 = 0
        for entry in entries {
            // Bytes, not Characters: Swift's String comparisons use canonical equivalence, Go's do not.
            guard entry.name.utf8.starts(with: prefix.utf8) else {
                invalid.add(entry, "path does not have prefix \(GoQuote.string(prefix))")
                continue
            }
            var name = Substring(entry.name.utf8.dropFirst(prefix.utf8.count))
            if name.isEmpty { continue }
            let isDirectory = name.utf8.last == UInt8(ascii: "/")
            if isDirectory { name = Substring(name.utf8.dropLast()) }
            guard isClean(name) else {
                invalid.add(entry, "file path is not clean")
                continue
            }
            do {
                try ModulePath.checkFilePath(String(name))
            } catch {
                invalid.add(entry, error.message)
                continue
            }
            if let collision = collisions.check(String(name), isDirectory: isDirectory) {
                invalid.add(entry, collision)
                continue
            }
            if isDirectory { continue }
            let base = name.utf8.lastIndex(of: UInt8(ascii: "/")).map { name[name.utf8.index(after: $0)...] } ?? name
            // strings.EqualFold(base, "go.mod"): no non-ASCII scalar folds to any of its letters.
            if asciiLowercased(base).utf8.elementsEqual("go.mod".utf8) {
                if base.utf8.count != name.utf8.count {
                    invalid.add(entry, "go.mod file not in module root directory")
                    continue
                }
                if !name.utf8.elementsEqual("go.mod".utf8) {
                    invalid.add(entry, "go.mod files must have lowercase names")
                    continue
                }
            }
            let size = entry.uncompressedSize
            if size <= maxZipFile - totalSize {
                totalSize += size
            } else if sizeError == nil {
                sizeError = "total uncompressed size of module contents too large (max size is \(maxZipFile) bytes)"
            }
            if name.utf8.elementsEqual("go.mod".utf8) && size > maxGoMod {
                invalid.add(entry, "go.mod file too large (max size is \(maxGoMod) bytes)")
                continue
            }
            if name.utf8.elementsEqual("LICENSE".utf8) && size > maxLICENSE {
                invalid.add(entry, "LICENSE file too large (max size is \(maxLICENSE) bytes)")
                continue
            }
            if entry.method != 0 && entry.method != 8 {
                invalid.add(entry, "unsupported compression method \(entry.method)")
                continue
            }
        }
        if let sizeError { throw ZipError(message: sizeError) }
        if let message = invalid.message { throw ZipError(message: message) }
    }

    /// Whether `entry` holds exactly `bytes` by its recorded size and CRC-32 (checked against the data by
    /// `ZipContents.verify`), without inflating it: an uploaded go.mod against the zip's own.
    public static func entry(_ entry: ZipEntry, holds bytes: [UInt8]) -> Bool {
        guard entry.uncompressedSize == UInt64(bytes.count) else { return false }
        let crc = bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        return UInt32(crc) == entry.crc32
    }

    /// The entry holding the root go.mod, if any.
    ///
    /// Only the exact name "<module>@<version>/go.mod" counts; run `check` first to be sure there is at most one.
    public static func goModEntry(module: String, version: String, entries: [ZipEntry]) -> ZipEntry? {
        let name = "\(module)@\(version)/go.mod"
        return entries.first { $0.name.utf8.elementsEqual(name.utf8) }
    }
}

// MARK: - Invalid file list

/// Go's `FileErrorList`, bounded: a hostile zip with a million bad names must not make a million-line message.
private struct InvalidFiles {
    static let shown = 10
    private var lines: [String] = []
    private var hidden = 0

    mutating func add(_ entry: ZipEntry, _ reason: String) {
        if lines.count < Self.shown {
            lines.append("\(entry.name): \(reason)")
        } else {
            hidden += 1
        }
    }

    var message: String? {
        if lines.isEmpty { return nil }
        let all = lines.joined(separator: "\n")
        return hidden == 0 ? all : all + "\n(and \(hidden) more invalid files)"
    }
}

// MARK: - Collisions

/// Go's `collisionChecker`: case-fold collisions, duplicate files, and names used both as file and directory,
/// checked for the path and every parent directory.
private struct CollisionChecker {
    // Keyed by bytes: a String key would merge canonically equivalent names ("é" vs "e\u{301}") that Go keeps apart.
    private var seen: [[UInt8]: (path: String, isDirectory: Bool)] = [:]

    /// The collision message for `path`, or nil after recording it and its parents.
    mutating func check(_ path: String, isDirectory: Bool) -> String? {
        var path = path
        var isDirectory = isDirectory
        // Iterative form of Go's recursion up the parents: check the path, then its parent as a directory.
        while true {
            let fold = Array(foldCase(path).utf8)
            if let other = seen[fold] {
                if !path.utf8.elementsEqual(other.path.utf8) {
                    return "case-insensitive file name collision: \(GoQuote.string(other.path)) and \(GoQuote.string(path))"
                }
                if isDirectory != other.isDirectory {
                    return "entry \(GoQuote.string(path)) is both a file and a directory"
                }
                if !isDirectory {
                    return "multiple entries for file \(GoQuote.string(path))"
                }
            } else {
                seen[fold] = (path, isDirectory)
            }
            guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
            let parent = String(path[..<slash])
            // path.Dir("/x") is "/", and Dir of "/" is "/" again: Go stops only at ".", so "/" is checked once more.
            if parent.isEmpty {
                path = "/"
            } else {
                path = parent
            }
            isDirectory = true
            if path == "/" {
                return checkRoot()
            }
        }
    }

    // Only reachable for absolute names, which ModulePath.checkFilePath rejects first; kept so the checker
    // never loops on "/" whatever its callers do.
    private mutating func checkRoot() -> String? {
        let root = Array("/".utf8)
        if let other = seen[root], !other.isDirectory {
            return "entry \"/\" is both a file and a directory"
        }
        seen[root] = ("/", true)
        return nil
    }
}

// MARK: - Case folding

/// Go's `strToFold`: every scalar replaced by the smallest member of its `unicode.SimpleFold` orbit
/// (as Go finds it: follow SimpleFold while it increases), then A–Z mapped to a–z.
///
/// `SimpleFold` is rebuilt from Go's `caseOrbit` table (the orbits that are more than a lower/upper pair) and,
/// elsewhere, the stdlib's case mappings taken only when they map to a single scalar (the lowercase mapping, else
/// the uppercase mapping, else the titlecase mapping, as Go's simple mappings do for Greek letters with
/// ypogegrammeni). It agrees with Go's for every scalar Go knows, except where the toolchain's Unicode
/// version is newer than Go's.
func foldCase(_ s: String) -> String {
    // Fast path, as in Go: all ASCII without upper case is already folded.
    if s.utf8.allSatisfy({ $0 < 0x80 && !(0x41...0x5A).contains($0) }) { return s }
    var result = String.UnicodeScalarView()
    for scalar in s.unicodeScalars {
        var r = scalar
        while true {
            let next = simpleFold(r)
            if next.value <= r.value {
                r = next
                break
            }
            r = next
        }
        if (0x41...0x5A).contains(r.value), let lower = Unicode.Scalar(r.value + 0x20) { r = lower }
        result.append(r)
    }
    return String(result)
}

/// Go's `unicode.SimpleFold`: the next scalar, cyclically upwards, equivalent to `r` under simple case folding.
private func simpleFold(_ r: Unicode.Scalar) -> Unicode.Scalar {
    if let next = caseOrbit[r.value], let scalar = Unicode.Scalar(next) { return scalar }
    if let lower = singleScalar(r.properties.lowercaseMapping), lower != r { return lower }
    if let upper = singleScalar(r.properties.uppercaseMapping), upper != r { return upper }
    if let title = singleScalar(r.properties.titlecaseMapping), title != r { return title }
    return r
}

private func singleScalar(_ s: String) -> Unicode.Scalar? {
    var scalars = s.unicodeScalars.makeIterator()
    guard let first = scalars.next(), scalars.next() == nil else { return nil }
    return first
}

/// Go's `caseOrbit` table (`unicode/tables.go`): SimpleFold for scalars whose fold orbit has more than two
/// members or is not their lower/upper pair.
private let caseOrbit: [UInt32: UInt32] = {
    let pairs: [(UInt32, UInt32)] = [
        (0x004B, 0x006B), (0x0053, 0x0073), (0x006B, 0x212A), (0x0073, 0x017F), (0x00B5, 0x039C), (0x00C5, 0x00E5),
        (0x00DF, 0x1E9E), (0x00E5, 0x212B), (0x0130, 0x0130), (0x0131, 0x0131), (0x017F, 0x0053), (0x01C4, 0x01C5),
        (0x01C5, 0x01C6), (0x01C6, 0x01C4), (0x01C7, 0x01C8), (0x01C8, 0x01C9), (0x01C9, 0x01C7), (0x01CA, 0x01CB),
        (0x01CB, 0x01CC), (0x01CC, 0x01CA), (0x01F1, 0x01F2), (0x01F2, 0x01F3), (0x01F3, 0x01F1), (0x0345, 0x0399),
        (0x0392, 0x03B2), (0x0395, 0x03B5), (0x0398, 0x03B8), (0x0399, 0x03B9), (0x039A, 0x03BA), (0x039C, 0x03BC),
        (0x03A0, 0x03C0), (0x03A1, 0x03C1), (0x03A3, 0x03C2), (0x03A6, 0x03C6), (0x03A9, 0x03C9), (0x03B2, 0x03D0),
        (0x03B5, 0x03F5), (0x03B8, 0x03D1), (0x03B9, 0x1FBE), (0x03BA, 0x03F0), (0x03BC, 0x00B5), (0x03C0, 0x03D6),
        (0x03C1, 0x03F1), (0x03C2, 0x03C3), (0x03C3, 0x03A3), (0x03C6, 0x03D5), (0x03C9, 0x2126), (0x03D0, 0x0392),
        (0x03D1, 0x03F4), (0x03D5, 0x03A6), (0x03D6, 0x03A0), (0x03F0, 0x039A), (0x03F1, 0x03A1), (0x03F4, 0x0398),
        (0x03F5, 0x0395), (0x0412, 0x0432), (0x0414, 0x0434), (0x041E, 0x043E), (0x0421, 0x0441), (0x0422, 0x0442),
        (0x042A, 0x044A), (0x0432, 0x1C80), (0x0434, 0x1C81), (0x043E, 0x1C82), (0x0441, 0x1C83), (0x0442, 0x1C84),
        (0x044A, 0x1C86), (0x0462, 0x0463), (0x0463, 0x1C87), (0x1C80, 0x0412), (0x1C81, 0x0414), (0x1C82, 0x041E),
        (0x1C83, 0x0421), (0x1C84, 0x1C85), (0x1C85, 0x0422), (0x1C86, 0x042A), (0x1C87, 0x0462), (0x1C88, 0xA64A),
        (0x1E60, 0x1E61), (0x1E61, 0x1E9B), (0x1E9B, 0x1E60), (0x1E9E, 0x00DF), (0x1FBE, 0x0345), (0x2126, 0x03A9),
        (0x212A, 0x004B), (0x212B, 0x00C5), (0xA64A, 0xA64B), (0xA64B, 0x1C88),
    ]
    return Dictionary(uniqueKeysWithValues: pairs)
}()

private func asciiLowercased(_ s: Substring) -> String {
    String(decoding: s.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
}

// MARK: - Paths

/// Whether Go's `path.Clean` would return `p` unchanged.
///
/// Works on bytes, as Go does: splitting Characters would miss a "/" followed by a combining mark.
private func isClean(_ p: Substring) -> Bool {
    let bytes = p.utf8
    if bytes.elementsEqual("/".utf8) || bytes.elementsEqual(".".utf8) { return true }
    if bytes.isEmpty { return false }
    let rooted = bytes.first == UInt8(ascii: "/")
    let body = rooted ? bytes.dropFirst() : bytes[...]
    // Clean keeps ".." only as a leading run of a relative path; it removes ".", empty elements and trailing "/".
    var inLeadingDotDots = !rooted
    for element in body.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
        if element.isEmpty || element.elementsEqual(".".utf8) { return false }
        if element.elementsEqual("..".utf8) {
            if !inLeadingDotDots { return false }
        } else {
            inLeadingDotDots = false
        }
    }
    return true
}
