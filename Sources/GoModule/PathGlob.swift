// Go's path.Match, for GOPRIVATE-style patterns (ModulePath.matchPrefixPatterns).

/// Go's `path.Match` glob syntax, for GOPRIVATE-style patterns:
/// `*` any run of non-`/` characters, `?` one non-`/` character, `[...]` / `[^...]` a character class
/// with `a-z` ranges, `\c` the character c.
enum PathGlob {
    /// The pattern is malformed (Go's `path.ErrBadPattern`).
    struct BadPattern: Error {}

    private static let slash = UInt8(ascii: "/")
    private static let star = UInt8(ascii: "*")
    private static let backslash = UInt8(ascii: "\\")

    /// Bytes of a borrowed UTF-8 buffer.
    typealias Bytes = Slice<UnsafeBufferPointer<UInt8>>

    /// Whether all of `name` matches `pattern` (`path.Match`).
    /// - Throws: `BadPattern` if the pattern is malformed, even where the match already failed (as Go does).
    static func match(pattern: Bytes, name: Bytes) throws(BadPattern) -> Bool {
        var pattern = pattern
        var name = name
        nextChunk: while !pattern.isEmpty {
            let (hasStar, chunk, rest) = scanChunk(pattern)
            pattern = rest
            if hasStar && chunk.isEmpty {
                // A trailing * matches the rest of the name unless it has a /.
                return !name.contains(slash)
            }
            // Match at the current position; the last chunk must use up the name.
            if let remaining = try matchChunk(chunk, name), remaining.isEmpty || !pattern.isEmpty {
                name = remaining
                continue
            }
            if hasStar {
                // Let the star swallow 1, 2, … bytes, never a /.
                var i = name.startIndex
                while i < name.endIndex && name[i] != slash {
                    if let remaining = try matchChunk(chunk, name[(i + 1)...]) {
                        if pattern.isEmpty && !remaining.isEmpty {
                            i += 1
                            continue
                        }
                        name = remaining
                        continue nextChunk
                    }
                    i += 1
                }
            }
            // No match; still report a malformed remainder of the pattern.
            while !pattern.isEmpty {
                let (_, chunk, rest) = scanChunk(pattern)
                pattern = rest
                _ = try matchChunk(chunk, chunk[chunk.endIndex...])
            }
            return false
        }
        return name.isEmpty
    }

    /// Splits off leading stars and the chunk up to the next star outside a class (path.scanChunk).
    private static func scanChunk(_ pattern: Bytes) -> (hasStar: Bool, chunk: Bytes, rest: Bytes)
    {
        var pattern = pattern
        var hasStar = false
        while pattern.first == star {
            pattern = pattern.dropFirst()
            hasStar = true
        }
        var inRange = false
        var i = pattern.startIndex
        scan: while i < pattern.endIndex {
            switch pattern[i] {
            case backslash:
                // A trailing backslash is reported by matchChunk.
                if i + 1 < pattern.endIndex { i += 1 }
            case UInt8(ascii: "["):
                inRange = true
            case UInt8(ascii: "]"):
                inRange = false
            case star:
                if !inRange { break scan }
            default:
                break
            }
            i += 1
        }
        return (hasStar, pattern[..<i], pattern[i...])
    }

    /// Matches `chunk` (no unescaped stars) against the start of `s` (path.matchChunk): the rest of `s`,
    /// or `nil` if it does not match. After a mismatch the chunk is still read to the end, for its syntax.
    private static func matchChunk(_ chunk: Bytes, _ s: Bytes) throws(BadPattern) -> Bytes?
    {
        var chunk = chunk
        var s = s
        var failed = false
        while let c = chunk.first {
            if !failed && s.isEmpty { failed = true }
            switch c {
            case UInt8(ascii: "["):
                var rune: UInt32 = 0
                if !failed {
                    let (value, length) = GoUTF8.decode(s, at: s.startIndex)
                    rune = value
                    s = s.dropFirst(length)
                }
                chunk = chunk.dropFirst()
                var negated = false
                if chunk.first == UInt8(ascii: "^") {
                    negated = true
                    chunk = chunk.dropFirst()
                }
                var matched = false
                var rangeCount = 0
                while true {
                    if chunk.first == UInt8(ascii: "]") && rangeCount > 0 {
                        chunk = chunk.dropFirst()
                        break
                    }
                    let low = try classCharacter(&chunk)
                    var high = low
                    if chunk.first == UInt8(ascii: "-") {
                        chunk = chunk.dropFirst()
                        high = try classCharacter(&chunk)
                    }
                    if low <= rune && rune <= high { matched = true }
                    rangeCount += 1
                }
                if matched == negated { failed = true }
            case UInt8(ascii: "?"):
                if !failed {
                    if s.first == slash { failed = true }
                    s = s.dropFirst(GoUTF8.decode(s, at: s.startIndex).length)
                }
                chunk = chunk.dropFirst()
            default:
                if c == backslash {
                    chunk = chunk.dropFirst()
                    if chunk.isEmpty { throw BadPattern() }
                }
                if !failed {
                    if chunk.first != s.first { failed = true }
                    s = s.dropFirst()
                }
                chunk = chunk.dropFirst()
            }
        }
        return failed ? nil : s
    }

    /// One possibly escaped character of a class (path.getEsc); it must not end the chunk.
    private static func classCharacter(_ chunk: inout Bytes) throws(BadPattern) -> UInt32 {
        guard let first = chunk.first, first != UInt8(ascii: "-"), first != UInt8(ascii: "]") else {
            throw BadPattern()
        }
        if first == backslash {
            chunk = chunk.dropFirst()
            if chunk.isEmpty { throw BadPattern() }
        }
        let (value, length) = GoUTF8.decode(chunk, at: chunk.startIndex)
        if value == 0xFFFD && length == 1 { throw BadPattern() }
        chunk = chunk.dropFirst(length)
        if chunk.isEmpty { throw BadPattern() }
        return value
    }
}
