// ArtifactValidator: the one check of what a fetcher hands over (.info, .mod, .zip), with the go command's rules.
// The host's stash, ProxyFetcher and plugin-check all call it, so they cannot disagree about what is acceptable.

/// Why a fetched `.info` or `.mod` was refused; the message reads after "fetcher X produced ".
public struct ValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, e.g. `a .info whose "Time" is not an RFC 3339 time`.
    public var message: String

    /// Creates an error carrying `message`.
    public init(message: String) { self.message = message }

    /// The message, as is.
    public var description: String { message }
}

/// Checks the three files of a module version before anything is stored.
public enum ArtifactValidator {
    /// Largest .info accepted.
    public static let maxInfo = 1 << 16

    /// What the go command reads out of a `.info`.
    public struct Info: Equatable, Sendable {
        /// The version it names (canonical).
        public var version: String
        /// The raw RFC 3339 time, nil when absent or null (the go command reads both as "no time").
        public var time: String?
    }

    /// The go command's reading of a `.info` (`json.Unmarshal` into `RevInfo{Version string; Time time.Time}`):
    /// valid JSON, an object, a string `Version` that is canonical (and equal to `version` when given); `Time`
    /// absent, `null`, or a string in RFC 3339 form (Go's strict parse). Keys match as Go's do: case-insensitively,
    /// the last occurrence winning. Returns the version it names.
    @discardableResult
    public static func checkInfo(_ info: some Collection<UInt8>, version: String?) throws(ValidationError) -> String {
        try readInfo(info, version: version).version
    }

    /// `checkInfo`, returning the time as well.
    public static func readInfo(_ info: some Collection<UInt8>, version: String?) throws(ValidationError) -> Info {
        guard info.count <= maxInfo else { throw ValidationError(message: "a .info larger than \(maxInfo) bytes") }
        var parser = InfoParser(bytes: Array(info))
        let members: [InfoParser.Member]
        do {
            members = try parser.topLevelObject()
        } catch {
            throw ValidationError(message: "a .info that is not a JSON object (\(error.why) at byte \(error.offset))")
        }
        var versionValue: InfoParser.Value?
        var timeValue: InfoParser.Value?
        for member in members {
            // encoding/json folds keys; the last matching member overwrites earlier ones.
            if asciiFolded(member.key) == "version" { versionValue = member.value }
            if asciiFolded(member.key) == "time" { timeValue = member.value }
        }
        let named: String
        switch versionValue {
        case .string(let decoded, _): named = decoded
        default: throw ValidationError(message: "a .info without a string \"Version\"")
        }
        if let version, named != version {
            throw ValidationError(message: "a .info for version \(GoQuote.string(named)) instead of the requested \(version)")
        }
        guard ModulePath.canonicalVersion(named) == named else {
            throw ValidationError(message: "a .info with non-canonical version \(GoQuote.string(named))")
        }
        var time: String?
        switch timeValue {
        case nil, .null?: break
        case .string(_, let raw)?:
            // time.Time.UnmarshalJSON parses the bytes between the quotes, escapes and all.
            guard RFC3339.isValid(raw) else {
                throw ValidationError(message: "a .info whose \"Time\" \(GoQuote.string(String(decoding: raw.prefix(64), as: UTF8.self))) is not an RFC 3339 time")
            }
            time = String(decoding: raw, as: UTF8.self)
        case .other?:
            throw ValidationError(message: "a .info whose \"Time\" is neither a string nor null")
        }
        return Info(version: named, time: time)
    }

    /// What modload requires of a downloaded go.mod: its module directive (as `modfile.ModulePath` reads it)
    /// is exactly the path the module was required as. Also UTF-8 and within the go command's 16 MiB.
    public static func checkMod(_ mod: some Collection<UInt8>, module: String) throws(ValidationError) {
        guard UInt64(mod.count) <= ModuleZip.maxGoMod else {
            throw ValidationError(message: "a .mod larger than \(ModuleZip.maxGoMod) bytes")
        }
        guard String(validating: mod, as: UTF8.self) != nil else { throw ValidationError(message: "a .mod that is not UTF-8") }
        let declared = GoModFile.modulePath(mod)
        guard !declared.isEmpty else { throw ValidationError(message: "a .mod without a module directive") }
        guard declared.utf8.elementsEqual(module.utf8) else {
            // The go command's words (modload), on one line.
            throw ValidationError(
                message: "a .mod that does not match: module declares its path as: \(declared.prefix(300)) but was required as: \(module)")
        }
    }

    /// The zip in `fd` (`size` bytes from offset 0) read in full: the central directory and `ModuleZip.check`'s
    /// rules, then every entry's local header and data (`ZipContents.verify`: CRC-32 and real sizes).
    /// Returns its entries; `observer` sees every entry's uncompressed bytes on the way (indexes into them).
    @discardableResult
    public static func checkZip(fd: Int32, size: UInt64, module: String, version: String,
                                observer: (any ZipEntryObserver)? = nil) throws(ZipError) -> [ZipEntry] {
        let listing = try ZipDirectory.listing(fd: fd, size: size)
        try ModuleZip.check(module: module, version: version, entries: listing.entries, zipSize: size)
        try ZipContents.verify(fd: fd, size: size, entries: listing.entries, directoryOffset: listing.directoryOffset, observer: observer)
        return listing.entries
    }

