import GoModule
import Testing

/// One row of `golang.org/x/mod/semver` semver_test.go `tests`: an input and its canonical form ("" = invalid).
/// The rows are in increasing version order, which the comparison test relies on.
struct SemVerCase: Sendable, CustomTestStringConvertible {
    let input: String
    let canonical: String
    var testDescription: String { "\(input.debugDescription) → \(canonical.debugDescription)" }
}

/// A pseudo-version from pseudo_test.go `pseudoTests` and the tagged version it was derived from.
struct PseudoCase: Sendable, CustomTestStringConvertible {
    let older: String
    let version: String
    var testDescription: String { version }
}

@Suite("SemVer: golang.org/x/mod/semver and module.IsPseudoVersion")
struct SemVerTests {
    // semver_test.go `tests`, transcribed in order.
    static let table: [SemVerCase] = [
        SemVerCase(input: "bad", canonical: ""),
        SemVerCase(input: "v1-alpha.beta.gamma", canonical: ""),
        SemVerCase(input: "v1-pre", canonical: ""),
        SemVerCase(input: "v1+meta", canonical: ""),
        SemVerCase(input: "v1-pre+meta", canonical: ""),
        SemVerCase(input: "v1.2-pre", canonical: ""),
        SemVerCase(input: "v1.2+meta", canonical: ""),
        SemVerCase(input: "v1.2-pre+meta", canonical: ""),
        SemVerCase(input: "v1.0.0-alpha", canonical: "v1.0.0-alpha"),
        SemVerCase(input: "v1.0.0-alpha.1", canonical: "v1.0.0-alpha.1"),
        SemVerCase(input: "v1.0.0-alpha.beta", canonical: "v1.0.0-alpha.beta"),
        SemVerCase(input: "v1.0.0-beta", canonical: "v1.0.0-beta"),
        SemVerCase(input: "v1.0.0-beta.2", canonical: "v1.0.0-beta.2"),
        SemVerCase(input: "v1.0.0-beta.11", canonical: "v1.0.0-beta.11"),
        SemVerCase(input: "v1.0.0-rc.1", canonical: "v1.0.0-rc.1"),
        SemVerCase(input: "v1", canonical: "v1.0.0"),
        SemVerCase(input: "v1.0", canonical: "v1.0.0"),
        SemVerCase(input: "v1.0.0", canonical: "v1.0.0"),
        SemVerCase(input: "v1.2", canonical: "v1.2.0"),
        SemVerCase(input: "v1.2.0", canonical: "v1.2.0"),
        SemVerCase(input: "v1.2.3-456", canonical: "v1.2.3-456"),
        SemVerCase(input: "v1.2.3-456.789", canonical: "v1.2.3-456.789"),
        SemVerCase(input: "v1.2.3-456-789", canonical: "v1.2.3-456-789"),
        SemVerCase(input: "v1.2.3-456a", canonical: "v1.2.3-456a"),
        SemVerCase(input: "v1.2.3-pre", canonical: "v1.2.3-pre"),
        SemVerCase(input: "v1.2.3-pre+meta", canonical: "v1.2.3-pre"),
        SemVerCase(input: "v1.2.3-pre.1", canonical: "v1.2.3-pre.1"),
        SemVerCase(input: "v1.2.3-zzz", canonical: "v1.2.3-zzz"),
        SemVerCase(input: "v1.2.3", canonical: "v1.2.3"),
        SemVerCase(input: "v1.2.3+meta", canonical: "v1.2.3"),
        SemVerCase(input: "v1.2.3+meta-pre", canonical: "v1.2.3"),
        SemVerCase(input: "v1.2.3+meta-pre.sha.256a", canonical: "v1.2.3"),
    ]

    // Inputs that must be invalid: malformed numbers, identifiers and look-alikes, plus hostile bytes.
    static let invalid: [String] = [
        "", "v", "V1.0.0", "1.0.0", " v1.0.0", "v1.0.0 ", "v1.0.0\n", "v1.0.0\0", "\0",
        "v01", "v1.01", "v1.0.01", "v00.0.0", "v-1.0.0", "v+1.0.0", "v1.", "v1..0", "v1.0.", "v1.0.0.0",
        "v1.0.0-", "v1.0.0+", "v1.0.0-+x", "v1.0.0-a..b", "v1.0.0-a.", "v1.0.0-.a", "v1.0.0+a..b", "v1.0.0+a.",
        "v1.0.0-01", "v1.0.0-alpha.01", "v1.0.0-alpha_beta", "v1.0.0+meta+more", "v1.0.0+meta_data",
        "v1.0.0-α", "v\u{FF11}.0.0", "v1.0.0-\u{212A}", "v1.0.0%2e", "v1.0.0/go.mod", "v1.0.0@v1.0.0",
        "latest", "master", "..", "%2e%2e", "v1.0.0-pre!",
        String(decoding: [0x76, 0x31, 0x2E, 0x30, 0x2E, 0x30, 0xFF], as: UTF8.self),
        "v" + String(repeating: "0", count: 2),
    ]

