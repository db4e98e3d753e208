// go.sum lines: "path version h1:hash" and "path version/go.mod h1:hash" (golang.org/x/mod/sumdb's line format).

/// Reads a go.sum: each line names a module version and one hash, either of its zip (`path version h1:…`) or of
/// its go.mod alone (`path version/go.mod h1:…`, the only line of a version whose go.mod the build read but whose
/// code it never needed).
public enum GoSumFile {
    /// One line of a go.sum, with its number (1-based).
    public struct Line: Equatable, Sendable {
        public var path: String
        public var version: String
        /// The line is the `/go.mod` hash (the suffix is not part of `version`).
        public var goModOnly: Bool
        public var line: Int
    }

    /// The lines, and the ones that are not `path version[/go.mod] hash` with why. Blank lines are skipped.
    /// Paths and versions are only split here; the caller checks them with `ModulePath`.
    public static func lines(_ data: some Collection<UInt8>) -> (lines: [Line], problems: [(line: Int, message: String)]) {
        var result: [Line] = [], problems: [(line: Int, message: String)] = []
        for (index, raw) in Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let fields = raw.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D })
            if fields.isEmpty { continue }
            guard fields.count == 3 else {
                problems.append((index + 1, "a go.sum line is \"path version[/go.mod] hash\""))
                continue
            }
            guard fields[2].contains(UInt8(ascii: ":")) else {
                problems.append((index + 1, "the hash is not \"algorithm:base64\""))
                continue
            }
            var version = String(decoding: fields[1], as: UTF8.self)
            let goModOnly = version.hasSuffix("/go.mod")
            if goModOnly { version.removeLast("/go.mod".utf8.count) }
            result.append(Line(path: String(decoding: fields[0], as: UTF8.self), version: version, goModOnly: goModOnly, line: index + 1))
        }
        return (result, problems)
    }

    /// Whether `data` looks like a go.sum: its first non-blank line has three fields, the last `h1:…`.
    public static func looksLike(_ data: some Collection<UInt8>) -> Bool {
        for raw in Array(data).lazy.split(separator: UInt8(ascii: "\n")) {
            let fields = raw.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D })
            if fields.isEmpty { continue }
            return fields.count == 3 && fields[2].starts(with: "h1:".utf8)
        }
        return false
    }
}
