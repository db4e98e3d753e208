import GoModule

/// What to do on a storage miss for `.info`/`.mod`/`.zip` (Athens' download modes).
enum DownloadMode: String, Sendable, CaseIterable {
    /// Fetch, store, then answer.
    case sync
    /// Answer 404 now and fetch in the background.
    case async
    /// Redirect the client to `downloadURL`; nothing is fetched.
    case redirect
    /// Redirect now and fetch in the background.
    case asyncRedirect = "async_redirect"
    /// Answer 404; nothing is fetched.
    case none
}

/// How list and @latest use the fetchers (Athens' network modes).
enum NetworkMode: String, Sendable, CaseIterable {
    /// Fetcher answers are required: a failing fetcher fails the request.
    case strict
    /// A failing fetcher falls back to the stale cached answer, then to storage.
    case fallback
    /// Never ask fetchers for list/@latest: storage alone answers.
    case offline
}

/// One routing rule of the manifest; the first whose patterns match a module path wins.
struct RoutingRule: Sendable, Equatable {
    enum Action: Sendable, Equatable {
        /// Only the named fetcher, never any other (private code must not reach an upstream).
        case `private`(fetcher: String)
        /// 404 for everything; nothing is fetched or served.
        case exclude
        /// The named fetcher, or the default route when nil.
        case fetch(fetcher: String?)
    }

    /// GOPRIVATE-style comma-separated globs, matched against path prefixes.
    var patterns: String
    var action: Action
    /// Overrides the global download mode for matching modules.
    var mode: DownloadMode?

    func matches(_ module: String) -> Bool { ModulePath.matchPrefixPatterns(patterns, module) }
}

/// Where a module's requests go, decided once per request from the rules.
struct Route: Sendable {
    /// Fetchers to try in order (the next only after a not-found).
    var fetchers: [FetcherPlugin]
    var mode: DownloadMode
    var excluded: Bool
    /// Private modules are never looked up in checksum databases or sent to an upstream.
    var isPrivate: Bool
}

/// The routing rules and modes, with the fetchers they name resolved.
struct DownloadPolicy: Sendable {
    var rules: [RoutingRule] = []
    var mode: DownloadMode = .sync
    /// Base URL for the redirect modes, e.g. "https://proxy.golang.org".
    var downloadURL: String?
    var networkMode: NetworkMode = .fallback
    /// The default route's fetchers (every fetcher in manifest order unless `defaultFetcher` names one).
    var defaultFetchers: [FetcherPlugin] = []
    /// Fetchers by manifest name.
    var fetchersByName: [String: FetcherPlugin] = [:]
    /// Extra patterns (GONOSUMDB-style) whose checksum lookups are refused besides private rules.
    var noSumPatterns = ""

    /// The route of `module`: the first matching rule, else the default.
    func route(_ module: String) -> Route {
        for rule in rules where rule.matches(module) {
            switch rule.action {
            case .exclude:
                return Route(fetchers: [], mode: .none, excluded: true, isPrivate: false)
            case let .private(name):
                return Route(fetchers: fetchersByName[name].map { [$0] } ?? [], mode: rule.mode ?? mode, excluded: false, isPrivate: true)
            case let .fetch(name):
                let fetchers = name.flatMap { fetchersByName[$0] }.map { [$0] } ?? defaultFetchers
                return Route(fetchers: fetchers, mode: rule.mode ?? mode, excluded: false, isPrivate: false)
            }
        }
        return Route(fetchers: defaultFetchers, mode: mode, excluded: false, isPrivate: false)
    }

    /// Whether a checksum-database lookup of `module` must not leave the building.
    func refusesSumLookup(_ module: String) -> Bool {
        if !noSumPatterns.isEmpty && ModulePath.matchPrefixPatterns(noSumPatterns, module) { return true }
        let route = route(module)
        return route.isPrivate || route.excluded
    }
}
