// The `require` directives of a go.mod (golang.org/x/mod/modfile's require lines, single and in blocks).

extension GoModFile {
    /// One `require` line: a module path and the version it requires, with the line's number (1-based).
    public struct Requirement: Equatable, Sendable {
        public var path: String
        public var version: String
        public var line: Int
        /// Whether the line carries `// indirect`.
        public var indirect: Bool
    }

    /// What `requirements(_:)` read: the requirements, the directives it saw and ignored (such as `replace`
    /// and `exclude`: they change what a build uses, not what a proxy holds) with how often, and the lines it
    /// could not read with why.
    public struct Requirements: Sendable {
        public var requires: [Requirement] = []
        public var ignored: [String: Int] = [:]
        public var problems: [(line: Int, message: String)] = []
    }

    /// The `require` directives of a go.mod, single-line (`require m v1.2.3`) and in blocks (`require ( … )`).
    /// Paths and versions are only split here; the caller checks them with `ModulePath`.
    public static func requirements(_ data: some Collection<UInt8>) -> Requirements {
        var result = Requirements()
        let bytes = Array(data)
        let raw = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var block: String?
        for (index, line) in lines(bytes).enumerated() {
            let number = index + 1
            var tokens = tokenize(line)
            if tokens.isEmpty { continue }
            let directive: String
            if let open = block {
                if tokens == [")"] { block = nil; continue }
                directive = open
            } else {
                directive = tokens.removeFirst()
                if tokens == ["("] { block = directive; continue }
            }
            guard directive == "require" else {
                if directive != "module", directive != "go", directive != "toolchain" { result.ignored[directive, default: 0] += 1 }
                continue
            }
            guard tokens.count == 2 else {
                result.problems.append((number, "a require line is \"path version\""))
                continue
            }
            func text(_ token: String) -> String? {
                guard let first = token.utf8.first, first == UInt8(ascii: "\"") || first == UInt8(ascii: "`") else { return token }
                return unquote(Array(token.utf8)[...])
            }
            guard let path = text(tokens[0]), let version = text(tokens[1]) else {
                result.problems.append((number, "a malformed quoted string"))
                continue
            }
            let indirect = index < raw.count && isIndirect(raw[index])
            result.requires.append(Requirement(path: path, version: version, line: number, indirect: indirect))
        }
        if block != nil { result.problems.append((raw.count, "a \(block!) block without its closing \")\"")) }
        return result
    }

    /// Whether a raw line's comment is `// indirect` (possibly followed by `; …`, as modfile allows).
    private static func isIndirect(_ line: ArraySlice<UInt8>) -> Bool {
        guard let slash = line.firstRange(of: Array("//".utf8)) else { return false }
        let comment = String(decoding: line[slash.upperBound...], as: UTF8.self).trimmingCharacters(in: " \t\r")
        return comment == "indirect" || comment.hasPrefix("indirect;")
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop = Set(set.utf8)
        var bytes = Array(utf8)[...]
        while let first = bytes.first, drop.contains(first) { bytes = bytes.dropFirst() }
        while let last = bytes.last, drop.contains(last) { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
