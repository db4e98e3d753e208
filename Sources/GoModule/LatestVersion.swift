// Which of a module's versions is "latest" when the source has no @latest of its own.

/// The go command's choice of a module's latest version from a list of versions (cmd/go/internal/modload
/// `queryProxy` for "latest", then modfetch's proxy fallback `latestFromList` when no tagged version is left):
/// the highest release, else the highest pre-release, else the newest pseudo-version by its timestamp.
public enum LatestVersion {
    /// The latest of `versions`; entries that are not canonical versions are ignored. `nil` if none is left.
    /// Pseudo-versions with the same timestamp are told apart by semver order, so the answer does not depend
    /// on the order of `versions`.
    public static func pick(_ versions: some Sequence<String>) -> String? {
        var release: String?, prerelease: String?
        var pseudo: (version: String, time: String)?
        for v in versions where ModulePath.canonicalVersion(v) == v {
            if let parts = PseudoVersion.parse(v) {
                // "yyyymmddhhmmss" orders as text exactly as in time.
                if let best = pseudo, best.time > parts.timestamp || (best.time == parts.timestamp && SemVer.compare(best.version, v) >= 0) {
                    continue
                }
                pseudo = (v, parts.timestamp)
            } else if SemVer.prerelease(v).isEmpty {
                if release.map({ SemVer.compare($0, v) < 0 }) ?? true { release = v }
            } else {
                if prerelease.map({ SemVer.compare($0, v) < 0 }) ?? true { prerelease = v }
            }
        }
        return release ?? prerelease ?? pseudo?.version
    }
}
