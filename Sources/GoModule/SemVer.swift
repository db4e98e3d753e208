// Semantic versions as the go command reads them: golang.org/x/mod/semver, plus module.IsPseudoVersion.

/// Go's semantic versions (`golang.org/x/mod/semver`): `vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]`,
/// with the leading `v` required and `vMAJOR` / `vMAJOR.MINOR` accepted as shorthands.
///
/// Every function works on UTF-8 bytes, so strings that Swift calls equal but whose bytes differ
/// (canonically equivalent Unicode) are told apart exactly as Go tells them apart.
public enum SemVer {
    /// Whether `v` is a valid semantic version (`semver.IsValid`).
    public static func isValid(_ v: String) -> Bool {
        ParsedVersion(v) != nil
    }

    /// The canonical form of `v` (`semver.Canonical`): missing `.MINOR`/`.PATCH` filled in, build metadata dropped.
    /// `nil` where Go answers `""` (an invalid version).
    public static func canonical(_ v: String) -> String? {
        ParsedVersion(v)?.canonical
    }

    /// Compares `a` and `b` by semantic version precedence (`semver.Compare`): -1, 0 or 1.
    /// An invalid version is less than every valid one; all invalid versions are equal.
    public static func compare(_ a: String, _ b: String) -> Int {
        ParsedVersion.compare(ParsedVersion(a), ParsedVersion(b))
    }

    /// The major-version prefix of `v` (`semver.Major`), e.g. `"v2"` for `"v2.1.0"`; `nil` if `v` is invalid.
    public static func major(_ v: String) -> String? {
        ParsedVersion(v)?.majorPrefix
    }

    /// The major.minor prefix of `v` (`semver.MajorMinor`), e.g. `"v2.1"` for `"v2.1.0"`; `nil` if `v` is invalid.
    public static func majorMinor(_ v: String) -> String? {
        ParsedVersion(v)?.majorMinorPrefix
    }

    /// The prerelease suffix of `v` with its `-` (`semver.Prerelease`), or `""` if none or if `v` is invalid.
    public static func prerelease(_ v: String) -> String {
        ParsedVersion(v)?.prereleaseString ?? ""
    }

    /// The build suffix of `v` with its `+` (`semver.Build`), or `""` if none or if `v` is invalid.
    public static func build(_ v: String) -> String {
        ParsedVersion(v)?.buildString ?? ""
    }

    /// Whether `v` is a pseudo-version (`module.IsPseudoVersion`), such as
    /// `v0.0.0-20191109021931-daa7c04131f5` or `v1.2.4-0.20191109021931-daa7c04131f5+incompatible`.
    public static func isPseudoVersion(_ v: String) -> Bool {
        let bytes = Array(v.utf8)
        var dashes = 0
        for byte in bytes where byte == UInt8(ascii: "-") { dashes += 1 }
        guard dashes >= 2, ParsedVersion(bytes: bytes) != nil else { return false }
        return PseudoVersionPattern.matches(bytes)
    }

    /// `versions` in `semver.Sort` order: by precedence, ties (such as `v1.0` and `v1.0.0`) by byte order,
    /// invalid versions first.
    public static func sorted(_ versions: [String]) -> [String] {
        // Parse once per version, not once per comparison.
        let keyed = versions.map { (text: $0, bytes: Array($0.utf8), parsed: ParsedVersion($0)) }
        return keyed.sorted { a, b in
            let order = ParsedVersion.compare(a.parsed, b.parsed)
            if order != 0 { return order < 0 }
            return a.bytes.lexicographicallyPrecedes(b.bytes)
        }.map(\.text)
    }
}

/// A valid semantic version split into its parts, as byte ranges of its UTF-8 text.
struct ParsedVersion {
    private static let asciiV = UInt8(ascii: "v")
    private static let dot = UInt8(ascii: ".")
    private static let minus = UInt8(ascii: "-")
    private static let plus = UInt8(ascii: "+")
    private static let zero: ArraySlice<UInt8> = [UInt8(ascii: "0")][...]

    /// The version's UTF-8 bytes.
    let bytes: [UInt8]
    /// Digits of MAJOR.
    let major: Range<Int>
    /// Digits of MINOR; `nil` when written as the `vMAJOR` shorthand (MINOR is 0).
    let minor: Range<Int>?
    /// Digits of PATCH; `nil` when written as a shorthand (PATCH is 0).
    let patch: Range<Int>?
    /// `-PRERELEASE` with its dash; empty if none.
    let prerelease: Range<Int>
    /// `+BUILD` with its plus; empty if none.
    let build: Range<Int>

    init?(_ v: String) {
        self.init(bytes: Array(v.utf8))
    }

