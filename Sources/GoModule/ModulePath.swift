// Module paths, import paths, file paths and their case encoding: golang.org/x/mod/module.

/// Go's rules for module paths and versions (`golang.org/x/mod/module`): validity, the major-version
/// suffix, the `!`-for-uppercase encoding used in proxy URLs and cache paths, and GOPRIVATE-style patterns.
///
/// Every check works on the UTF-8 bytes, never on Swift's `Character` or `==` (which treat canonically
/// equivalent text, such as the Kelvin sign and `K`, as equal); an error's message is the go command's.
public enum ModulePath {
    /// Checks that `path` is a valid module path (`module.CheckPath`): a valid import path whose first
    /// element is a lower-case dotted domain name, with no element starting with a dot and a well-formed
    /// `/vN` (or gopkg.in `.vN`) suffix.
    /// - Throws: `malformed module path "…": <reason>`.
    public static func check(_ path: String) throws(ModuleError) {
        if let reason = modulePathProblem(Array(path.utf8)) {
            throw ModuleError("malformed module path \(GoQuote.string(path)): \(reason)")
        }
    }

    /// Checks that `path` is a valid package import path (`module.CheckImportPath`).
    /// - Throws: `malformed import path "…": <reason>`.
    public static func checkImportPath(_ path: String) throws(ModuleError) {
        if let reason = pathProblem(Array(path.utf8), kind: .importPath) {
            throw ModuleError("malformed import path \(GoQuote.string(path)): \(reason)")
        }
    }

    /// Checks that `path` is a valid slash-separated file path inside a module (`module.CheckFilePath`):
    /// like an import path, but Unicode letters, spaces and `!#$%&()+,-.=@[]^_{}~` are allowed, and so are
    /// a leading dash and names that look like Windows short names (`longna~1`).
    /// - Throws: `malformed file path "…": <reason>`.
    public static func checkFilePath(_ path: String) throws(ModuleError) {
        if let reason = pathProblem(Array(path.utf8), kind: .filePath) {
            throw ModuleError("malformed file path \(GoQuote.string(path)): \(reason)")
        }
    }

    /// Checks that `path` is a valid module path, `version` a valid semantic version, and that the two
    /// agree on the major version (`module.Check`): `example.com/m/v2` needs `v2.x.y`, a path without a
    /// suffix needs v0, v1 or a `+incompatible` version.
    ///
    /// Like Go, this does not require `version` to be canonical (`v1.2` passes); compare it with
    /// `canonicalVersion(_:)` where only canonical versions may appear.
    /// - Throws: the `check(_:)` error, or `<path>@<version>: invalid version: <reason>`.
    public static func check(path: String, version: String) throws(ModuleError) {
        try check(path)
        guard SemVer.isValid(version) else {
            throw ModuleError("\(path)@\(version): invalid version: not a semantic version")
        }
        let pathMajor = splitPathVersion(path)?.pathMajor ?? ""
        if let reason = pathMajorMismatch(version: version, pathMajor: pathMajor) {
            throw ModuleError("\(path)@\(version): invalid version: \(reason)")
        }
    }

    /// Whether `version` is canonical *for `path`*: canonical, and its major version fits the path (`check(path:version:)`).
    /// Only such versions are stored and have a `.mod` and `.zip`. Any other `.info` name is a query, even a
    /// canonical one: `v3.2.0` of a path without `/v3` may resolve to `v3.2.0+incompatible`, as the go command's
    /// proxy client allows (it insists on the requested version only when `module.Check` passes).
    public static func isCanonical(path: String, version: String) -> Bool {
        guard canonicalVersion(version) == version else { return false }
        return (try? check(path: path, version: version)) != nil
    }

