// CodeRepo: where a version's module lives in the repository (root, major subdirectory, or +incompatible) and
// its go.mod (modfetch/coderepo.go findDir and GoMod).
import Basics
import FoundationEssentials
import Glibc
import GoModule
import PluginKit

extension CodeRepo {
    /// coderepo findDir: the commit, the module's directory in the repository, and its go.mod (nil if implicit).
    func findDir(_ version: String, hash: String? = nil) throws(VersionError) -> (hash: String, dir: String, goMod: [UInt8]?) {
        let resolved: String
        if let hash {
            resolved = hash
        } else {
            let info: RevInfo?
            do { info = try gitStat(revToRev(version)) } catch { throw VersionError(error.message) }
            guard let info else { throw VersionError("unknown revision \(revToRev(version))") }
            resolved = info.hash
        }
        func read(_ path: String) throws(VersionError) -> [UInt8]? {
            do { return try readFile(resolved, path) } catch { throw VersionError(error.message) }
        }
        let file1 = codeDir.isEmpty ? "go.mod" : codeDir + "/go.mod"
        let goMod1 = try read(file1)
        let modulePath1 = goMod1.map { GoModFile.modulePath($0) } ?? ""
        let found1 = goMod1 != nil && isMajor(modulePath1)

        var file2 = ""
        if !pathMajor.isEmpty, codeRoot != modulePath, !pathMajor.hasPrefix(".") {
            let dir2 = (codeDir.isEmpty ? "" : codeDir + "/") + String(pathMajor.dropFirst())
            file2 = dir2 + "/go.mod"
            let goMod2 = try read(file2)
            let modulePath2 = goMod2.map { GoModFile.modulePath($0) } ?? ""
            let found2 = goMod2 != nil && isMajor(modulePath2)
            if found1 && found2 {
                throw VersionError("\(pathPrefix)/\(file1) and ...\(pathMajor)/go.mod both have ...\(pathMajor) module paths at revision \(resolved.prefix(12))")
            }
            if found2 { return (resolved, dir2, goMod2) }
            if goMod2 != nil {
                if modulePath2.isEmpty { throw VersionError("\(codeRoot)/\(file2) is missing module path at revision \(resolved.prefix(12))") }
                throw VersionError("\(codeRoot)/\(file2) has non-...\(pathMajor) module path \"\(modulePath2)\" at revision \(resolved.prefix(12))")
            }
        }
        if found1 { return (resolved, codeDir, goMod1) }
        if goMod1 != nil {
            let suffix = file2.isEmpty ? "" : " (and ...\(pathMajor)/go.mod does not exist)"
            if modulePath1.isEmpty { throw VersionError("\(file1) is missing module path\(suffix) at revision \(resolved.prefix(12))") }
            if !pathMajor.isEmpty { throw VersionError("\(file1) has non-...\(pathMajor) module path \"\(modulePath1)\"\(suffix) at revision \(resolved.prefix(12))") }
            throw VersionError("\(file1) has post-\(SemVer.major(version) ?? "") module path \"\(modulePath1)\"\(suffix) at revision \(resolved.prefix(12))")
        }
        if codeDir.isEmpty && (pathMajor.isEmpty || pathMajor.hasPrefix(".")) { return (resolved, "", nil) }
        if !file2.isEmpty {
            throw VersionError("missing \(pathPrefix)/go.mod and ...\(pathMajor)/go.mod at revision \(resolved.prefix(12))")
        }
        throw VersionError("missing \(pathPrefix)/go.mod at revision \(resolved.prefix(12))")
    }

    /// coderepo isMajor: whether a go.mod's module path fits this module's major suffix.
    private func isMajor(_ path: String) -> Bool {
        if path.isEmpty { return false }
        guard let split = ModulePath.splitPathVersion(path) else { return false }
        if pathMajor.isEmpty {
            // A go.mod without a suffix (or gopkg.in .v0/.v1) may live at v0/v1.
            switch split.pathMajor {
            case "", ".v0", ".v1": return true
            default: return false
            }
        }
        if split.pathMajor.isEmpty { return false }
        return pathMajor.dropFirst() == split.pathMajor.dropFirst()
    }

    /// coderepo GoMod: the module's go.mod at `version`, or the synthesised `module <path>` line.
    func goMod(_ version: String) throws(PluginFailure) -> [UInt8] {
        let found: (hash: String, dir: String, goMod: [UInt8]?)
        do {
            found = try findDir(version)
        } catch {
            throw fail(version, error.message)
        }
        if let goMod = found.goMod { return goMod }
        if let data = try readFile(found.hash, found.dir.isEmpty ? "go.mod" : found.dir + "/go.mod") { return data }
        return Array("module \(Self.autoQuote(modulePath))\n".utf8)
    }

    /// modfile.AutoQuote: quotes a path that holds space, quotes, comments or non-printables.
    static func autoQuote(_ path: String) -> String {
        let needsQuote = path.isEmpty || path.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "\"" || scalar == "'" || scalar == "`" || scalar == "(" || scalar == ")"
                || scalar == "[" || scalar == "]" || scalar == "{" || scalar == "}" || scalar == ","
                || scalar.value < 0x20 || scalar.value == 0x7F
        } || path.contains("//") || path.contains("/*")
        guard needsQuote else { return path }
        return "\"" + path.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
    }
}
