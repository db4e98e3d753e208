// CodeRepo: one module in one repository, with the go command's direct-mode rules (cmd/go/internal/modfetch
// coderepo.go and codehost/git.go): which tags are versions, where go.mod lives, +incompatible, pseudo-versions,
// retractions and latest. Made per request; reads the mirror only (the caller updates it first).
import Basics
import FoundationEssentials
import Glibc
import GoModule
import PluginKit

/// A commit as git describes it.
struct RevInfo {
    /// The full commit hash.
    var hash: String
    /// The first 12 hex digits, the rev of a pseudo-version.
    var short: String { String(hash.prefix(12)) }
    /// Commit time, seconds since 1970.
    var time: Int64
    /// Tags pointing at the commit, sorted bytewise.
    var tags: [String]
    /// The rev the caller asked for if it is one of `tags`, else the hash (`RevInfo.Version` in codehost).
    var version: String
}

/// A resolved module version: what `.info` says.
struct ModuleVersion {
    /// The canonical version.
    var version: String
    /// The commit.
    var info: RevInfo

    /// The `.info` JSON, as the go command writes it.
    var infoJSON: String {
        #"{"Version":"\#(version)","Time":"\#(PseudoVersion.rfc3339(unixSeconds: info.time))"}"#
    }
}

/// A version-level failure: the go command's message; becomes not found (the proxy answers 404).
struct VersionError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The module `modulePath` in the repository whose root module path is `codeRoot`.
final class CodeRepo {
    let modulePath: String
    let codeRoot: String
    /// Where the module lives in the repository, without the major-version directory ("" at the root).
    let codeDir: String
    /// The module path without its major suffix.
    let pathPrefix: String
    /// "", "/vN" or ".vN[-unstable]".
    let pathMajor: String
    /// The major version of pseudo-versions without a base ("" means v0).
    let pseudoMajor: String
    let mirror: Mirror
    private var fileCache: [String: [UInt8]?] = [:]
    private var refs: Mirror.Refs

    init(modulePath: String, codeRoot: String, mirror: Mirror) throws(PluginFailure) {
        self.modulePath = modulePath
        self.codeRoot = codeRoot
        self.mirror = mirror
        guard let split = ModulePath.splitPathVersion(modulePath) else {
            throw .notFound("\(modulePath): malformed module path: invalid major version suffix")
        }
        pathPrefix = split.prefix
        pathMajor = split.pathMajor
        var major = pathMajor.isEmpty ? "" : String(pathMajor.dropFirst())
        if major.hasSuffix("-unstable") { major = String(major.dropLast(9)) }
        pseudoMajor = major
        if codeRoot == modulePath {
            codeDir = ""
        } else {
            guard pathPrefix == codeRoot || pathPrefix.hasPrefix(codeRoot + "/") else {
                throw .notFound("\(modulePath): mismatched repo: found \(codeRoot) for \(modulePath)")
            }
            codeDir = String(pathPrefix.dropFirst(codeRoot.count)).trimming { $0 == "/" }
        }
        refs = try mirror.refs()
    }

    // MARK: - Git layer (codehost)