    /// Splits `path` into a prefix and its major-version suffix (`module.SplitPathVersion`), so that
    /// `prefix + pathMajor == path`: `"/vN"` for N ≥ 2, `".vN"` (or `".vN-unstable"`) for gopkg.in paths,
    /// `""` if there is none. `nil` if the last element is a malformed suffix such as `/v1`, `/v0`, `/v2.0`.
    public static func splitPathVersion(_ path: String) -> (prefix: String, pathMajor: String)? {
        let bytes = Array(path.utf8)
        guard let split = splitIndex(bytes) else { return nil }
        if split == bytes.count { return (path, "") }
        return (text(bytes[..<split]), text(bytes[split...]))
    }

    /// Checks that the semantic version `version` fits the path suffix `pathMajor` (`module.CheckPathMajor`).
    /// - Throws: `version "…" invalid: should be v0 or v1, not v2` and the like.
    public static func checkPathMajor(version: String, pathMajor: String) throws(ModuleError) {
        if let reason = pathMajorMismatch(version: version, pathMajor: pathMajor) {
            throw ModuleError("version \(GoQuote.string(version)) invalid: \(reason)")
        }
    }

    /// The canonical form of `v` (`module.CanonicalVersion`): `SemVer.canonical(_:)`, but a
    /// `+incompatible` build suffix is kept. `nil` if `v` is not a valid semantic version.
    public static func canonicalVersion(_ v: String) -> String? {
        guard let parsed = ParsedVersion(v) else { return nil }
        let canonical = parsed.canonical
        if parsed.bytes[parsed.build].elementsEqual("+incompatible".utf8) {
            return canonical + "+incompatible"
        }
        return canonical
    }

    /// The case-encoded form of a module path (`module.EscapePath`): each upper-case letter becomes `!`
    /// and its lower-case letter, e.g. `github.com/!burnt!sushi/toml`.
    /// - Throws: the `check(_:)` error if `path` is not a valid module path.
    public static func escapePath(_ path: String) throws(ModuleError) -> String {
        try check(path)
        return try escape(path)
    }

    /// The module path that `escaped` encodes (`module.UnescapePath`).
    /// - Throws: `invalid escaped module path "…"` for an upper-case letter, non-ASCII, a trailing `!` or `!`
    ///   before anything but `a`–`z`; with `: <check(_:) error>` appended if the decoded path is invalid.
    public static func unescapePath(_ escaped: String) throws(ModuleError) -> String {
        guard let path = unescape(escaped) else {
            throw ModuleError("invalid escaped module path \(GoQuote.string(escaped))")
        }
        do {
            try check(path)
        } catch {
            throw ModuleError("invalid escaped module path \(GoQuote.string(escaped)): \(error.message)")
        }
        return path
    }

    /// The case-encoded form of a version (`module.EscapeVersion`). Versions need not be semantic versions
    /// (a branch or commit prefix is one path element) but must be valid file names without `!`.
    /// - Throws: `version "…" invalid: disallowed version string`.
    public static func escapeVersion(_ v: String) throws(ModuleError) -> String {
        let bytes = Array(v.utf8)
        if elementProblem(bytes[...], kind: .filePath) != nil || bytes.contains(bang) {
            throw ModuleError("version \(GoQuote.string(v)) invalid: disallowed version string")
        }
        return try escape(v)
    }

    /// The version that `escaped` encodes (`module.UnescapeVersion`).
    /// - Throws: `invalid escaped version "…"` for a bad encoding, or `invalid escaped version "<decoded>": <reason>`
    ///   if the decoded version is not a valid file name.
    public static func unescapeVersion(_ escaped: String) throws(ModuleError) -> String {
        guard let v = unescape(escaped) else {
            throw ModuleError("invalid escaped version \(GoQuote.string(escaped))")
        }
        if let reason = elementProblem(Array(v.utf8)[...], kind: .filePath) {
            throw ModuleError("invalid escaped version \(GoQuote.string(v)): \(reason)")
        }
        return v
    }

