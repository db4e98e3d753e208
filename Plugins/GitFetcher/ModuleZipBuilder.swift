// ModuleZipBuilder: the module zip of one version, as the go command's direct mode makes it (coderepo.go Zip):
// the files `git archive` gives for the module's directory, the repository-root LICENSE for a module in a
// subdirectory that has none, then zip.Create's rules. Names come first from `git ls-tree` (so nested modules
// and collisions are known before any byte is written); contents then stream from `git archive --format=tar`
// through zlib into the host's sink.
import GoModule
import PluginKit

enum ModuleZipBuilder {
    /// Writes the zip of `repo` at `version` (commit `hash`, module directory `dir`) into `sink`.
    static func write(repo: CodeRepo, version: String, hash: String, dir: String, level: Int32,
                      sink: @escaping ZipStreamWriter.Output) throws(PluginFailure) {
        let subject = "\(repo.modulePath)@\(version)"
        let prefix = dir.isEmpty ? "" : dir + "/"
        var arguments = ["ls-tree", "-r", "-z", "--full-tree", hash]
        if !dir.isEmpty { arguments += ["--", dir] }
        let listing = try repo.mirror.run(arguments, what: "\(subject): git ls-tree")
        guard listing.status == 0 else { throw .unavailable("\(subject): git ls-tree failed: \(listing.stderr)") }

        var files: [(path: String, kind: ModuleZipPlan.Kind)] = []
        var haveLICENSE = false
        for record in listing.stdout.split(separator: 0) {
            guard let tab = record.firstIndex(of: 0x09) else { continue }
            let header = record[record.startIndex..<tab].split(separator: 0x20)
            let rawPath = record[(tab + 1)...]
            guard header.count == 3 else { continue }
            let mode = String(decoding: header[0], as: UTF8.self)
            // Submodules: git archive writes them as directories, which the go command skips.
            if mode == "160000" { continue }
            guard let path = String(validating: rawPath, as: UTF8.self) else {
                throw .notFound("\(subject): create zip: malformed file path: invalid UTF-8 in \(String(decoding: rawPath, as: UTF8.self))")
            }
            guard path.hasPrefix(prefix) else { continue }
            let relative = String(path.dropFirst(prefix.count))
            if relative.isEmpty { continue }
            if relative == "LICENSE" { haveLICENSE = true }
            let kind: ModuleZipPlan.Kind = mode == "120000" ? .symlink : (mode == "100644" || mode == "100755" ? .regular : .other)
            files.append((relative, kind))
        }

        // A module below the repository root gets the root's LICENSE if it has none (ref/mod#vcs-license).
        var rootLicense: [UInt8]?
        if !haveLICENSE && !dir.isEmpty, let license = try repo.readFile(hash, "LICENSE") {
            rootLicense = license
            files.append(("LICENSE", .regular))
        }

        let goVersion = try files.contains { $0.path == "go.mod" && $0.kind == .regular }
            ? repo.readFile(hash, prefix + "go.mod").flatMap { GoModFile.goVersion($0) } : nil
        let valid: [String]
        do {
            valid = try ModuleZipPlan.plan(files: files, goVersion: goVersion)
        } catch {
            throw .notFound("\(subject): create zip: \(error.message)")
        }
        var pending = Set(valid.map { Array($0.utf8) })
        let licenseFromRoot = rootLicense != nil && pending.contains(Array("LICENSE".utf8))
        if licenseFromRoot { pending.remove(Array("LICENSE".utf8)) }

        let writer = try ZipStreamWriter(level: level, output: sink)
        let entryPrefix = "\(repo.modulePath)@\(version)/"
        var budget = ModuleZipPlan.SizeBudget()
        var failure: PluginFailure?
        var reader = TarReader(
            member: { rawPath, kind, size throws(PluginFailure) in
                guard kind == .regular, rawPath.starts(with: prefix.utf8) else { return false }
                let relative = Array(rawPath.dropFirst(prefix.utf8.count))
                guard pending.remove(relative) != nil else { return false }
                let name = String(decoding: relative, as: UTF8.self)
                do throws(ZipError) {
                    try budget.add(path: name, size: size)
                } catch {
                    throw .notFound("\(subject): create zip: \(error.message)")
                }
                try writer.beginFile(entryPrefix + name)
                return true
            },
            content: { bytes throws(PluginFailure) in try writer.write(bytes) },
            memberEnd: { () throws(PluginFailure) in try writer.endFile() })
        var archive = ["-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=tar", hash]
        if !dir.isEmpty { archive += ["--", dir] }
        let result = try repo.mirror.run(archive, what: "\(subject): git archive") { chunk throws(PluginFailure) in
            do throws(PluginFailure) {
                try reader.feed(chunk)
            } catch {
                failure = error
                throw error
            }
        }
        if let failure { throw failure }
        guard result.status == 0 else { throw .unavailable("\(subject): git archive failed: \(result.stderr)") }
        if let rootLicense, licenseFromRoot {
            do {
                try budget.add(path: "LICENSE", size: UInt64(rootLicense.count))
            } catch {
                throw .notFound("\(subject): create zip: \(error.message)")
            }
            try writer.beginFile(entryPrefix + "LICENSE")
            var licenseFailure: PluginFailure?
            rootLicense.withUnsafeBytes { raw in
                do throws(PluginFailure) { try writer.write(raw) } catch { licenseFailure = error }
            }
            if let licenseFailure { throw licenseFailure }
            try writer.endFile()
        }
        guard pending.isEmpty else {
            throw .internal("\(subject): git archive did not contain \(pending.count) file(s) git ls-tree listed")
        }
        try writer.finish()
    }
}
