// Fuzz target (beyond the four): the go.mod reader (Sources/GoModule/GoModFile.swift) and pseudo-versions
// (Sources/GoModule/PseudoVersion.swift), which GitFetcher applies to content from arbitrary git repositories.
//
// Input: a go.mod file; its first 8 bytes also give a timestamp, and its first two lines a version and a revision
// for the pseudo-version functions. Besides "never traps", checks: retractions are intervals of canonical
// versions that contain their low end unless inverted; a parsed pseudo-version is valid, and its parts put back
// together give it again; a made pseudo-version is a pseudo-version whose timestamp is the one asked for.
import GoModule

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    _ = GoModFile.modulePath(bytes)
    let goVersion = GoModFile.goVersion(bytes)
    _ = GoModFile.goVersion(goVersion, atLeast: "1.21")
    for retraction in GoModFile.retractions(bytes) {
        require(ModulePath.canonicalVersion(retraction.low) == retraction.low
                && ModulePath.canonicalVersion(retraction.high) == retraction.high, "non-canonical retraction \(retraction)")
        // An inverted interval ([v2.0.0, v1.0.0]) is kept, as Go's modfile keeps it: it retracts nothing.
        require(retraction.contains(retraction.low) == (SemVer.compare(retraction.low, retraction.high) <= 0),
                "retraction \(retraction) does not contain its low end")
    }

    let lines = splitInput(bytes, on: UInt8(ascii: "\n"), limit: 3).map { String(decoding: $0, as: UTF8.self) }
    let version = lines[0], rev = lines.count > 1 ? lines[1] : "abcdef123456"
    if let parts = PseudoVersion.parse(version) {
        require(SemVer.isValid(version) && SemVer.isPseudoVersion(version), "parsed \(version.debugDescription)")
        // "v0.0.0" + "-" + timestamp…, "v1.2.4-0" + "." + timestamp…
        let rebuilt = ["-", "."].map { parts.base + $0 + parts.timestamp + "-" + parts.rev + parts.build }
        require(rebuilt.contains { $0.utf8.elementsEqual(version.utf8) }, "parts of \(version.debugDescription): \(parts)")
    }
    _ = try? PseudoVersion.base(version)

    var seconds: Int64 = 0
    for byte in bytes.prefix(8) { seconds = seconds << 8 | Int64(byte) }
    let timestamp = PseudoVersion.timestamp(unixSeconds: seconds)
    _ = PseudoVersion.rfc3339(unixSeconds: seconds)
    let made = PseudoVersion.make(major: lines.count > 2 ? "v2" : "", older: version, unixSeconds: seconds, rev: rev)
    // Only a plain revision and a representable year make a pseudo-version the go command would accept.
    if rev.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }), rev.utf8.count == 12,
       timestamp.utf8.count == 14, timestamp.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
       SemVer.build(version).isEmpty || SemVer.build(version) == "+incompatible", SemVer.isValid(version) || version.isEmpty {
        require(SemVer.isPseudoVersion(made),
                "make(\(version.debugDescription), \(seconds), \(rev.debugDescription)) = \(made.debugDescription)")
        require(PseudoVersion.parse(made)?.timestamp == timestamp, "timestamp of \(made.debugDescription)")
    }
    return 0
}