    /// Whether some path prefix of `target` matches one of the comma-separated `path.Match` globs in
    /// `globs` (`module.MatchPrefixPatterns`), as GOPRIVATE, GONOPROXY and GONOSUMDB are matched:
    /// a glob of N elements is matched against the first N elements of `target`. Empty and malformed
    /// globs are ignored; one trailing slash on a glob is ignored.
    public static func matchPrefixPatterns(_ globs: String, _ target: String) -> Bool {
        var globs = globs
        var target = target
        // Borrowed buffers: slicing them costs no reference counting, which dominated the glob matcher.
        return globs.withUTF8 { globBytes in
            target.withUTF8 { targetBytes in matchPrefixPatterns(globs: globBytes[...], target: targetBytes[...]) }
        }
    }

    /// Whether `glob` (one glob, no commas) is well formed `path.Match` syntax: `matchPrefixPatterns` silently
    /// ignores a malformed one, so configuration checks it first.
    public static func isWellFormedPattern(_ glob: String) -> Bool {
        var glob = glob
        var probe = "x"
        return glob.withUTF8 { pattern in probe.withUTF8 { name in (try? PathGlob.match(pattern: pattern[...], name: name[...])) != nil } }
    }

    private static func matchPrefixPatterns(globs: PathGlob.Bytes, target: PathGlob.Bytes) -> Bool {
        var globStart = globs.startIndex
        while globStart < globs.endIndex {
            let globEnd = globs[globStart...].firstIndex(of: UInt8(ascii: ",")) ?? globs.endIndex
            var glob = globs[globStart..<globEnd]
            globStart = globEnd + 1
            if glob.last == slash { glob = glob.dropLast() }
            if glob.isEmpty { continue }
            // A glob with N slashes is matched against target up to (not including) its N+1'th slash.
            var slashesLeft = glob.reduce(0) { $1 == slash ? $0 + 1 : $0 }
            var prefixEnd = target.endIndex
            for i in target.indices where target[i] == slash {
                if slashesLeft == 0 {
                    prefixEnd = i
                    break
                }
                slashesLeft -= 1
            }
            if slashesLeft > 0 { continue }
            if (try? PathGlob.match(pattern: glob, name: target[..<prefixEnd])) == true { return true }
        }
        return false
    }
}

// MARK: - Path checks

extension ModulePath {
    /// Which rule set `pathProblem` applies (module.pathKind).
    enum PathKind {
        case modulePath, importPath, filePath
    }

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")
    static let bang = UInt8(ascii: "!")
    private static let tilde = UInt8(ascii: "~")

    /// Reserved file names on Windows, which no element may use up to its first dot, in any case.
    private static let badWindowsNames: [[UInt8]] = [
        "CON", "PRN", "AUX", "NUL",
        "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ].map { Array($0.utf8) }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    static func isLower(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
    }

    static func isUpper(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
    }

    /// Why `path` is not a module path (CheckPath without its prefix), or `nil` if it is one.
    static func modulePathProblem(_ path: [UInt8]) -> String? {
        if let reason = pathProblem(path, kind: .modulePath) { return reason }
        let firstEnd = path.firstIndex(of: slash) ?? path.count
        // The next two cannot fire after pathProblem; they stay so the order of checks is Go's.
        if firstEnd == 0 { return "leading slash" }
        let first = path[..<firstEnd]
        if !first.contains(dot) { return "missing dot in first path element" }
        if path[0] == UInt8(ascii: "-") { return "leading dash in first path element" }
        var i = first.startIndex
        while i < first.endIndex {
            let (value, length) = GoUTF8.decode(first, at: i)
            let byte = first[i]
            let ok = length == 1 && (byte == UInt8(ascii: "-") || byte == dot || isDigit(byte) || isLower(byte))
            if !ok {
                return "invalid char \(quoteRune(value)) in first path element"
            }
            i += length
        }
        if splitIndex(path) == nil { return "invalid version" }
        return nil
    }

