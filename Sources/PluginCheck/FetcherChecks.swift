import HostSupport
import PluginHost
import Dispatch
import FoundationEssentials
import Glibc
import GoModule
import PluginABI

/// The fetcher conformance checks, run at run time against one instance and one module version the
/// fetcher's source is known to have.
package struct FetcherChecks {
    package let fetcher: InstrumentedFetcher
    package let report: CheckReport
    /// A module the source has, and one of its canonical versions.
    package let module: String
    package let version: String
    /// A module the source surely lacks.
    package let missingModule: String

    package init(fetcher: InstrumentedFetcher, report: CheckReport, module: String, version: String, runID: String) {
        self.fetcher = fetcher
        self.report = report
        self.module = module
        self.version = version
        // Beside the real module, so a fetcher that serves only some hosts still asks its source about it.
        missingModule = module + "/athens-plugin-check-missing-r" + runID
    }

    /// Runs every check, in order, recording one row each.
    package func run() {
        let target = "\(module)@\(version)"
        var fetched: InstrumentedFetcher.Fetched?
        report.check("fetcher: fetch writes all three files") {
            let (result, error) = try fetcher.fetch(module, version)
            if let error { throw CheckFailure("\(error)") }
            for (name, sink) in [(".info", result.info), (".mod", result.mod), (".zip", result.zip)] {
                if sink.refused { throw CheckFailure("ATH_OK although the \(name) sink refused a write (over \(sink.limit) bytes?)") }
                if sink.size == 0 { throw CheckFailure("ATH_OK with an empty \(name)") }
            }
            fetched = result
            return "\(target): .info \(result.info.size) B, .mod \(result.mod.size) B, .zip \(result.zip.size) B"
        }
        report.check("fetcher: .info names the version") {
            guard let fetched else { throw CheckFailure("no fetch to check (see above)") }
            do throws(ValidationError) {
                try ArtifactValidator.checkInfo(fetched.info.bytes, version: version)
            } catch {
                throw CheckFailure("produced \(error.message)")
            }
            return "\"Version\":\"\(version)\""
        }
        report.check("fetcher: .mod declares the module's path") {
            guard let fetched else { throw CheckFailure("no fetch to check (see above)") }
            do throws(ValidationError) {
                try ArtifactValidator.checkMod(fetched.mod.bytes, module: module)
            } catch {
                throw CheckFailure("produced \(error.message)")
            }
            return "module \(module)"
        }
        report.check("fetcher: zip passes the go command's checks") {
            guard let fetched, let fd = fetched.zip.fd else { throw CheckFailure("no fetch to check (see above)") }
            do throws(ZipError) {
                let entries = try ArtifactValidator.checkZip(fd: fd, size: fetched.zip.size, module: module, version: version)
                return "\(entries.count) entries under \(module)@\(version)/, each read in full (CRC-32 and sizes agree)"
            } catch {
                throw CheckFailure("invalid module zip: \(error.message)")
            }
        }
        report.check("fetcher: list gives canonical versions") { try listIsCanonical() }
        report.check("fetcher: resolve \"latest\" gives a canonical version") { try resolveLatest() }
        report.check("fetcher: resolve of the version gives it back") {
            let info = try fetcher.resolve(module, version)
            do throws(ValidationError) {
                try ArtifactValidator.checkInfo(info, version: version)
            } catch {
                throw CheckFailure("resolve(\"\(version)\") produced \(error.message)")
            }
            return "resolve(\"\(version)\") names \(version)"
        }
        report.check("fetcher: unknown module is not found") { try unknownModule() }
        report.check("fetcher: unknown version is not found") { try unknownVersion() }
        report.check("fetcher: a refused sink makes fetch fail") { try refusals() }
        report.check("fetcher: concurrent fetches agree") {
            guard let fetched else { throw CheckFailure("no fetch to compare with (see above)") }
            return try concurrentFetches(matching: fetched)
        }
        report.check("fetcher: error messages NUL-terminated, bounded") {
            if let problems = fetcher.errors.problems.summary { throw CheckFailure(problems) }
            return "\(fetcher.errors.auditedCalls) failing calls audited"
        }
        report.check("fetcher: sinks used serially, not after a refusal") {
            if let problems = fetcher.sinkProblems.summary { throw CheckFailure(problems) }
            return "no overlapping writes; nothing written after a refusal"
        }
    }

    private func listIsCanonical() throws -> String {
        let versions = try fetcher.list(module)
        for listed in versions {
            guard ModulePath.canonicalVersion(listed) == listed else { throw CheckFailure("lists \"\(listed)\", which is not a canonical version") }
            guard !SemVer.isPseudoVersion(listed) else { throw CheckFailure("lists the pseudo-version \(listed); list gives tagged versions only") }
        }
        if !SemVer.isPseudoVersion(version) && !versions.contains(version) {
            throw CheckFailure("\(version) can be fetched but is not listed (\(versions.count) versions listed)")
        }
        let duplicates = versions.count - Set(versions).count
        return "\(versions.count) versions" + (duplicates > 0 ? " (note: \(duplicates) listed twice)" : "")
    }

    private func resolveLatest() throws -> String {
        let info: [UInt8]
        do {
            info = try fetcher.resolve(module, "latest")
        } catch let error as PluginCallError where error.isNotFound {
            // A source without @latest (a static GOPROXY tree) may say so: athens then resolves the highest
            // listed version instead, as the go command does. That path must work.
            let listed = try fetcher.list(module).filter { ModulePath.canonicalVersion($0) == $0 && !SemVer.isPseudoVersion($0) }
            guard let best = LatestVersion.pick(listed) else {
                return "ATH_NOT_FOUND and no tagged versions: athens answers 404 for @latest"
            }
            let bestInfo = try fetcher.resolve(module, best)
            do throws(ValidationError) {
                try ArtifactValidator.checkInfo(bestInfo, version: best)
            } catch {
                throw CheckFailure("latest is ATH_NOT_FOUND and the fallback resolve(\"\(best)\") produced \(error.message)")
            }
            return "ATH_NOT_FOUND (no @latest in the source); athens falls back to the highest listed version, \(best)"
        }
        do throws(ValidationError) {
            let named = try ArtifactValidator.checkInfo(info, version: nil)
            return "latest is \(named)"
        } catch {
            throw CheckFailure("resolve produced \(error.message)")
        }
    }

    private func unknownModule() throws -> String {
        let (_, fetchError) = try fetcher.fetch(missingModule, version)
        guard let fetchError else { throw CheckFailure("fetch of \(missingModule)@\(version) succeeded") }
        guard fetchError.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(fetchError)") }
        do {
            let versions = try fetcher.list(missingModule)
            throw CheckFailure("list of \(missingModule) answered ATH_OK with \(versions.count) versions")
        } catch let error as PluginCallError {
            guard error.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(error)") }
        }
        do {
            _ = try fetcher.resolve(missingModule, "latest")
            throw CheckFailure("resolve of \(missingModule) answered ATH_OK")
        } catch let error as PluginCallError {
            guard error.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(error)") }
        }
        return "fetch, list and resolve of \(missingModule) answer ATH_NOT_FOUND"
    }

    /// A version of the module's major that no source has.
    package var missingVersion: String {
        let major = SemVer.major(version) ?? "v0"
        return major + ".987654321.0" + (version.hasSuffix("+incompatible") ? "+incompatible" : "")
    }

    private func unknownVersion() throws -> String {
        let missing = missingVersion
        let (_, fetchError) = try fetcher.fetch(module, missing)
        guard let fetchError else { throw CheckFailure("fetch of \(module)@\(missing) succeeded") }
        guard fetchError.isNotFound else { throw CheckFailure("expected ATH_NOT_FOUND: \(fetchError)") }
        do {
            _ = try fetcher.resolve(module, missing)
            throw CheckFailure("resolve(\"\(missing)\") answered ATH_OK")
        } catch let error as PluginCallError {
            guard error.isNotFound else { throw CheckFailure("resolve(\"\(missing)\"): expected ATH_NOT_FOUND: \(error)") }
        }
        return "fetch and resolve of \(missing) answer ATH_NOT_FOUND"
    }

    private func refusals() throws -> String {
        var answers: [String] = []
        for artifact in [Artifact.info, .mod, .zip] {
            let (_, error) = try fetcher.fetch(module, version, refuse: artifact)
            guard let error else { throw CheckFailure("fetch answered ATH_OK although the \(artifact) sink refused a write") }
            answers.append("\(artifact): \(PluginCallError.name(of: error.status))")
        }
        let unexpected = answers.filter { !$0.hasSuffix("ATH_INVALID") }
        return answers.joined(separator: ", ") + (unexpected.isEmpty ? "" : " (note: the ABI asks for ATH_INVALID)")
    }

    private func concurrentFetches(matching first: InstrumentedFetcher.Fetched) throws -> String {
        let problems = ProblemLog()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do {
                let (result, error) = try fetcher.fetch(module, version)
                if let error { problems.add("\(error)"); return }
                if result.info.bytes != first.info.bytes || result.mod.bytes != first.mod.bytes {
                    problems.add("a concurrent fetch gave a different .info or .mod")
                }
                if result.zip.size != first.zip.size || result.zip.hash != first.zip.hash {
                    problems.add("a concurrent fetch gave a different .zip (\(result.zip.size) bytes)")
                }
            } catch {
                problems.add("\(error)")
            }
        }
        if let summary = problems.summary { throw CheckFailure(summary) }
        return "4 parallel fetches, identical bytes"
    }
}