    // Additional valid inputs: leading zeros are fine in build metadata, numbers may exceed 64 bits.
    static let valid: [String] = [
        "v0", "v0.0", "v0.0.0", "v1.0.0-0", "v1.0.0-0a", "v1.0.0-00a", "v1.0.0-a-", "v1.0.0--", "v1.0.0+01",
        "v1.0.0+-", "v1.0.0-x.y.z+a.b.c", "v99999999999999999999999.0.0", "v2.0.0+incompatible",
        "v0.0.0-20191109021931-daa7c04131f5",
    ]

    @Test("isValid agrees with the table: a row is valid exactly when it has a canonical form", arguments: table)
    func isValidMatchesTable(row: SemVerCase) {
        #expect(SemVer.isValid(row.input) == !row.canonical.isEmpty)
    }

    @Test("canonical fills in missing parts and drops build metadata; invalid gives nil", arguments: table)
    func canonicalMatchesTable(row: SemVerCase) {
        #expect(SemVer.canonical(row.input) == (row.canonical.isEmpty ? nil : row.canonical))
    }

    @Test("major is the canonical form up to its first dot", arguments: table)
    func majorMatchesTable(row: SemVerCase) {
        let want = row.canonical.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init)
        #expect(SemVer.major(row.input) == (row.canonical.isEmpty ? nil : want))
    }

    @Test("majorMinor keeps the input's major.minor, adding .0 to a bare major", arguments: table)
    func majorMinorMatchesTable(row: SemVerCase) {
        var want: String? = nil
        if !row.canonical.isEmpty {
            // As semver_test.go derives it: cut build and prerelease, then keep two numbers.
            var core = Substring(row.input)
            if let plus = core.firstIndex(of: "+") { core = core[..<plus] }
            if let dash = core.firstIndex(of: "-") { core = core[..<dash] }
            let parts = core.split(separator: ".", omittingEmptySubsequences: false)
            want = parts.count == 1 ? core + ".0" : parts[0] + "." + parts[1]
        }
        #expect(SemVer.majorMinor(row.input) == want)
    }

    @Test("prerelease is the canonical form from its first dash, or empty", arguments: table)
    func prereleaseMatchesTable(row: SemVerCase) {
        let want = row.canonical.firstIndex(of: "-").map { String(row.canonical[$0...]) } ?? ""
        #expect(SemVer.prerelease(row.input) == want)
    }

    @Test("build is the input from its first plus for valid versions, else empty", arguments: table)
    func buildMatchesTable(row: SemVerCase) {
        var want = ""
        if !row.canonical.isEmpty, let plus = row.input.firstIndex(of: "+") { want = String(row.input[plus...]) }
        #expect(SemVer.build(row.input) == want)
    }

    @Test("compare orders every pair of table rows by their position; equal canonical forms compare equal")
    func compareAllPairs() {
        for (i, a) in Self.table.enumerated() {
            for (j, b) in Self.table.enumerated() {
                let want = a.canonical == b.canonical ? 0 : (i < j ? -1 : 1)
                #expect(SemVer.compare(a.input, b.input) == want, "compare(\(a.input), \(b.input))")
            }
        }
    }

    @Test(
        "compare: numbers compare numerically, not as text",
        arguments: [
            ("v1", "v1", 0), ("v2", "v1", 1), ("v1", "v2", -1), ("v1.19", "v1.2", 1), ("v1.2", "v1.19", -1),
            ("v1.10.0", "v1.9.0", 1), ("v10.0.0", "v9.0.0", 1), ("v1.0.10", "v1.0.9", 1),
            ("v99999999999999999999.0.0", "v9.0.0", 1), ("v1.0.0-10", "v1.0.0-9", 1),
            ("v1.0.0-alpha.10", "v1.0.0-alpha.9", 1), ("v1.0.0-9", "v1.0.0-a", -1), ("v1.0.0-a", "v1.0.0-B", 1),
            ("v1.0.0+a", "v1.0.0+b", 0), ("v1.0.0", "v1.0", 0), ("v1.0.0-rc.1", "v1.0.0", -1),
            ("v1.0.0-alpha", "v1.0.0-alpha.0", -1), ("bad", "v0.0.0", -1), ("v0.0.0", "bad", 1), ("bad", "", 0),
        ] as [(String, String, Int)])
    func compareExplicit(a: String, b: String, want: Int) {
        #expect(SemVer.compare(a, b) == want)
    }

    @Test("sorted and compare work on bytes: a Kelvin sign is not the letter K")
    func bytesNotCharacters() {
        // Swift's == calls U+212A and "K" canonically equivalent; Go compares bytes, and so must we.
        #expect(SemVer.compare("v1.0.0-K", "v1.0.0-\u{212A}") == 1)  // the Kelvin sign is not an identifier byte
        let sorted = SemVer.sorted(["\u{212A}", "K"]).map { Array($0.utf8) }
        #expect(sorted == [Array("K".utf8), Array("\u{212A}".utf8)])
    }

    @Test("invalid inputs are rejected by every function", arguments: invalid)
    func invalidInputs(v: String) {
        #expect(!SemVer.isValid(v))
        #expect(SemVer.canonical(v) == nil)
        #expect(SemVer.major(v) == nil)
        #expect(SemVer.majorMinor(v) == nil)
        #expect(SemVer.prerelease(v) == "")
        #expect(SemVer.build(v) == "")
        #expect(!SemVer.isPseudoVersion(v))
        #expect(SemVer.compare(v, "v0.0.0") == -1)
        #expect(SemVer.compare(v, "also bad") == 0)
    }

    @Test("other valid inputs are accepted", arguments: valid)
    func validInputs(v: String) {
        #expect(SemVer.isValid(v))
        #expect(SemVer.canonical(v) != nil)
        #expect(SemVer.compare(v, "bad") == 1)
    }

    @Test("very long inputs are handled in one pass: valid, invalid, and compared")
    func veryLongInputs() {
        let longPrerelease = "v1.0.0-" + String(repeating: "a", count: 100_000)
        #expect(SemVer.isValid(longPrerelease))
        #expect(SemVer.prerelease(longPrerelease).utf8.count == 100_001)
        #expect(!SemVer.isValid("v1.0.0-" + String(repeating: "a.", count: 50_000)))
        #expect(!SemVer.isValid("v1.0.0-" + String(repeating: "0", count: 100_000)))
        let longMajor = "v" + String(repeating: "9", count: 100_000)
        #expect(SemVer.canonical(longMajor) == longMajor + ".0.0")
        #expect(SemVer.compare(longMajor, "v" + String(repeating: "9", count: 99_999)) == 1)
        let manyIdentifiers = "v1.0.0-" + Array(repeating: "1", count: 20_000).joined(separator: ".")
        #expect(SemVer.compare(manyIdentifiers, manyIdentifiers + ".1") == -1)
        #expect(!SemVer.isPseudoVersion("v0.0.0-20060102150405-" + String(repeating: "f", count: 100_000) + "!"))
        #expect(SemVer.isPseudoVersion("v0.0.0-20060102150405-" + String(repeating: "f", count: 100_000)))
    }

    @Test("canonical, major and majorMinor of very large numbers keep every digit")
    func hugeNumbers() {
        let big = "v123456789012345678901234567890.98765432109876543210"
        #expect(SemVer.canonical(big) == big + ".0")
        #expect(SemVer.major(big) == "v123456789012345678901234567890")
        #expect(SemVer.majorMinor(big) == big)
    }

    @Test("sorted puts a shuffled table into an order where each neighbour is not greater than the next")
    func sortedShuffledTable() {
        var generator = SystemRandomNumberGenerator()
        let shuffled = Self.table.map(\.input).shuffled(using: &generator)
        let sorted = SemVer.sorted(shuffled)
        #expect(sorted.count == shuffled.count)
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            let order = SemVer.compare(a, b)
            #expect(order < 0 || (order == 0 && !Array(b.utf8).lexicographicallyPrecedes(Array(a.utf8))), "\(a) before \(b)")
        }
    }

    @Test("sorted breaks ties between equal versions by byte order, invalid versions first")
    func sortedTies() {
        let input = ["v1.0.0", "v1.0", "v1", "v2.0.0+b", "v2.0.0+a", "zzz", "bad", "v0.1.0", "v1.0.0-rc.1"]
        #expect(SemVer.sorted(input) == [
            "bad", "zzz", "v0.1.0", "v1.0.0-rc.1", "v1", "v1.0", "v1.0.0", "v2.0.0+a", "v2.0.0+b",
        ])
        #expect(SemVer.sorted([]) == [])
    }

    // pseudo_test.go `pseudoTests`: each version is a pseudo-version, each older one is not.
    static let pseudoTable: [PseudoCase] = [
        PseudoCase(older: "", version: "v0.0.0-20060102150405-hash"),
        PseudoCase(older: "", version: "v1.0.0-20060102150405-hash"),
        PseudoCase(older: "", version: "v2.0.0-20060102150405-hash"),
        PseudoCase(older: "v0.0.0", version: "v0.0.1-0.20060102150405-hash"),
        PseudoCase(older: "v1.2.3", version: "v1.2.4-0.20060102150405-hash"),
        PseudoCase(older: "v1.2.99999999999999999", version: "v1.2.100000000000000000-0.20060102150405-hash"),
        PseudoCase(older: "v1.2.3-pre", version: "v1.2.3-pre.0.20060102150405-hash"),
        PseudoCase(older: "v1.3.0-pre", version: "v1.3.0-pre.0.20060102150405-hash"),
        PseudoCase(older: "v0.0.0--", version: "v0.0.0--.0.20060102150405-hash"),
        PseudoCase(older: "v1.0.0+metadata", version: "v1.0.1-0.20060102150405-hash+metadata"),
        PseudoCase(older: "v2.0.0+incompatible", version: "v2.0.1-0.20060102150405-hash+incompatible"),
        PseudoCase(older: "v2.3.0-pre+incompatible", version: "v2.3.0-pre.0.20060102150405-hash+incompatible"),
    ]

    @Test("pseudo-versions are recognised and the tags they derive from are not", arguments: pseudoTable)
    func pseudoVersions(row: PseudoCase) {
        #expect(SemVer.isPseudoVersion(row.version))
        #expect(!SemVer.isPseudoVersion(row.older))
    }

    @Test(
        "look-alikes of pseudo-versions are not pseudo-versions",
        arguments: [
            "v0.0.0-2006010215040-hash",  // 13-digit timestamp
            "v0.0.0-200601021504050-hash",  // 15-digit timestamp
            "v0.0.0-20060102150405-",  // no revision
            "v0.0.0-20060102150405",  // one dash only
            "v0.0.0-20060102150405-ha_sh",  // revision not alphanumeric
            "v0.0.0-2006010215040a-hash",  // letter in timestamp
            "v1.2.3-20060102150405-hash",  // form (1) needs .0.0
            "v1.2.3-pre.20060102150405-hash",  // no 0. before the timestamp
            "v1.2.3-pre.1.20060102150405-hash",  // 1. instead of 0.
            "v1.2.3-pre0.20060102150405-hash",  // "pre0." is not ".0."
            "v1.2.4-0.20060102150405-hash+",  // empty build
            "v1.2.4-0.20060102150405-hash+a..b",  // empty build identifier
            "v1.2.4-0.20060102150405-hash+x+y",  // two build suffixes
            "v1.2.4-0.20060102150405.hash",  // dot instead of dash
            "1.2.4-0.20060102150405-hash",  // no v
            "v1.2.4-0.20060102150405-hash ",  // trailing space
            "v1.2.4-00.20060102150405-hash",  // not a semantic version
            "v1.2.4-0.20060102150405-hash\u{212A}",  // non-ASCII revision
            "v1.2", "v0.0.0", "master", "",
        ])
    func notPseudoVersions(v: String) {
        #expect(!SemVer.isPseudoVersion(v))
    }

    @Test(
        "pseudo-versions match the pattern's other shapes",
        arguments: [
            "v0.0.0-00000000000000-0",
            "v0.0.0-20191109021931-daa7c04131f5",
            "v1.2.4-0.20191109021931-daa7c04131f5+incompatible",
            "v1.2.3-rc.1.0.20191109021931-daa7c04131f5",
            "v1.2.3-a.b.0.0.20191109021931-daa7c04131f5",
            "v0.0.0-20191109021931-daa7c04131f5+build.1-x",
            "v10.20.30-0.20191109021931-DAA7C04131F5",
        ])
    func morePseudoVersions(v: String) {
        #expect(SemVer.isPseudoVersion(v))
    }
}