    /// Why `path` breaks the rules common to module, import and file paths (module.checkPath), or `nil`.
    static func pathProblem(_ path: [UInt8], kind: PathKind) -> String? {
        // A Swift String is always valid UTF-8, so Go's "invalid UTF-8" cannot arise here: bytes that were
        // not UTF-8 reach us as U+FFFD, which no kind of path allows.
        guard let first = path.first else { return "empty string" }
        if first == UInt8(ascii: "-") && kind != .filePath { return "leading dash" }
        for i in path.indices.dropFirst() where path[i] == slash && path[i - 1] == slash {
            return "double slash"
        }
        if path.last == slash { return "trailing slash" }
        var elementStart = 0
        for i in path.indices where path[i] == slash {
            if let reason = elementProblem(path[elementStart..<i], kind: kind) { return reason }
            elementStart = i + 1
        }
        return elementProblem(path[elementStart...], kind: kind)
    }

    /// Why one path element is not allowed (module.checkElem), or `nil`.
    static func elementProblem(_ element: ArraySlice<UInt8>, kind: PathKind) -> String? {
        guard let first = element.first, let last = element.last else { return "empty path element" }
        if element.allSatisfy({ $0 == dot }) {
            return "invalid path element \(GoQuote.string(text(element)))"
        }
        if first == dot && kind == .modulePath { return "leading dot in path element" }
        if last == dot { return "trailing dot in path element" }
        var i = element.startIndex
        while i < element.endIndex {
            let byte = element[i]
            if byte < 0x80 {
                if !isAllowedASCII(byte, kind: kind) { return "invalid char \(quoteRune(UInt32(byte)))" }
                i += 1
                continue
            }
            let (value, length) = GoUTF8.decode(element, at: i)
            if !isAllowedNonASCII(value, kind: kind) { return "invalid char \(quoteRune(value))" }
            i += length
        }

        // Windows disallows these names, with or without an extension, so no element may use them.
        let short = element.prefix { $0 != dot }
        for bad in badWindowsNames where equalFoldASCII(short, bad) {
            return "\(GoQuote.string(text(short))) disallowed as path element component on Windows"
        }
        // Short names (`LONGNA~1`) matter for import paths only, not for file names.
        if kind == .filePath { return nil }
        if let tildeIndex = short.lastIndex(of: tilde), tildeIndex < short.endIndex - 1,
            short[(tildeIndex + 1)...].allSatisfy(isDigit)
        {
            return "trailing tilde and digits in path element"
        }
        return nil
    }

    /// Whether an ASCII character may appear in an element of the given kind (modPathOK, importPathOK, fileNameOK).
    private static func isAllowedASCII(_ byte: UInt8, kind: PathKind) -> Bool {
        if isDigit(byte) || isLower(byte) || isUpper(byte) { return true }
        switch (byte, kind) {
        case (UInt8(ascii: "-"), _), (UInt8(ascii: "."), _), (UInt8(ascii: "_"), _), (UInt8(ascii: "~"), _):
            return true
        case (UInt8(ascii: "+"), .importPath), (UInt8(ascii: "+"), .filePath):
            return true
        case (_, .filePath):
            // All ASCII punctuation except what shells or file systems treat specially: " ' * < > ? ` | / \ :
            switch byte {
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
                UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: "@"),
                UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "^"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                UInt8(ascii: " "):
                return true
            default:
                return false
            }
        default:
            return false
        }
    }

    /// Whether a non-ASCII scalar may appear in an element of the given kind.
    private static func isAllowedNonASCII(_ value: UInt32, kind: PathKind) -> Bool {
        // Only file names allow non-ASCII, and only letters: other Unicode brings case-folding and
        // normalization ambiguities that the `!` encoding cannot represent.
        guard kind == .filePath, let scalar = Unicode.Scalar(value) else { return false }
        return GoQuote.isLetter(scalar)
    }

    /// `strings.EqualFold` for a reserved name: none of their letters has a non-ASCII case fold
    /// (only K and S do, through the Kelvin sign and long s), so ASCII folding gives Go's answer.
    private static func equalFoldASCII(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            (isUpper(x) ? x | 0x20 : x) == (isUpper(y) ? y | 0x20 : y)
        }
    }

    private static func quoteRune(_ value: UInt32) -> String {
        GoQuote.rune(Unicode.Scalar(value) ?? "\u{FFFD}")
    }
}