    // Mirrors semver.parse: the same checks in the same order.
    init?(bytes b: [UInt8]) {
        guard b.first == Self.asciiV, let majorEnd = Self.scanNumber(b, from: 1) else { return nil }
        self.bytes = b
        self.major = 1..<majorEnd
        if majorEnd == b.count {
            // vMAJOR: no prerelease or build may follow a shorthand.
            (minor, patch, prerelease, build) = (nil, nil, b.count..<b.count, b.count..<b.count)
            return
        }
        guard b[majorEnd] == Self.dot, let minorEnd = Self.scanNumber(b, from: majorEnd + 1) else { return nil }
        self.minor = majorEnd + 1..<minorEnd
        if minorEnd == b.count {
            (patch, prerelease, build) = (nil, b.count..<b.count, b.count..<b.count)
            return
        }
        guard b[minorEnd] == Self.dot, let patchEnd = Self.scanNumber(b, from: minorEnd + 1) else { return nil }
        self.patch = minorEnd + 1..<patchEnd
        var i = patchEnd
        if i < b.count && b[i] == Self.minus {
            guard let end = Self.scanPrerelease(b, from: i) else { return nil }
            prerelease = i..<end
            i = end
        } else {
            prerelease = i..<i
        }
        if i < b.count && b[i] == Self.plus {
            guard let end = Self.scanBuild(b, from: i) else { return nil }
            build = i..<end
            i = end
        } else {
            build = i..<i
        }
        guard i == b.count else { return nil }
    }

    /// `semver.Canonical`.
    var canonical: String {
        if !build.isEmpty { return Self.text(bytes[..<build.lowerBound]) }
        let whole = Self.text(bytes[...])
        if minor == nil { return whole + ".0.0" }
        if patch == nil { return whole + ".0" }
        return whole
    }

    /// `semver.Major`: `v` and the MAJOR digits.
    var majorPrefix: String {
        Self.text(bytes[..<major.upperBound])
    }

    /// `semver.MajorMinor`.
    var majorMinorPrefix: String {
        if let minor { return Self.text(bytes[..<minor.upperBound]) }
        return majorPrefix + ".0"
    }

    /// `semver.Prerelease`.
    var prereleaseString: String { Self.text(bytes[prerelease]) }

    /// `semver.Build`.
    var buildString: String { Self.text(bytes[build]) }

    private var minorDigits: ArraySlice<UInt8> { minor.map { bytes[$0] } ?? Self.zero }
    private var patchDigits: ArraySlice<UInt8> { patch.map { bytes[$0] } ?? Self.zero }

    /// `semver.Compare` over already parsed versions; `nil` stands for an invalid version.
    static func compare(_ a: ParsedVersion?, _ b: ParsedVersion?) -> Int {
        guard let a else { return b == nil ? 0 : -1 }
        guard let b else { return 1 }
        var order = compareNumbers(a.bytes[a.major], b.bytes[b.major])
        if order != 0 { return order }
        order = compareNumbers(a.minorDigits, b.minorDigits)
        if order != 0 { return order }
        order = compareNumbers(a.patchDigits, b.patchDigits)
        if order != 0 { return order }
        return comparePrereleases(a.bytes[a.prerelease], b.bytes[b.prerelease])
    }

    private static func text(_ slice: ArraySlice<UInt8>) -> String {
        String(decoding: slice, as: UTF8.self)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isIdentChar(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == minus
    }

    /// End of a decimal number without extra leading zeros starting at `start` (semver.parseInt).
    private static func scanNumber(_ b: [UInt8], from start: Int) -> Int? {
        guard start < b.count, isDigit(b[start]) else { return nil }
        var i = start + 1
        while i < b.count && isDigit(b[i]) { i += 1 }
        if b[start] == UInt8(ascii: "0") && i != start + 1 { return nil }
        return i
    }

    /// An all-digit identifier with a leading zero, which prerelease identifiers forbid (semver.isBadNum).
    private static func isBadNumber(_ ident: ArraySlice<UInt8>) -> Bool {
        ident.count > 1 && ident.first == UInt8(ascii: "0") && ident.allSatisfy(isDigit)
    }

    /// End of `-PRERELEASE` starting at the dash (semver.parsePrerelease).
    private static func scanPrerelease(_ b: [UInt8], from start: Int) -> Int? {
        var i = start + 1
        var identStart = i
        while i < b.count && b[i] != plus {
            if b[i] == dot {
                if identStart == i || isBadNumber(b[identStart..<i]) { return nil }
                identStart = i + 1
            } else if !isIdentChar(b[i]) {
                return nil
            }
            i += 1
        }
        if identStart == i || isBadNumber(b[identStart..<i]) { return nil }
        return i
    }

    /// End of `+BUILD` starting at the plus (semver.parseBuild); build identifiers may have leading zeros.
    private static func scanBuild(_ b: [UInt8], from start: Int) -> Int? {
        var i = start + 1
        var identStart = i
        while i < b.count {
            if b[i] == dot {
                if identStart == i { return nil }
                identStart = i + 1
            } else if !isIdentChar(b[i]) {
                return nil
            }
            i += 1
        }
        if identStart == i { return nil }
        return i
    }

    /// Numeric order of two digit strings without leading zeros: the longer is larger, else byte order.
    private static func compareNumbers(_ x: ArraySlice<UInt8>, _ y: ArraySlice<UInt8>) -> Int {
        if x.count != y.count { return x.count < y.count ? -1 : 1 }
        return compareBytes(x, y)
    }

    private static func compareBytes(_ x: ArraySlice<UInt8>, _ y: ArraySlice<UInt8>) -> Int {
        if x.elementsEqual(y) { return 0 }
        return x.lexicographicallyPrecedes(y) ? -1 : 1
    }

    /// Semantic Versioning 2.0.0 §11 precedence of two `-PRERELEASE` suffixes (semver.comparePrerelease):
    /// a release sorts after every prerelease; identifiers compare numerically if all digits (and below
    /// any alphanumeric one), else in ASCII order; a longer list wins a tie.
    private static func comparePrereleases(_ x: ArraySlice<UInt8>, _ y: ArraySlice<UInt8>) -> Int {
        if x.elementsEqual(y) { return 0 }
        if x.isEmpty { return 1 }
        if y.isEmpty { return -1 }
        var x = x
        var y = y
        while !x.isEmpty && !y.isEmpty {
            // Skip the leading '-' or '.'.
            x = x.dropFirst()
            y = y.dropFirst()
            let dx = x.prefix { $0 != dot }
            let dy = y.prefix { $0 != dot }
            x = x[dx.endIndex...]
            y = y[dy.endIndex...]
            if dx.elementsEqual(dy) { continue }
            let numericX = dx.allSatisfy(isDigit)
            let numericY = dy.allSatisfy(isDigit)
            if numericX != numericY { return numericX ? -1 : 1 }
            if numericX && dx.count != dy.count { return dx.count < dy.count ? -1 : 1 }
            return compareBytes(dx, dy)
        }
        return x.isEmpty ? -1 : 1
    }
}

/// The pseudo-version pattern of `module/pseudo.go`, matched by hand instead of by regular expression:
/// `^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`
enum PseudoVersionPattern {
    private static let dot = UInt8(ascii: ".")