    /// Whether `text` is all lower-case hex (git hashes).
    static func allHex(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// codehost Stat: a tag, a branch, HEAD, or a hash (prefix) → the commit; nil if unknown.
    func gitStat(_ rev: String) throws(PluginFailure) -> RevInfo? {
        var hash: String?
        // As codehost does: a hash (prefix) the repository knows wins over names.
        if rev.utf8.count >= 7, rev.utf8.count <= 40, Self.allHex(rev) {
            hash = try resolveCommit(rev)
        }
        if hash == nil {
            if let tagged = refs.tags[rev] {
                hash = tagged
            } else if let branch = refs.branches[rev] {
                hash = branch
            } else if rev == "HEAD" {
                hash = refs.head ?? refs.branches["master"] ?? refs.branches["main"]
            }
        }
        guard let hash else { return nil }
        let result = try mirror.run(["-c", "log.showsignature=false", "log", "--no-decorate", "-n1",
                                     "--format=format:%H %ct", hash, "--"], what: "\(modulePath): git log \(hash)")
        guard result.status == 0 else { return nil }
        let fields = result.text.split(separator: " ")
        guard fields.count == 2, let time = Int64(fields[1]) else {
            throw .unavailable("\(modulePath): unexpected git log output for \(hash)")
        }
        let full = String(fields[0])
        let tags = refs.tags.filter { $0.value == full }.map(\.key).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return RevInfo(hash: full, time: time, tags: tags, version: tags.contains(rev) ? rev : full)
    }

    /// A hex prefix → the full commit hash, nil if no (or no unique) commit has it.
    private func resolveCommit(_ prefix: String) throws(PluginFailure) -> String? {
        let result = try mirror.run(["rev-parse", "--verify", "--quiet", "--end-of-options", prefix + "^{commit}"],
                                    what: "\(modulePath): git rev-parse \(prefix)")
        guard result.status == 0 else { return nil }
        let hash = result.text
        return hash.utf8.count == 40 && hash.hasPrefix(prefix) ? hash : nil
    }

    /// codehost ReadFile: the blob at `path` in commit `hash`, nil if there is none.
    func readFile(_ hash: String, _ path: String) throws(PluginFailure) -> [UInt8]? {
        let key = hash + ":" + path
        if let cached = fileCache[key] { return cached }
        let result = try mirror.run(["cat-file", "blob", key], what: "\(modulePath): git cat-file \(key)")
        let data: [UInt8]? = result.status == 0 ? result.stdout : nil
        fileCache[key] = data
        return data
    }

    /// Tags merged into `hash` (for the base of a pseudo-version).
    private func mergedTags(_ hash: String) throws(PluginFailure) -> [String] {
        let result = try mirror.run(["for-each-ref", "--format=%(refname)", "--merged", hash, "refs/tags"],
                                    what: "\(modulePath): git for-each-ref --merged")
        guard result.status == 0 else { throw .unavailable("\(modulePath): git for-each-ref --merged \(hash) failed: \(result.stderr)") }
        return result.text.split(separator: "\n").compactMap { line in
            line.hasPrefix("refs/tags/") ? String(line.dropFirst(10)) : nil
        }
    }

    private func isAncestor(_ ancestor: String, of hash: String) throws(PluginFailure) -> Bool {
        let result = try mirror.run(["merge-base", "--is-ancestor", ancestor, hash], what: "\(modulePath): git merge-base")
        return result.status == 0
    }

    // MARK: - Versions

    /// coderepo Versions(""): canonical tags for this module, then the allowed +incompatible ones.
    func versions() throws(PluginFailure) -> [String] {
        let prefix = codeDir.isEmpty ? "" : codeDir + "/"
        var list: [String] = [], incompatible: [String] = []
        for tag in refs.tags.keys where tag.hasPrefix(prefix) {
            let v = String(tag.dropFirst(prefix.count))
            // Non-canonical tags (and "+incompatible" or other build metadata in a tag) are not versions.
            guard !v.isEmpty, SemVer.canonical(v) == v, !SemVer.isPseudoVersion(v) else { continue }
            do {
                try ModulePath.checkPathMajor(version: v, pathMajor: pathMajor)
            } catch {
                if codeDir.isEmpty, pathMajor.isEmpty, SemVer.compare(SemVer.major(v) ?? "", "v1") > 0 {
                    incompatible.append(v)
                }
                continue
            }
            list.append(v)
        }
        return try appendIncompatible(SemVer.sorted(list), SemVer.sorted(incompatible))
    }

    private func appendIncompatible(_ list: [String], _ incompatible: [String]) throws(PluginFailure) -> [String] {
        guard !incompatible.isEmpty, pathMajor.isEmpty else { return list }
        func hasGoMod(_ v: String) throws(PluginFailure) -> Bool {
            guard let hash = refs.tags[v] else { return false }
            return try readFile(hash, "go.mod") != nil
        }
        // golang.org/issue/34189: if the latest compatible version has a go.mod, no +incompatible versions.
        if let last = list.last, try hasGoMod(last) { return list }
        var result = list
        var lastMajor = "", lastMajorHasGoMod = false
        for (index, v) in incompatible.enumerated() {
            let major = SemVer.major(v) ?? ""
            if major != lastMajor {
                let latestAtMajor = incompatible[index...].prefix { SemVer.major($0) == major }.last!
                lastMajor = major
                lastMajorHasGoMod = try hasGoMod(latestAtMajor)
            }
            if !lastMajorHasGoMod { result.append(v + "+incompatible") }
        }
        return result
    }

    /// coderepo retractedVersions: the retract directives of the highest release (else pre-release),
    /// +incompatible versions aside. Any failure means nothing is retracted, as in the go command.
    func retractions(versions: [String]) -> [GoModFile.Retraction] {
        let compatible = versions.prefix { !$0.hasSuffix("+incompatible") }
        guard let highest = compatible.last(where: { SemVer.prerelease($0).isEmpty }) ?? compatible.last else { return [] }
        guard let data = try? goMod(highest) else { return [] }
        return GoModFile.retractions(data)
    }

    // MARK: - Stat

    /// coderepo Stat: "latest", a tag or canonical version, a branch, a commit (prefix), a pseudo-version.
    func stat(_ rev: String) throws(PluginFailure) -> ModuleVersion {
        if rev == "latest" { return try latest() }
        guard let info = try gitStat(revToRev(rev)) else {
            throw .notFound("\(modulePath)@\(rev): invalid version: unknown revision \(rev)")
        }
        return try convert(info, statVers: rev)
    }

    /// The host's "latest": the highest release, else pre-release, not retracted; else the default branch.
    func latest() throws(PluginFailure) -> ModuleVersion {
        let all = try versions()
        let retracted = retractions(versions: all)
        let allowed = all.filter { v in !retracted.contains { $0.contains(v) } }
        if let release = allowed.last(where: { SemVer.prerelease($0).isEmpty }) ?? allowed.last {
            return try stat(release)
        }
        guard let head = try gitStat("HEAD") else { throw .notFound("\(modulePath)@latest: the repository has no default branch") }
        let version = try convert(head, statVers: "")
        if retracted.contains(where: { $0.contains(version.version) }) {
            throw .notFound("\(modulePath)@latest: no matching versions for query \"latest\" (all retracted)")
        }
        return version
    }

    /// coderepo revToRev: the git rev a version names.
    func revToRev(_ rev: String) -> String {
        guard SemVer.isValid(rev) else { return rev }
        if let parts = PseudoVersion.parse(rev) { return parts.rev }
        var name = rev
        if SemVer.build(rev) == "+incompatible" { name = Self.withoutIncompatible(rev) }
        return codeDir.isEmpty ? name : codeDir + "/" + name
    }

    func fail(_ version: String, _ message: String) -> PluginFailure {
        .notFound("\(modulePath)@\(version): invalid version: \(message)")
    }

    /// `v` without a "+incompatible" suffix.
    static func withoutIncompatible(_ v: String) -> String {
        v.hasSuffix("+incompatible") ? String(v.dropLast("+incompatible".count)) : v
    }

    private static func matchPathMajor(_ v: String, _ pathMajor: String) -> Bool {
        (try? ModulePath.checkPathMajor(version: v, pathMajor: pathMajor)) != nil
    }

    /// coderepo convert: turns a commit into the canonical version the go command would give it.
    func convert(_ info: RevInfo, statVers: String) throws(PluginFailure) -> ModuleVersion {
        var incompatibleOK: [String: Bool] = [:]
        func canUseIncompatible(_ v: String) throws(PluginFailure) -> Bool {
            guard codeDir.isEmpty, pathMajor.isEmpty else { return false }
            if incompatibleOK[""] == nil { incompatibleOK[""] = try readFile(info.hash, "go.mod") == nil }
            guard incompatibleOK[""] == true else { return false }
            // golang.org/issue/51324: a vN/go.mod means vN tags belong to the vN module (unless asked explicitly).
            if !v.isEmpty, !statVers.hasSuffix("+incompatible") {
                let major = SemVer.major(v) ?? ""
                if incompatibleOK[major] == nil { incompatibleOK[major] = try readFile(info.hash, major + "/go.mod") == nil }
                if incompatibleOK[major] != true { return false }
            }
            return true
        }

        func checkCanonical(_ version: String) throws(PluginFailure) -> ModuleVersion {
            do {
                _ = try findDir(version, hash: info.hash)
            } catch {
                throw fail(version, error.message)
            }
            var v = version
            if v == Self.withoutIncompatible(statVers) { v = statVers }
            let base = Self.withoutIncompatible(v)
            var incompatibleError: PluginFailure?
            if !Self.matchPathMajor(base, pathMajor) {
                if try canUseIncompatible(base) {
                    v = base + "+incompatible"
                } else if !pathMajor.isEmpty {
                    incompatibleError = fail(v, "module path includes a major version suffix, so major version must match")
                } else {
                    incompatibleError = fail(v, "module contains a go.mod file, so module path must match major version (\"\(pathPrefix)/\(SemVer.major(v) ?? "")\")")
                }
            } else if v.hasSuffix("+incompatible") {
                incompatibleError = fail(v, "+incompatible suffix not allowed: major version \(SemVer.major(v) ?? "") is compatible")
            }
            if !statVers.isEmpty, ModulePath.canonicalVersion(statVers) == statVers {
                let statBase = Self.withoutIncompatible(statVers)
                if statBase != base {
                    throw fail(statVers, "resolves to version \(v) (\(statBase) is not a tag)")
                }
            }
            if let incompatibleError { throw incompatibleError }
            return ModuleVersion(version: v, info: info)
        }

        if SemVer.isPseudoVersion(statVers) {
            let resolved = try checkCanonical(statVers)
            try validatePseudoVersion(info, statVers)
            return resolved
        }

        let tagPrefix = codeDir.isEmpty ? "" : codeDir + "/"
        // Read only when a tag list needs it (it costs a go.mod read), then kept for this conversion.
        var retracted: [GoModFile.Retraction]?
        func isRetracted(_ v: String) -> Bool {
            if retracted == nil { retracted = retractions(versions: (try? versions()) ?? []) }
            return retracted!.contains { $0.contains(v) }
        }
        func tagToVersion(_ tag: String) -> (version: String, canonical: Bool) {
            guard tag.hasPrefix(tagPrefix) else { return ("", false) }
            let trimmed = String(tag.dropFirst(tagPrefix.count))
            if SemVer.isPseudoVersion(tag) { return ("", false) }
            guard let v = SemVer.canonical(trimmed), trimmed.hasPrefix(v) else { return ("", false) }
            return (v, v == trimmed)
        }

        let fromVCS = tagToVersion(info.version)
        if fromVCS.canonical, let resolved = try? checkCanonical(fromVCS.version) { return resolved }

        var highestCanonical = "", pseudoBase = ""
        for tag in info.tags {
            let (v, canonical) = tagToVersion(tag)
            if !statVers.isEmpty, !v.isEmpty, SemVer.compare(v, statVers) == 0 {
                if canonical { return try checkCanonical(v) }
                pseudoBase = v
            }
            if canonical, SemVer.compare(highestCanonical, v) < 0, !isRetracted(v) {
                if Self.matchPathMajor(v, pathMajor) {
                    highestCanonical = v
                } else if try canUseIncompatible(v) {
                    highestCanonical = v
                }
            }
        }
        if !highestCanonical.isEmpty { return try checkCanonical(highestCanonical) }

        if pseudoBase.isEmpty {
            var highest = ""
            for tag in try mergedTags(info.hash) where tag.hasPrefix(tagPrefix) {
                let v = tagToVersion(tag).version
                guard !v.isEmpty, !isRetracted(v) else { continue }
                if !Self.matchPathMajor(v, pathMajor) {
                    guard try canUseIncompatible(v) else { continue }
                }
                let semtag = String(tag.dropFirst(tagPrefix.count))
                if SemVer.compare(semtag, highest) > 0 { highest = semtag }
            }
            if !highest.isEmpty { pseudoBase = tagToVersion(tagPrefix + highest).version }
        }
        return try checkCanonical(PseudoVersion.make(major: pseudoMajor, older: pseudoBase, unixSeconds: info.time, rev: info.short))
    }

    /// coderepo validatePseudoVersion: rev, timestamp and base tag must all agree with the repository.
    private func validatePseudoVersion(_ info: RevInfo, _ version: String) throws(PluginFailure) {
        guard let parts = PseudoVersion.parse(version) else { throw fail(version, "not a pseudo-version") }
        do {
            try ModulePath.checkPathMajor(version: version, pathMajor: pathMajor)
        } catch {
            throw fail(version, error.message)
        }
        if parts.rev != info.short {
            if parts.rev.hasPrefix(info.short) { throw fail(version, "revision is longer than canonical (expected \(info.short))") }
            if info.short.hasPrefix(parts.rev) { throw fail(version, "revision is shorter than canonical (expected \(info.short))") }
            throw fail(version, "does not match short name of revision (expected \(info.short))")
        }
        let expected = PseudoVersion.timestamp(unixSeconds: info.time)
        if parts.timestamp != expected { throw fail(version, "does not match version-control timestamp (expected \(expected))") }
        let base: String
        do {
            base = try PseudoVersion.base(Self.withoutIncompatible(version))
        } catch {
            throw fail(version, error.message)
        }
        if base.isEmpty {
            if pseudoMajor.isEmpty, SemVer.major(version) == "v1" {
                throw fail(version, "major version without preceding tag must be v0, not v1")
            }
            return
        }
        let tagPrefix = codeDir.isEmpty ? "" : codeDir + "/"
        for tag in info.tags where String(tag.dropFirst(tag.hasPrefix(tagPrefix) ? tagPrefix.count : 0)) == base {
            throw fail(version, "tag (\(tag)) found on revision \(info.short) is already canonical, so should not be replaced with a pseudo-version derived from that tag")
        }
        var lastTag = ""
        for (tag, hash) in refs.tags.sorted(by: { $0.key < $1.key }) where tag.hasPrefix(tagPrefix + base) {
            guard SemVer.compare(String(tag.dropFirst(tagPrefix.count)), base) == 0 else { continue }
            lastTag = tag
            if try isAncestor(hash, of: info.hash) { return }
        }
        if lastTag.isEmpty { throw fail(version, "preceding tag (\(base)) not found") }
        throw fail(version, "revision \(info.short) is not a descendent of preceding tag (\(lastTag))")
    }
}