// MARK: - Major-version suffix

extension ModulePath {
    /// Where the major-version suffix of `path` starts (`path.count` if there is none), or `nil` if the
    /// suffix is malformed (module.SplitPathVersion's ok == false).
    static func splitIndex(_ path: [UInt8]) -> Int? {
        if path.starts(with: "gopkg.in/".utf8) { return gopkgInSplitIndex(path) }
        var i = path.count
        var sawDot = false
        while i > 0 && (isDigit(path[i - 1]) || path[i - 1] == dot) {
            if path[i - 1] == dot { sawDot = true }
            i -= 1
        }
        if i <= 1 || i == path.count || path[i - 1] != UInt8(ascii: "v") || path[i - 2] != slash {
            return path.count
        }
        let pathMajor = path[(i - 2)...]
        // /v0, /v1, /v01 and /v2.0 are not major-version suffixes but are not plain elements either.
        // (path[i] is the suffix's first digit, Go's pathMajor[2].)
        if sawDot || pathMajor.count <= 2 || path[i] == UInt8(ascii: "0") || pathMajor.elementsEqual("/v1".utf8) {
            return nil
        }
        return i - 2
    }

    /// splitIndex for gopkg.in paths, which must end in `.vN` (optionally `-unstable`), N ≥ 0 with no leading zero.
    private static func gopkgInSplitIndex(_ path: [UInt8]) -> Int? {
        var i = path.count
        if path.reversed().starts(with: "-unstable".utf8.reversed()) { i -= "-unstable".utf8.count }
        while i > 0 && isDigit(path[i - 1]) { i -= 1 }
        guard i > 1, path[i - 1] == UInt8(ascii: "v"), path[i - 2] == dot else { return nil }
        let pathMajor = path[(i - 2)...]
        if pathMajor.count <= 2 || (path[i] == UInt8(ascii: "0") && !pathMajor.elementsEqual(".v0".utf8)) {
            return nil
        }
        return i - 2
    }

    /// Why `version` does not fit `pathMajor` (module.CheckPathMajor's inner error), or `nil` if it does.
    static func pathMajorMismatch(version: String, pathMajor: String) -> String? {
        var wanted = Array(pathMajor.utf8)[...]
        if wanted.starts(with: ".v".utf8) && wanted.reversed().starts(with: "-unstable".utf8.reversed()) {
            wanted = wanted.dropLast("-unstable".utf8.count)
        }
        // Early vgo wrote v0.0.0- pseudo-versions for gopkg.in .v1 paths; go.mod files still hold them.
        if version.utf8.starts(with: "v0.0.0-".utf8) && wanted.elementsEqual(".v1".utf8) { return nil }
        let parsed = ParsedVersion(version)
        let major = parsed.map { Array($0.majorPrefix.utf8) } ?? []
        if wanted.isEmpty {
            let isIncompatible = parsed.map { $0.bytes[$0.build].elementsEqual("+incompatible".utf8) } ?? false
            if major.elementsEqual("v0".utf8) || major.elementsEqual("v1".utf8) || isIncompatible { return nil }
            wanted = Array("v0 or v1".utf8)[...]
        } else if wanted.first == slash || wanted.first == dot {
            wanted = wanted.dropFirst()
            if major.elementsEqual(wanted) { return nil }
        }
        return "should be \(text(wanted)), not \(text(major[...]))"
    }
}