    private static func asciiFolded(_ key: [UInt8]) -> String {
        String(decoding: key.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}

// MARK: - JSON

/// A strict JSON reader for one small document (RFC 8259, as Go's scanner accepts it), keeping only what
/// `.info` needs: the top-level object's members, with string values decoded and raw.
private struct InfoParser {
    struct Failure: Error { var why: String; var offset: Int }
    enum Value { case string(String, raw: ArraySlice<UInt8>), null, other }
    struct Member { var key: [UInt8]; var value: Value }

    /// Deeper nesting than any real .info, and shallow enough for a worker thread's stack.
    static let maxDepth = 256

    let bytes: [UInt8]
    var at = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func topLevelObject() throws(Failure) -> [Member] {
        skipSpace()
        guard peek == UInt8(ascii: "{") else { throw fail("expected an object") }
        at += 1
        var members: [Member] = []
        skipSpace()
        if peek == UInt8(ascii: "}") {
            at += 1
        } else {
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string().decoded
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
                at += 1
                skipSpace()
                let value: Value
                switch peek {
                case UInt8(ascii: "\""):
                    let (decoded, raw) = try string()
                    value = .string(String(decoding: decoded, as: UTF8.self), raw: raw)
                case UInt8(ascii: "n"):
                    try literal("null")
                    value = .null
                default:
                    try skipValue(depth: 1)
                    value = .other
                }
                members.append(Member(key: key, value: value))
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                guard peek == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                at += 1
                break
            }
        }
        skipSpace()
        guard at == bytes.count else { throw fail("data after the top-level value") }
        return members
    }

    private var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    private func fail(_ why: String) -> Failure { Failure(why: peek == nil ? "unexpected end" : why, offset: at) }

    private mutating func skipSpace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { at += 1 }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - at >= text.count, bytes[at..<at + text.count].elementsEqual(text) else { throw fail("bad literal") }
        at += text.count
    }

    /// A string token; returns its decoded bytes (as Go decodes: bad UTF-8 and lone surrogates become U+FFFD)
    /// and the raw bytes between the quotes.
    private mutating func string() throws(Failure) -> (decoded: [UInt8], raw: ArraySlice<UInt8>) {
        at += 1
        let start = at
        var decoded: [UInt8] = []
        while true {
            guard let byte = peek else { throw fail("unterminated string") }
            if byte == UInt8(ascii: "\"") { break }
            guard byte >= 0x20 else { throw fail("control character in a string") }
            if byte != UInt8(ascii: "\\") {
                decoded.append(byte)
                at += 1
                continue
            }
            at += 1
            guard let escape = peek else { throw fail("unterminated escape") }
            at += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar), bytes.count - at >= 6, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") {
                    let save = at
                    at += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        at = save
                    }
                }
                decoded += Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
            default: throw fail("bad escape")
            }
        }
        let raw = bytes[start..<at]
        at += 1
        // Go replaces invalid UTF-8 with U+FFFD rather than failing.
        return (Array(String(decoding: decoded, as: UTF8.self).utf8), raw)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard bytes.count - at >= 4 else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[at]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("bad \\u escape")
            }
            value = value << 4 | digit
            at += 1
        }
        return value
    }

    private mutating func skipValue(depth: Int) throws(Failure) {
        guard depth <= Self.maxDepth else { throw fail("nested too deeply") }
        skipSpace()
        switch peek {
        case UInt8(ascii: "\"")?: _ = try string()
        case UInt8(ascii: "t")?: try literal("true")
        case UInt8(ascii: "f")?: try literal("false")
        case UInt8(ascii: "n")?: try literal("null")
        case UInt8(ascii: "{")?, UInt8(ascii: "[")?:
            let isObject = peek == UInt8(ascii: "{")
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            at += 1
            skipSpace()
            if peek == close { at += 1; return }
            while true {
                skipSpace()
                if isObject {
                    guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    _ = try string()
                    skipSpace()
                    guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    at += 1
                }
                try skipValue(depth: depth + 1)
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                guard peek == close else { throw fail("expected ',' or a closing bracket") }
                at += 1
                return
            }
        default: try number()
        }
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    private mutating func number() throws(Failure) {
        func digits(_ parser: inout InfoParser) -> Int {
            let start = parser.at
            while let byte = parser.peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { parser.at += 1 }
            return parser.at - start
        }
        if peek == UInt8(ascii: "-") { at += 1 }
        if peek == UInt8(ascii: "0") {
            at += 1
        } else {
            guard digits(&self) > 0 else { throw fail("invalid value") }
        }
        if peek == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw fail("bad number") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw fail("bad number") }
        }
    }
}

// MARK: - RFC 3339

/// Go's strict RFC 3339 parse (`time.Time.UnmarshalJSON`): `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`, every
/// field in range (no leap second, days within the month), an upper-case `T` and `Z`.
enum RFC3339 {
    static func isValid(_ raw: some Collection<UInt8>) -> Bool {
        let s = Array(raw)
        guard s.count >= 20 else { return false }
        func number(_ from: Int, _ count: Int) -> Int? {
            var value = 0
            for index in from..<from + count {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s[index]) else { return nil }
                value = value * 10 + Int(s[index] - UInt8(ascii: "0"))
            }
            return value
        }
        guard s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"), s[10] == UInt8(ascii: "T"),
              s[13] == UInt8(ascii: ":"), s[16] == UInt8(ascii: ":"),
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return false }
        guard (1...12).contains(month), hour < 24, minute < 60, second < 60 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { return false }
        var at = 19
        if s[at] == UInt8(ascii: ".") {
            at += 1
            let start = at
            while at < s.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s[at]) { at += 1 }
            guard (1...9).contains(at - start) else { return false }
        }
        guard at < s.count else { return false }
        if s[at] == UInt8(ascii: "Z") { return at + 1 == s.count }
        guard s[at] == UInt8(ascii: "+") || s[at] == UInt8(ascii: "-"), s.count - at == 6, s[at + 3] == UInt8(ascii: ":"),
              let zoneHour = number(at + 1, 2), let zoneMinute = number(at + 4, 2) else { return false }
        return zoneHour < 24 && zoneMinute < 60
    }
}
