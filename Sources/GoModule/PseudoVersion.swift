// Pseudo-versions: golang.org/x/mod/module/pseudo.go (building, parsing, the base version).

/// Go's pseudo-versions (`module.PseudoVersion`, `PseudoVersionBase`, `PseudoVersionRev`, `PseudoVersionTime`):
/// `vX.0.0-yyyymmddhhmmss-abcdefabcdef`, `vX.Y.(Z+1)-0.yyyymmddhhmmss-abcdefabcdef[+incompatible]` and
/// `vX.Y.Z-pre.0.yyyymmddhhmmss-abcdefabcdef[+incompatible]`.
public enum PseudoVersion {
    /// The parts of a pseudo-version: `base` is the text before the timestamp ("v1.2.4-0", "v1.2.3-pre.0",
    /// "v0.0.0"), `build` the build suffix with its `+` ("" or "+incompatible").
    public struct Parts: Equatable, Sendable {
        /// "vX.0.0", "vX.Y.(Z+1)-0" or "vX.Y.Z-pre.0".
        public var base: String
        /// "yyyymmddhhmmss" (UTC).
        public var timestamp: String
        /// The revision identifier, usually the first 12 hex digits of a commit hash.
        public var rev: String
        /// "" or the build suffix with its "+", e.g. "+incompatible".
        public var build: String
    }

    /// `t` (seconds since 1970, UTC) as Go's `PseudoVersionTimestampFormat`, "20060102150405".
    public static func timestamp(unixSeconds t: Int64) -> String {
        let civil = CivilTime(unixSeconds: t)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(civil.year, 4) + pad(civil.month, 2) + pad(civil.day, 2) + pad(civil.hour, 2) + pad(civil.minute, 2) + pad(civil.second, 2)
    }

    /// The pseudo-version for revision `rev` made at `t` (`module.PseudoVersion`): `older` is the closest
    /// tagged ancestor version ("" if none), `major` the major version to use without one ("" means "v0").
    public static func make(major: String, older: String, unixSeconds t: Int64, rev: String) -> String {
        let major = major.isEmpty ? "v0" : major
        let segment = timestamp(unixSeconds: t) + "-" + rev
        let build = SemVer.build(older)
        guard let canonical = SemVer.canonical(older) else { return major + ".0.0-" + segment }
        if !SemVer.prerelease(canonical).isEmpty { return canonical + ".0." + segment + build }
        // vMAJOR.MINOR.PATCH → vMAJOR.MINOR.(PATCH+1)-0.
        let bytes = Array(canonical.utf8)
        let dot = bytes.lastIndex(of: UInt8(ascii: "."))! + 1
        let prefix = String(decoding: bytes[..<dot], as: UTF8.self)
        let patch = String(decoding: bytes[dot...], as: UTF8.self)
        return prefix + incrementDecimal(patch) + "-0." + segment + build
    }

    /// Splits a pseudo-version into its parts (`parsePseudoVersion`); nil if `v` is not a pseudo-version.
    public static func parse(_ v: String) -> Parts? {
        guard SemVer.isPseudoVersion(v) else { return nil }
        let build = SemVer.build(v)
        var rest = Array(v.utf8.dropLast(build.utf8.count))
        let lastDash = rest.lastIndex(of: UInt8(ascii: "-"))!
        let rev = String(decoding: rest[(lastDash + 1)...], as: UTF8.self)
        rest = Array(rest[..<lastDash])
        let dash = rest.lastIndex(of: UInt8(ascii: "-")) ?? -1
        let base: String, timestamp: String
        if let dot = rest.lastIndex(of: UInt8(ascii: ".")), dot > dash {
            base = String(decoding: rest[..<dot], as: UTF8.self)
            timestamp = String(decoding: rest[(dot + 1)...], as: UTF8.self)
        } else {
            base = String(decoding: rest[..<dash], as: UTF8.self)
            timestamp = String(decoding: rest[(dash + 1)...], as: UTF8.self)
        }
        return Parts(base: base, timestamp: timestamp, rev: rev, build: build)
    }

    /// The version the pseudo-version is based on (`module.PseudoVersionBase`): "" for the no-tag form,
    /// "vX.Y.Z" or "vX.Y.Z-pre" (plus any build suffix) otherwise.
    /// - Throws: for a non-pseudo-version, a no-tag form with build metadata, or a patch of 0 that cannot be decremented.
    public static func base(_ v: String) throws(ModuleError) -> String {
        guard let parts = parse(v) else { throw ModuleError("\(v): not a pseudo-version") }
        let pre = SemVer.prerelease(parts.base)
        switch pre {
        case "":
            if !parts.build.isEmpty {
                throw ModuleError("\(v): invalid pseudo-version: lacks base version, but has build metadata \(GoQuote.string(parts.build))")
            }
            return ""
        case "-0":
            let release = Array(parts.base.utf8.dropLast(2))
            let dot = release.lastIndex(of: UInt8(ascii: "."))!
            let patch = String(decoding: release[(dot + 1)...], as: UTF8.self)
            guard let decremented = decrementDecimal(patch) else {
                throw ModuleError("\(v): invalid pseudo-version: version before \(parts.base) would have negative patch number")
            }
            return String(decoding: release[...dot], as: UTF8.self) + decremented + parts.build
        default:
            return String(decoding: parts.base.utf8.dropLast(2), as: UTF8.self) + parts.build
        }
    }

    /// Decimal string plus one ("9" → "10").
    static func incrementDecimal(_ decimal: String) -> String {
        var digits = Array(decimal.utf8)
        var index = digits.count - 1
        while index >= 0 && digits[index] == UInt8(ascii: "9") {
            digits[index] = UInt8(ascii: "0")
            index -= 1
        }
        if index >= 0 { digits[index] += 1 } else { digits.insert(UInt8(ascii: "1"), at: 0) }
        return String(decoding: digits, as: UTF8.self)
    }

    /// Decimal string minus one ("10" → "9"); nil for "0".
    static func decrementDecimal(_ decimal: String) -> String? {
        var digits = Array(decimal.utf8)
        if digits.allSatisfy({ $0 == UInt8(ascii: "0") }) { return nil }
        var index = digits.count - 1
        while digits[index] == UInt8(ascii: "0") {
            digits[index] = UInt8(ascii: "9")
            index -= 1
        }
        digits[index] -= 1
        if digits.count > 1 && digits[0] == UInt8(ascii: "0") { digits.removeFirst() }
        return String(decoding: digits, as: UTF8.self)
    }
}

/// A UTC calendar time from seconds since 1970 (proleptic Gregorian, Howard Hinnant's days-from-civil inverse).
struct CivilTime {
    var year, month, day, hour, minute, second: Int

    init(unixSeconds t: Int64) {
        // Floor division by remainder: the former (t - 86_399) / 86_400 overflowed near Int64.min (fuzzed).
        var days = t / 86_400
        var seconds = Int(t % 86_400)
        if seconds < 0 {
            days -= 1
            seconds += 86_400
        }
        hour = seconds / 3600
        minute = seconds % 3600 / 60
        second = seconds % 60
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yearOfEra + era * 400) + (month <= 2 ? 1 : 0)
    }

    /// RFC 3339 in UTC with a "Z", as Go's encoding/json writes a UTC time.Time.
    var rfc3339: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))Z"
    }
}

extension PseudoVersion {
    /// `t` (seconds since 1970) as RFC 3339 UTC ("2006-01-02T15:04:05Z"), the form of a `.info` "Time".
    public static func rfc3339(unixSeconds t: Int64) -> String {
        CivilTime(unixSeconds: t).rfc3339
    }
}
