// The few go.mod facts a VCS fetcher needs: golang.org/x/mod/modfile ModulePath, the go directive, retract.

/// Reads a go.mod file as leniently as the go command does when it only needs a few facts
/// (`modfile.ModulePath`, and `modfile.ParseLax` for the `go` and `retract` directives).
public enum GoModFile {
    /// A closed interval of retracted versions, `[low, high]` (both canonical).
    public struct Retraction: Equatable, Sendable {
        /// The lowest retracted version.
        public var low: String
        /// The highest retracted version.
        public var high: String

        /// Creates the interval `[low, high]`.
        public init(low: String, high: String) {
            self.low = low
            self.high = high
        }

        /// Whether `version` lies in the interval (by semver precedence, as the go command compares).
        public func contains(_ version: String) -> Bool {
            SemVer.compare(low, version) <= 0 && SemVer.compare(version, high) <= 0
        }
    }

    /// The module path of the `module` line (`modfile.ModulePath`), "" if there is none or it is malformed.
    public static func modulePath(_ data: some Collection<UInt8>) -> String {
        for line in lines(data) {
            guard line.starts(with: "module".utf8) else { continue }
            let rest = line.dropFirst(6)
            let trimmed = trimSpace(rest)
            // "module" must be followed by space and something else.
            if trimmed.count == rest.count || trimmed.isEmpty { continue }
            if trimmed.first == UInt8(ascii: "\"") || trimmed.first == UInt8(ascii: "`") {
                return unquote(trimmed) ?? ""
            }
            return String(decoding: trimmed, as: UTF8.self)
        }
        return ""
    }

    /// The language version of the `go` directive ("1.21", "1.24.0"), nil if there is none.
    public static func goVersion(_ data: some Collection<UInt8>) -> String? {
        for line in lines(data) {
            let tokens = tokenize(line)
            if tokens.count == 2, tokens[0] == "go" { return tokens[1] }
        }
        return nil
    }

    /// Whether the dotted Go version `version` ("1.24", "1.24.1", "1.24rc1") is at least `minimum` ("1.24").
    /// A missing or unparsable version is treated as older than every release (the go command's "" case).
    public static func goVersion(_ version: String?, atLeast minimum: String) -> Bool {
        guard let version else { return false }
        func numbers(_ text: String) -> [Int] {
            var result: [Int] = []
            for part in text.split(separator: ".") {
                let digits = part.prefix { $0.isASCII && $0.isNumber }
                guard let value = Int(digits) else { break }
                result.append(value)
                if digits.count != part.count { break }
            }
            return result
        }
        let have = numbers(version), want = numbers(minimum)
        if have.isEmpty { return false }
        for index in 0..<max(have.count, want.count) {
            let a = index < have.count ? have[index] : 0, b = index < want.count ? want[index] : 0
            if a != b { return a > b }
        }
        return true
    }

    /// The `retract` directives, single or in a block, as intervals of canonical versions. Like the go command
    /// (which then ignores every retraction), any malformed retract directive makes the result empty.
    public static func retractions(_ data: some Collection<UInt8>) -> [Retraction] {
        var result: [Retraction] = []
        var inBlock = false
        for line in lines(data) {
            var tokens = tokenize(line)
            if tokens.isEmpty { continue }
            if inBlock {
                if tokens == [")"] { inBlock = false; continue }
            } else {
                guard tokens[0] == "retract" else {
                    // Other blocks ("require (") are skipped line by line: their lines never start with "retract".
                    continue
                }
                tokens.removeFirst()
                if tokens == ["("] { inBlock = true; continue }
            }
            guard let interval = parseInterval(tokens) else { return [] }
            result.append(interval)
        }
        return result
    }

    private static func parseInterval(_ tokens: [String]) -> Retraction? {
        if tokens.count == 1 {
            guard let version = canonical(tokens[0]) else { return nil }
            return Retraction(low: version, high: version)
        }
        guard tokens.count == 5, tokens[0] == "[", tokens[2] == ",", tokens[4] == "]",
              let low = canonical(tokens[1]), let high = canonical(tokens[3]) else { return nil }
        return Retraction(low: low, high: high)
    }

    private static func canonical(_ token: String) -> String? {
        var text = token
        if let first = token.utf8.first, first == UInt8(ascii: "\"") || first == UInt8(ascii: "`") {
            guard let unquoted = unquote(Array(token.utf8)[...]) else { return nil }
            text = unquoted
        }
        guard let canonical = ModulePath.canonicalVersion(text), canonical == text || SemVer.isValid(text) else { return nil }
        return canonical
    }

    /// Lines without their `//` comments, trimmed.
    static func lines(_ data: some Collection<UInt8>) -> [ArraySlice<UInt8>] {
        Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            var body = line
            if let start = commentStart(body) { body = body[..<start] }
            return trimSpace(body)
        }
    }

    /// Where a `//` comment starts outside a quoted string.
    private static func commentStart(_ line: ArraySlice<UInt8>) -> Int? {
        var quote: UInt8?
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            if let open = quote {
                if byte == UInt8(ascii: "\\") && open == UInt8(ascii: "\"") { index += 2; continue }
                if byte == open { quote = nil }
            } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "`") {
                quote = byte
            } else if byte == UInt8(ascii: "/"), index + 1 < line.endIndex, line[index + 1] == UInt8(ascii: "/") {
                return index
            }
            index += 1
        }
        return nil
    }

    /// Splits a comment-free line into words, quoted strings, and the punctuation `( ) [ ] ,`.
    static func tokenize(_ line: ArraySlice<UInt8>) -> [String] {
        var tokens: [String] = []
        var index = line.startIndex
        let punctuation: Set<UInt8> = [UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ",")]
        while index < line.endIndex {
            let byte = line[index]
            if isSpace(byte) { index += 1; continue }
            if punctuation.contains(byte) {
                tokens.append(String(UnicodeScalar(byte)))
                index += 1
                continue
            }
            let start = index
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "`") {
                index += 1
                while index < line.endIndex && line[index] != byte {
                    if byte == UInt8(ascii: "\"") && line[index] == UInt8(ascii: "\\") { index += 1 }
                    index += 1
                }
                index = min(index + 1, line.endIndex)
            } else {
                while index < line.endIndex && !isSpace(line[index]) && !punctuation.contains(line[index]) { index += 1 }
            }
            tokens.append(String(decoding: line[start..<index], as: UTF8.self))
        }
        return tokens
    }

    /// Go's `strconv.Unquote` for the simple cases go.mod uses: backquotes, or double quotes with `\"` and `\\`.
    static func unquote(_ text: ArraySlice<UInt8>) -> String? {
        guard text.count >= 2, let open = text.first, text.last == open else { return nil }
        let body = text.dropFirst().dropLast()
        if open == UInt8(ascii: "`") {
            return body.contains(UInt8(ascii: "`")) ? nil : String(decoding: body, as: UTF8.self)
        }
        var out: [UInt8] = []
        var index = body.startIndex
        while index < body.endIndex {
            let byte = body[index]
            if byte == UInt8(ascii: "\"") { return nil }
            if byte == UInt8(ascii: "\\") {
                index += 1
                guard index < body.endIndex else { return nil }
                let escaped = body[index]
                guard escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") else { return nil }
                out.append(escaped)
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }

    private static func trimSpace(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, isSpace(first) || first == 0x0A { slice = slice.dropFirst() }
        while let last = slice.last, isSpace(last) || last == 0x0A { slice = slice.dropLast() }
        return slice
    }
}
