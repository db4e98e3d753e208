import Basics
import HostSupport
import JSON
import PluginHost
import SumDB
import FoundationEssentials
import Glibc

/// A manifest error: one line naming the key and what is wrong with it.
package struct ManifestError: Error, Equatable, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// The config manifest, read once at start-up; the request path is assembled from it (see main.swift).
/// The schema is documented in README.md; keys are stable.
package struct Manifest {
    /// A plugin to load and the JSON config to create it with.
    package struct PluginUse: Equatable {
        /// Plugin name ("MemoryStorage" → <pluginDirectory>/libMemoryStorage.so) or a path to a .so.
        package var plugin: String
        /// The plugin's config object, re-serialized as JSON text.
        package var configJSON: String
    }

    /// A fetcher with the name routing rules and logs use.
    package struct FetcherUse: Equatable {
        package var name: String
        package var use: PluginUse
    }

    /// Address to listen on; stored in `server.listen`.
    package var listen: String {
        get { server.listen }
        set { server.listen = newValue }
    }
    /// Where plugins named without a path are found; default: the folder of the athens executable.
    package var pluginDirectory: String
    package var storage: PluginUse
    /// Stored files answered with `302` to the storage's `url` (`storage.serve` "redirect"); empty: bytes.
    package var storageRedirects: Set<Artifact> = []
    package var fetchers: [FetcherUse]
    /// Where fetched zips are spooled while they are validated.
    package var spoolDirectory = temporaryDirectory()
    /// Threads that serve misses (they wait for the stash; fetches run on stash pool workers) and waiting room before 503.
    package var downloadWorkers = 32
    package var downloadQueue = 1024
    package var server = ServerSettings()
    package var logLevel = "info"

    /// A stasher wrapper, applied in manifest order (the first listed is the outermost).
    package enum StashWrapper: Equatable {
        /// One fetch per module@version at a time; concurrent callers share its result.
        case singleflight
        /// At most `workers` fetch+save at once.
        case pool(workers: Int)
    }
    /// Seconds a request waits for a fetch+save (the fetch goes on and is stored if it completes).
    package var stashTimeout: Double = 600
    package var stashWrappers: [StashWrapper] = [.singleflight, .pool(workers: 10)]
    /// Seconds a stash nobody waits for any more goes on for a retry to join before it is cancelled (`StashChain`).
    package var stashAbandonGrace = StashChain.defaultAbandonGrace
    /// Seconds a fetch and its save may run in all (the plugins' deadline); nil: `StashChain.defaultFetchTimeout`.
    package var stashFetchTimeout: Double?
    /// The lock plugin a `singleflight` wrapper names (`"lock": {...}`): its flights then coordinate across processes.
    package var stashLock: LockUse?
    package var rules: [RoutingRule] = []
    /// The fetcher of the default route; nil: every fetcher in order.
    package var defaultFetcher: String?
    package var downloadMode = DownloadMode.sync
    package var downloadURL: String?
    package var networkMode = NetworkMode.fallback
    /// Seconds a fetcher's list/@latest answer is reused.
    package var listCacheSeconds: Double = 60
    /// Checksum databases proxied under /sumdb/<name>/: name and base URL.
    package var sumDBs: [(name: String, url: String)] = [("sum.golang.org", "https://sum.golang.org")]
    package var noSumPatterns = ""
    /// In-memory cache of small stored files (.info, .mod, small zips): total and per-file bytes.
    package var cacheMaxBytes = 64 << 20
    package var cacheMaxFileBytes = 64 << 10
    /// "logfmt" or "json".
    package var logFormat = "logfmt"
    /// One log line per request.
    package var accessLog = true
    /// Credentials required on every route but /healthz and /readyz.
    package var basicAuth: (user: String, password: String)?
    /// The admin API's bearer token (`admin.token` or the contents of `admin.tokenFile`); nil: the API is off.
    package var adminToken: String?
    /// The checksum database `verify` and ingest verification use (`checksumDB`, or `admin.checksumDB`).
    package var checksumDB: ChecksumDBUse?
    /// The admin API's limits: prefetch concurrency and items, jobs kept, upload size.
    package var adminSettings = AdminSettings()
    /// Seconds SIGTERM waits for in-flight requests before exiting.
    package var shutdownTimeout: Double = 30
    /// Retention of stored versions and the last-access journal it needs; nil: neither.
    package var retention: RetentionSettings?

    /// The working default: FileStorage in ./athens-data once that plugin is built, else MemoryStorage,
    /// and the public proxy upstream.
    package static func defaultManifest(pluginDirectory: String) -> Manifest {
        let fileStorage = pluginDirectory + "/libFileStorage.so"
        let storage = FileManager.default.fileExists(atPath: fileStorage)
            ? PluginUse(plugin: "FileStorage", configJSON: #"{"root":"./athens-data"}"#)
            : PluginUse(plugin: "MemoryStorage", configJSON: "{}")
        return Manifest(pluginDirectory: pluginDirectory, storage: storage,
                        fetchers: [FetcherUse(name: "upstream", use: PluginUse(plugin: "ProxyFetcher", configJSON: #"{"url":"https://proxy.golang.org"}"#))])
    }

    /// Parses manifest JSON text over the defaults. Unknown keys and wrong types are errors naming the key.
    package static func parse(_ text: [UInt8], pluginDirectory: String) throws(ManifestError) -> Manifest {
        let root: JSONValue
        do {
            root = try JSONReader.parse(text)
        } catch {
            throw ManifestError("manifest: not valid JSON (\(error))")
        }
        var manifest = defaultManifest(pluginDirectory: pluginDirectory)
        let object = try Object(root, path: "manifest")
        if let v = try object.string("listen") { manifest.listen = v }
        if let v = try object.string("pluginDirectory") { manifest.pluginDirectory = v }
        if let v = try object.string("spoolDirectory") { manifest.spoolDirectory = v }
        if let v = try object.string("logLevel") {
            guard ["debug", "info", "error"].contains(v) else { throw ManifestError("logLevel: must be debug, info or error") }
            manifest.logLevel = v
        }
        if let storage = try object.object("storage") {
            manifest.storage = try pluginUse(storage)
            manifest.storageRedirects = try storageRedirects(serve: storage.string("serve"), redirect: storage.array("redirect"), path: storage.path)
            try storage.finish()
        }
        if let fetchers = try object.array("fetchers") {
            manifest.fetchers = []
            var names = Set<String>()
            for (index, element) in fetchers.enumerated() {
                let fetcher = try Object(element, path: "fetchers[\(index)]")
                guard let name = try fetcher.string("name"), !name.isEmpty else { throw ManifestError("fetchers[\(index)].name: required") }
                guard names.insert(name).inserted else { throw ManifestError("fetchers[\(index)].name: \"\(name)\" is used twice") }
                manifest.fetchers.append(FetcherUse(name: name, use: try pluginUse(fetcher)))
                try fetcher.finish()
            }
        }
        if let download = try object.object("download") {
            if let v = try download.int("workers", min: 1, max: 4096) { manifest.downloadWorkers = v }
            if let v = try download.int("queue", min: 0, max: 1_000_000) { manifest.downloadQueue = v }
            try download.finish()
        }
        if let server = try object.object("server") {
            if let v = try server.int("threads", min: 0, max: 1024) { manifest.server.threads = v }
            if let v = try server.int("maxConnections", min: 1, max: 10_000_000) { manifest.server.maxConnections = v }
            if let v = try server.int("maxConnectionsPerClient", min: 1, max: 10_000_000) { manifest.server.maxConnectionsPerClient = v }
            if let v = try server.seconds("headerTimeoutSeconds") { manifest.server.headerTimeout = v }
            if let v = try server.seconds("idleTimeoutSeconds") { manifest.server.idleTimeout = v }
            if let v = try server.seconds("writeTimeoutSeconds") { manifest.server.writeTimeout = v }
            if let v = try server.int("maxRequestLineBytes", min: 256, max: 1 << 20) { manifest.server.limits.maxRequestLine = v }
            if let v = try server.int("maxHeaderBytes", min: 256, max: 1 << 20) { manifest.server.limits.maxHeaderBytes = v }
            if let v = try server.int("maxHeaderCount", min: 1, max: 10_000) { manifest.server.limits.maxHeaderCount = v }
            try server.finish()
        }
        if let stash = try object.object("stash") {
            if let v = try stash.seconds("timeoutSeconds") { manifest.stashTimeout = v }
            if let v = try stash.seconds("abandonGraceSeconds", allowZero: true) { manifest.stashAbandonGrace = v }
            if let v = try stash.seconds("fetchTimeoutSeconds") {
                // Shorter than the wait, every slow fetch would fail while its callers still wait for it.
                guard v >= manifest.stashTimeout else { throw stash.error("fetchTimeoutSeconds", "must be at least stash.timeoutSeconds (\(manifest.stashTimeout))") }
                manifest.stashFetchTimeout = v
            }
            if let wrappers = try stash.array("wrappers") {
                manifest.stashWrappers = []
                for (index, element) in wrappers.enumerated() {
                    let wrapper = try Object(element, path: "\(stash.path).wrappers[\(index)]")
                    switch try wrapper.string("type") {
                    case "singleflight":
                        manifest.stashWrappers.append(.singleflight)
                        if let lock = try wrapper.object("lock") {
                            guard manifest.stashLock == nil else { throw ManifestError("\(lock.path): only one singleflight wrapper may name a lock") }
                            manifest.stashLock = try lockUse(lock)
                        }
                    case "pool": manifest.stashWrappers.append(.pool(workers: try wrapper.int("workers", min: 1, max: 4096) ?? 10))
                    default: throw ManifestError("\(wrapper.path).type: must be \"singleflight\" or \"pool\"")
                    }
                    try wrapper.finish()
                }
            }
            try stash.finish()
        }
        if let v = try object.string("downloadMode") {
            guard let mode = DownloadMode(rawValue: v) else { throw ManifestError("manifest.downloadMode: must be one of \(DownloadMode.allCases.map(\.rawValue).joined(separator: ", "))") }
            manifest.downloadMode = mode
        }
        if let v = try object.string("downloadURL") { manifest.downloadURL = v }
        if let v = try object.string("networkMode") {
            guard let mode = NetworkMode(rawValue: v) else { throw ManifestError("manifest.networkMode: must be strict, fallback or offline") }
            manifest.networkMode = mode
        }
        if let v = try object.seconds("listCacheSeconds", allowZero: true) { manifest.listCacheSeconds = v }
        if let v = try object.string("defaultFetcher") { manifest.defaultFetcher = v }
        if let rules = try object.array("rules") {
            for (index, element) in rules.enumerated() {
                let rule = try Object(element, path: "rules[\(index)]")
                guard let patterns = try rule.string("match"), !patterns.isEmpty else { throw ManifestError("rules[\(index)].match: required (e.g. \"corp.example/*\")") }
                let fetcher = try rule.string("fetcher")
                var mode: DownloadMode?
                if let v = try rule.string("mode") {
                    guard let m = DownloadMode(rawValue: v) else { throw ManifestError("rules[\(index)].mode: must be one of \(DownloadMode.allCases.map(\.rawValue).joined(separator: ", "))") }
                    mode = m
                }
                let action: RoutingRule.Action
                switch try rule.string("action") ?? "fetch" {
                case "private":
                    guard let fetcher else { throw ManifestError("rules[\(index)].fetcher: required for a private rule") }
                    action = .private(fetcher: fetcher)
                case "exclude":
                    action = .exclude
                case "fetch":
                    action = .fetch(fetcher: fetcher)
                default:
                    throw ManifestError("rules[\(index)].action: must be private, exclude or fetch")
                }
                manifest.rules.append(RoutingRule(patterns: patterns, action: action, mode: mode))
                try rule.finish()
            }
        }
        if let sumdbs = try object.array("sumdbs") {
            manifest.sumDBs = []
            for (index, element) in sumdbs.enumerated() {
                let db = try Object(element, path: "sumdbs[\(index)]")
                guard let name = try db.string("name"), !name.isEmpty, !name.contains("/") else { throw ManifestError("sumdbs[\(index)].name: required, a host name such as sum.golang.org") }
                let url = try db.string("url") ?? "https://" + name
                guard url.hasPrefix("https://") || url.hasPrefix("http://") else { throw ManifestError("sumdbs[\(index)].url: must be an http(s) URL") }
                manifest.sumDBs.append((name, url))
                try db.finish()
            }
        }
        if let v = try object.string("noSumPatterns") { manifest.noSumPatterns = v }
        if let v = try object.string("logFormat") {
            guard v == "logfmt" || v == "json" else { throw ManifestError("manifest.logFormat: must be logfmt or json") }
            manifest.logFormat = v
        }
        if let v = try object.bool("accessLog") { manifest.accessLog = v }
        if let v = try object.seconds("shutdownTimeoutSeconds", allowZero: true) { manifest.shutdownTimeout = v }
        if let auth = try object.object("basicAuth") {
            // Bytes, not Characters: ":" followed by a combining mark is not the Character ":" (fuzzed).
            guard let user = try auth.string("user"), !user.isEmpty, !user.utf8.contains(UInt8(ascii: ":")) else { throw ManifestError("manifest.basicAuth.user: required, without ':'") }
            guard let password = try auth.string("password"), !password.isEmpty else { throw ManifestError("manifest.basicAuth.password: required") }
            manifest.basicAuth = (user, password)
            try auth.finish()
        }
        if let db = try object.object("checksumDB") { manifest.checksumDB = try checksumDB(db, previous: nil) }
        if let admin = try object.object("admin") {
            manifest.adminToken = try adminToken(admin)
            manifest.server.limits.maxBodyBytes = try admin.int("maxBodyBytes", min: 1024, max: 1 << 30) ?? 1 << 20
            manifest.adminSettings.prefetchConcurrency = try admin.int("prefetchConcurrency", min: 1, max: 1024)
            if let v = try admin.int("prefetchMaxItems", min: 1, max: 1_000_000) { manifest.adminSettings.prefetchMaxItems = v }
            if let v = try admin.int("maxJobs", min: 1, max: 10_000) { manifest.adminSettings.maxJobs = v }
            if let v = try admin.int("maxUploadBytes", min: 1024, max: 1 << 40) { manifest.adminSettings.maxUploadBytes = v }
            manifest.server.limits.maxStreamedBodyBytes = manifest.adminSettings.maxUploadBytes
            if let db = try admin.object("checksumDB") { manifest.checksumDB = try checksumDB(db, previous: manifest.checksumDB) }
            try admin.finish()
        }
        if let fields = try object.object("retention") { manifest.retention = try Self.retention(fields) }
        if let cache = try object.object("cache") {
            if let v = try cache.int("maxBytes", min: 0, max: 1 << 40) { manifest.cacheMaxBytes = v }
            if let v = try cache.int("maxFileBytes", min: 0, max: 1 << 30) { manifest.cacheMaxFileBytes = v }
            try cache.finish()
        }
        try object.finish()
        try manifest.validate()
        return manifest
    }

    /// Cross-key checks: rules name configured fetchers; redirect modes have a URL.
    package func validate() throws(ManifestError) {
        let names = Set(fetchers.map(\.name))
        if let defaultFetcher, !names.contains(defaultFetcher) {
            throw ManifestError("manifest.defaultFetcher: no fetcher named \"\(defaultFetcher)\"")
        }
        for (index, rule) in rules.enumerated() {
            switch rule.action {
            case let .private(name), let .fetch(name?):
                guard names.contains(name) else { throw ManifestError("rules[\(index)].fetcher: no fetcher named \"\(name)\"") }
            default:
                break
            }
        }
        let modes = [downloadMode] + rules.compactMap(\.mode)
        if modes.contains(where: { $0 == .redirect || $0 == .asyncRedirect }), downloadURL == nil {
            throw ManifestError("manifest.downloadURL: required by the redirect download modes")
        }
    }

    /// admin.token, or admin.tokenFile read now (one trailing newline dropped); one of them, 16 bytes at least.
    private static func adminToken(_ admin: Object) throws(ManifestError) -> String {
        let token: String
        switch (try admin.string("token"), try admin.string("tokenFile")) {
        case let (value?, nil):
            token = value
        case let (nil, file?):
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw ManifestError("manifest.admin.tokenFile: cannot read \(file)")
            }
            token = text.hasSuffix("\r\n") ? String(text.dropLast(2)) : text.hasSuffix("\n") ? String(text.dropLast()) : text
        default:
            throw ManifestError("manifest.admin: give token or tokenFile, not both")
        }
        // Visible ASCII: it travels in a header. 16 bytes at least: a short token can be guessed.
        guard token.utf8.count >= 16, token.utf8.count <= 1024, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ManifestError("manifest.admin.token: 16 to 1024 visible ASCII characters")
        }
        return token
    }

    /// stash.wrappers[].lock of a `singleflight` (see `LockUse`).
    private static func lockUse(_ object: Object) throws(ManifestError) -> LockUse {
        var lock = LockUse(use: try pluginUse(object))
        if let v = try object.seconds("leaseSeconds") {
            guard v >= 1, v <= 3600 else { throw ManifestError("\(object.path).leaseSeconds: must be from 1 to 3600") }
            lock.leaseSeconds = v
        }
        lock.waitSeconds = try object.seconds("waitSeconds", allowZero: true)
        lock.requiredForReadiness = try object.bool("requiredForReadiness") ?? false
        try object.finish()
        return lock
    }

    private static func pluginUse(_ object: Object) throws(ManifestError) -> PluginUse {
        guard let plugin = try object.string("plugin"), !plugin.isEmpty else { throw ManifestError("\(object.path).plugin: required") }
        let config = try object.rawObject("config") ?? JSONObject()
        return PluginUse(plugin: plugin, configJSON: JSONValue.object(config).text(sortingKeys: true))
    }

    /// Path of a plugin's shared library: a name is looked up in `pluginDirectory` as lib<Name>.so.
    package func libraryPath(for plugin: String) -> String {
        plugin.contains("/") || plugin.hasSuffix(".so") ? plugin : pluginDirectory + "/lib" + plugin + ".so"
    }
}

/// A manifest object being read key by key (JSONFields), its errors manifest errors.
private typealias Object = JSONFields<ManifestError>

private extension JSONFields where Failure == ManifestError {
    convenience init(_ value: JSONValue, path: String) throws(ManifestError) {
        try self.init(value, path: path) { ManifestError($0) }
    }

    func int(_ key: String, min: Int, max: Int) throws(ManifestError) -> Int? {
        try integer(key, in: min...max)
    }

    func seconds(_ key: String, allowZero: Bool = false) throws(ManifestError) -> Double? {
        guard let number = try number(key)?.double else { return nil }
        guard number > 0 || (allowZero && number == 0), number <= 86400 else {
            throw error(key, "must be \(allowZero ? "at least" : "more than") 0 and at most 86400")
        }
        return number
    }
}