    /// Whether all of `b` matches the pattern.
    static func matches(_ b: [UInt8]) -> Bool {
        guard b.first == UInt8(ascii: "v") else { return false }
        var i = 1
        guard let afterMajor = skipDigits(b[...], from: i), afterMajor < b.count, b[afterMajor] == dot else {
            return false
        }
        i = afterMajor + 1
        // Neither alternative can match a '+' before the build suffix, so the build starts at the first '+'.
        let plusIndex = b[i...].firstIndex(of: UInt8(ascii: "+")) ?? b.count
        guard buildMatches(b[plusIndex...]) else { return false }
        let body = b[i..<plusIndex]
        return matchesShortForm(body) || matchesPrereleaseForm(body)
    }

    /// `0\.0-\d{14}-[A-Za-z0-9]+`
    private static func matchesShortForm(_ body: ArraySlice<UInt8>) -> Bool {
        guard body.starts(with: "0.0-".utf8) else { return false }
        return isTimestampAndRevision(body.dropFirst(4))
    }

    /// `\d+\.\d+-([^+]*\.)?0\.\d{14}-[A-Za-z0-9]+`
    private static func matchesPrereleaseForm(_ body: ArraySlice<UInt8>) -> Bool {
        guard let afterMinor = skipDigits(body, from: body.startIndex), afterMinor < body.endIndex,
            body[afterMinor] == dot,
            let afterPatch = skipDigits(body, from: afterMinor + 1), afterPatch < body.endIndex,
            body[afterPatch] == UInt8(ascii: "-")
        else { return false }
        let rest = body[(afterPatch + 1)...]
        // The timestamp-revision tail has no dot, so the "0." before it ends at the last dot.
        guard let lastDot = rest.lastIndex(of: dot), isTimestampAndRevision(rest[(lastDot + 1)...]) else {
            return false
        }
        let head = rest[..<lastDot]
        return head.elementsEqual("0".utf8) || head.reversed().starts(with: "0.".utf8)
    }

    /// `\d{14}-[A-Za-z0-9]+`, the whole of `s`.
    private static func isTimestampAndRevision(_ s: ArraySlice<UInt8>) -> Bool {
        guard s.count >= 16 else { return false }
        let stampEnd = s.startIndex + 14
        guard s[s.startIndex..<stampEnd].allSatisfy(isDigit), s[stampEnd] == UInt8(ascii: "-") else { return false }
        return s[(stampEnd + 1)...].allSatisfy { isDigit($0) || isLetter($0) }
    }

    /// `(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`, the whole of `s`.
    private static func buildMatches(_ s: ArraySlice<UInt8>) -> Bool {
        guard let first = s.first else { return true }
        guard first == UInt8(ascii: "+") else { return false }
        var identLength = 0
        for byte in s.dropFirst() {
            if byte == dot {
                if identLength == 0 { return false }
                identLength = 0
            } else if isDigit(byte) || isLetter(byte) || byte == UInt8(ascii: "-") {
                identLength += 1
            } else {
                return false
            }
        }
        return identLength > 0
    }

    /// Index after one or more digits starting at `start`; `nil` if there is no digit there.
    private static func skipDigits(_ s: ArraySlice<UInt8>, from start: Int) -> Int? {
        var i = start
        while i < s.endIndex && isDigit(s[i]) { i += 1 }
        return i == start ? nil : i
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}
