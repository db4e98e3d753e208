// GitFetcher: serves module versions straight from git repositories, as the go command's direct mode would
// (same versions, same .info/.mod, zips with the same h1: hash). One bare mirror per repository under
// cacheDirectory, fetched to update; git runs without a shell, with deadlines; zips stream through zlib.
import Foundation
import GoModule
import PluginKit

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    let registered = PluginEntry.fetcher(name: "GitFetcher", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try GitFetcher(config: config, raw: RawConfig.take())
    }
    guard let registered else { return nil }
    return RawConfig.descriptor(wrapping: registered)
}

/// PluginConfig reads strings and numbers only; `repositories`, `insecureHosts` and `hostAddresses` are
/// JSON arrays and objects. `create` runs alone (athens_plugin.h), so the raw text is kept here for the
/// factory that PluginKit's `create` calls right after.
enum RawConfig {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var pending: String?
    nonisolated(unsafe) private static var wrapped: UnsafeMutablePointer<ath_plugin>?
    nonisolated(unsafe) private static var pluginKitCreate: (@convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<ath_error>) -> ath_status)?

    /// The raw config of the `create` call in progress.
    static func take() -> String {
        lock.withLock {
            defer { pending = nil }
            return pending ?? "{}"
        }
    }

    /// PluginKit's descriptor with `create` wrapped to keep the raw config first; built once.
    static func descriptor(wrapping registered: UnsafePointer<ath_plugin>) -> UnsafePointer<ath_plugin> {
        lock.withLock {
            if let wrapped { return UnsafePointer(wrapped) }
            pluginKitCreate = registered.pointee.create
            let copy = UnsafeMutablePointer<ath_plugin>.allocate(capacity: 1)
            copy.initialize(to: registered.pointee)
            copy.pointee.create = { config, out, err in
                RawConfig.lock.withLock { RawConfig.pending = String(cString: config) }
                return RawConfig.pluginKitCreate!(config, out, err)
            }
            wrapped = copy
            return UnsafePointer(copy)
        }
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
    init(config: PluginConfig, raw: String) throws(PluginFailure) {
        let cacheDirectory = try config.string("cacheDirectory")
        let refresh = try config.number("refreshSeconds") ?? 30
        let gitTimeout = try config.number("gitTimeoutSeconds") ?? 600
        let discoveryTimeout = try config.number("discoveryTimeoutSeconds") ?? 15
        let level = try config.number("compressionLevel") ?? 6
        let gitPath = try config.string("gitPath")
        // Read through the raw JSON below; touching them here marks them known for finish().
        for key in ["repositories", "insecureHosts", "hostAddresses"] { _ = try? config.string(key) }
        try config.finish()
        guard let cacheDirectory, cacheDirectory.hasPrefix("/") else {
            throw .invalid("config.cacheDirectory: required, an absolute path (the folder for the bare mirrors)")
        }
        guard gitTimeout > 0, gitTimeout <= 86_400 else { throw .invalid("config.gitTimeoutSeconds: must be more than 0 and at most 86400") }
        guard discoveryTimeout > 0, discoveryTimeout <= 3600 else { throw .invalid("config.discoveryTimeoutSeconds: must be more than 0 and at most 3600") }
        guard refresh <= 86_400 * 365 else { throw .invalid("config.refreshSeconds: must be at most a year") }
        guard level == level.rounded(), level <= 9 else { throw .invalid("config.compressionLevel: must be an integer from 0 to 9") }

        guard let object = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: Any] else {
            throw .invalid("config: not a JSON object")
        }
        var rules: [RepositoryRule] = []
        if let value = object["repositories"], !(value is NSNull) {
            guard let list = value as? [Any] else { throw .invalid("config.repositories: must be a list of {\"root\", \"url\"} objects") }
            for (index, item) in list.enumerated() {
                guard let entry = item as? [String: Any], let root = entry["root"] as? String, let url = entry["url"] as? String else {
                    throw .invalid("config.repositories[\(index)]: must be an object with string \"root\" and \"url\"")
                }
                if let unknown = entry.keys.sorted().first(where: { $0 != "root" && $0 != "url" }) {
                    throw .invalid("config.repositories[\(index)].\(unknown): unknown key")
                }
                do {
                    try ModulePath.check(root)
                } catch {
                    throw .invalid("config.repositories[\(index)].root: \(error.message)")
                }
                guard !url.isEmpty, !url.hasPrefix("-") else { throw .invalid("config.repositories[\(index)].url: must be a git URL") }
                rules.append(RepositoryRule(root: root, url: url))
            }
        }
        var insecure = ""
        if let value = object["insecureHosts"], !(value is NSNull) {
            if let text = value as? String {
                insecure = text
            } else if let list = value as? [Any], list.allSatisfy({ $0 is String }) {
                insecure = (list as! [String]).joined(separator: ",")
            } else {
                throw .invalid("config.insecureHosts: must be a list of host patterns (GOINSECURE syntax) or a comma-separated string")
            }
        }
        var hostAddresses: [String: String] = [:]
        if let value = object["hostAddresses"], !(value is NSNull) {
            guard let map = value as? [String: Any], map.values.allSatisfy({ $0 is String }) else {
                throw .invalid("config.hostAddresses: must be an object mapping a host to \"address:port\"")
            }
            hostAddresses = map as! [String: String]
        }

        let git = GitRunner(executable: try GitRunner.locate(configured: gitPath), networkTimeout: gitTimeout, localTimeout: gitTimeout)
        do {
            try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw .invalid("config.cacheDirectory: cannot create \(cacheDirectory): \(error.localizedDescription)")
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
