// GitFetcher: serves module versions straight from git repositories, as the go command's direct mode would
// (same versions, same .info/.mod, zips with the same h1: hash). One bare mirror per repository under
// cacheDirectory, fetched to update; git runs without a shell, with deadlines; zips stream through zlib.
import Basics
import FoundationEssentials
import Glibc
import GoModule
import PluginKit

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.fetcher(name: "GitFetcher", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try GitFetcher(config: config)
    }
}

/// A fetcher backed by git repositories.
final class GitFetcher: FetcherBackend {
    private let finder: RepoFinder
    private let mirrors: MirrorStore
    /// A mirror older than this is fetched before answering list, latest and branch queries.
    private let refreshSeconds: Double
    private let compressionLevel: Int32

    /// Reads the config (see the README's GitFetcher section); refuses unknown keys.
    init(config: PluginConfig) throws(PluginFailure) {
        let cacheDirectory = try config.string("cacheDirectory")
        let refresh = try config.number("refreshSeconds") ?? 30
        let gitTimeout = try config.number("gitTimeoutSeconds") ?? 600
        let discoveryTimeout = try config.number("discoveryTimeoutSeconds") ?? 15
        let level = try config.number("compressionLevel") ?? 6
        let gitPath = try config.string("gitPath")
        let entryShape = #"an object with string "root" and "url""#
        let repositories = try config.objects("repositories", expected: #"a list of {"root", "url"} objects"#, expectedEach: entryShape)
        var insecure = ""
        if case .string(let text)? = config.value("insecureHosts") {
            insecure = text
        } else if let list = try config.strings("insecureHosts", expected: "a list of host patterns (GOINSECURE syntax) or a comma-separated string") {
            insecure = list.joined(separator: ",")
        }
        let mapShape = #"an object mapping a host to "address:port""#
        var hostAddresses: [String: String] = [:]
        if let map = try config.object("hostAddresses", expected: mapShape) {
            for host in map.keys {
                guard let address = try? map.string(host) else { throw config.error("hostAddresses", "must be \(mapShape)") }
                hostAddresses[host] = address
            }
        }
        var entries: [(root: String, url: String)] = []
        for (index, entry) in (repositories ?? []).enumerated() {
            // A root or url that is missing or not a string gets the entry's shape, as it always did.
            guard let root = try? entry.string("root"), let url = try? entry.string("url") else {
                throw .invalid("config.repositories[\(index)]: must be \(entryShape)")
            }
            entries.append((root, url))
        }
        try config.finish()
        guard let cacheDirectory, cacheDirectory.hasPrefix("/") else {
            throw .invalid("config.cacheDirectory: required, an absolute path (the folder for the bare mirrors)")
        }
        guard gitTimeout > 0, gitTimeout <= 86_400 else { throw .invalid("config.gitTimeoutSeconds: must be more than 0 and at most 86400") }
        guard discoveryTimeout > 0, discoveryTimeout <= 3600 else { throw .invalid("config.discoveryTimeoutSeconds: must be more than 0 and at most 3600") }
        guard refresh <= 86_400 * 365 else { throw .invalid("config.refreshSeconds: must be at most a year") }
        guard level == level.rounded(), level <= 9 else { throw .invalid("config.compressionLevel: must be an integer from 0 to 9") }

        var rules: [RepositoryRule] = []
        for (index, (root, url)) in entries.enumerated() {
            do {
                try ModulePath.check(root)
            } catch {
                throw .invalid("config.repositories[\(index)].root: \(error.message)")
            }
            guard !url.isEmpty, !url.hasPrefix("-") else { throw .invalid("config.repositories[\(index)].url: must be a git URL") }
            rules.append(RepositoryRule(root: root, url: url))
        }

        let git = GitRunner(executable: try GitRunner.locate(configured: gitPath), networkTimeout: gitTimeout, localTimeout: gitTimeout)
        do {
            try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw .invalid("config.cacheDirectory: cannot create \(cacheDirectory): \(error.systemDescription)")
        }
        finder = RepoFinder(rules: rules, insecure: insecure, hostAddresses: hostAddresses, timeout: discoveryTimeout)
        mirrors = MirrorStore(root: cacheDirectory, git: git)
        refreshSeconds = refresh
        compressionLevel = Int32(level)
    }

    /// What a request needs from the mirror before it can be answered.
    private enum Freshness {
        /// An immutable name (a tag version, a commit): use the mirror as it is, fetch only if it is missing there.
        case exact
        /// A moving answer (list, latest, a branch): fetch first if the mirror is older than refreshSeconds.
        case recent
    }

    /// Runs `body` on the module's repository, updated as `freshness` says; an exact request that is not
    /// found is retried once after a fetch (a tag pushed since the last one).
    private func withRepo<T>(_ module: String, _ subject: String, _ freshness: Freshness,
                             _ body: (CodeRepo) throws(PluginFailure) -> T) throws(PluginFailure) -> T {
        let location = try finder.find(module)
        let mirror = mirrors.mirror(for: location.url)
        do {
            try mirror.update(maxAge: freshness == .recent ? refreshSeconds : nil, subject: subject)
        } catch where mirror.exists {
            // The remote is unreachable (or gone) but we have a mirror: answer from it, as a proxy's cache
            // should. Without a mirror (the first clone failed) the failure stands.
        }
        do {
            return try body(CodeRepo(modulePath: module, codeRoot: location.root, mirror: mirror))
        } catch let failure where failure.status == ATH_NOT_FOUND && freshness == .exact {
            try mirror.update(maxAge: refreshSeconds, subject: subject)
            return try body(CodeRepo(modulePath: module, codeRoot: location.root, mirror: mirror))
        }
    }

    func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink) throws(PluginFailure) {
        let subject = "\(module)@\(version)"
        guard ModulePath.canonicalVersion(version) == version else { throw .invalid("\(subject): version is not canonical") }
        let level = compressionLevel
        try withRepo(module, subject, .exact) { repo throws(PluginFailure) in
            let resolved = try repo.stat(version)
            guard resolved.version == version else {
                throw .notFound("\(subject): invalid version: resolves to \(resolved.version)")
            }
            let goMod = try repo.goMod(version)
            let found: (hash: String, dir: String, goMod: [UInt8]?)
            do throws(VersionError) {
                found = try repo.findDir(version, hash: resolved.info.hash)
            } catch {
                throw .notFound("\(subject): invalid version: \(error.message)")
            }
            try info.write(Array(resolved.infoJSON.utf8))
            try mod.write(goMod)
            try ModuleZipBuilder.write(repo: repo, version: version, hash: found.hash, dir: found.dir, level: level) { bytes throws(PluginFailure) in
                try zip.write(bytes)
            }
        }
    }

    func list(module: String) throws(PluginFailure) -> [String] {
        try withRepo(module, "\(module)/@v/list", .recent) { repo throws(PluginFailure) in try repo.versions() }
    }

    func resolve(module: String, query: String, info: ByteSink) throws(PluginFailure) {
        let subject = "\(module)@\(query)"
        // Tags and commits do not move; "latest" and branches do.
        let exact = (ModulePath.canonicalVersion(query) == query) || (query.utf8.count >= 7 && CodeRepo.allHex(query))
        let resolved = try withRepo(module, subject, exact ? .exact : .recent) { repo throws(PluginFailure) in try repo.stat(query) }
        // A canonical version must come back as itself — unless it does not fit the path (v3.2.0 of a path
        // without /v3), which direct mode turns into its +incompatible twin (coderepo convert).
        if ModulePath.canonicalVersion(query) == query, resolved.version != query,
           ModulePath.isCanonical(path: module, version: query) || resolved.version != query + "+incompatible" {
            throw .notFound("\(subject): invalid version: resolves to \(resolved.version)")
        }
        try info.write(Array(resolved.infoJSON.utf8))
    }
}
