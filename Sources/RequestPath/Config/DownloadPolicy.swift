import HostSupport
import PluginHost
import GoModule

/// What to do on a storage miss for `.info`/`.mod`/`.zip` (Athens' download modes).
package enum DownloadMode: String, Sendable, CaseIterable {
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
package enum NetworkMode: String, Sendable, CaseIterable {
    /// Fetcher answers are required: a failing fetcher fails the request.
    case strict
    /// A failing fetcher falls back to the stale cached answer, then to storage.
    case fallback
    /// Never ask fetchers for list/@latest: storage alone answers.
    case offline
}

/// One routing rule of the manifest; the first whose patterns match a module path wins.
package struct RoutingRule: Sendable, Equatable {
    package enum Action: Sendable, Equatable {
        /// Only the named fetcher, never any other (private code must not reach an upstream).
        case `private`(fetcher: String)
        /// 404 for everything; nothing is fetched or served.
        case exclude
        /// The named fetcher, or the default route when nil.
        case fetch(fetcher: String?)
    }

    /// GOPRIVATE-style comma-separated globs, matched against path prefixes.
    package var patterns: String
    package var action: Action
    /// Overrides the global download mode for matching modules.
    package var mode: DownloadMode?

    package init(patterns: String, action: Action, mode: DownloadMode? = nil) {
        (self.patterns, self.action, self.mode) = (patterns, action, mode)
    }

    package func matches(_ module: String) -> Bool { ModulePath.matchPrefixPatterns(patterns, module) }
}

/// Where a module's requests go, decided once per request from the rules.
package struct Route: Sendable {
    /// Fetchers to try in order (the next only after a not-found).
    package var fetchers: [any Fetcher]
    package var mode: DownloadMode
    package var excluded: Bool
    /// Private modules are never looked up in checksum databases or sent to an upstream.
    package var isPrivate: Bool
}

/// The routing rules and modes, with the fetchers they name resolved.
package struct DownloadPolicy: Sendable {
    package var rules: [RoutingRule] = []
    package var mode: DownloadMode = .sync
    /// Base URL for the redirect modes, e.g. "https://proxy.golang.org".
    package var downloadURL: String?
    package var networkMode: NetworkMode = .fallback
    /// The default route's fetchers (every fetcher in manifest order unless `defaultFetcher` names one).
    package var defaultFetchers: [any Fetcher] = []
    /// Fetchers by manifest name.
    package var fetchersByName: [String: any Fetcher] = [:]
    /// Extra patterns (GONOSUMDB-style) whose checksum lookups are refused besides private rules.
    package var noSumPatterns = ""
    /// Stored files answered with `302` to the storage's `url` (manifest `storage.serve: "redirect"`); empty:
    /// every file is served as bytes. These are never kept in the memory cache (it would answer before `url`).
    package var storageRedirects: Set<Artifact> = []

    package init(rules: [RoutingRule] = [], mode: DownloadMode = .sync, downloadURL: String? = nil, networkMode: NetworkMode = .fallback,
                 defaultFetchers: [any Fetcher] = [], fetchersByName: [String: any Fetcher] = [:], noSumPatterns: String = "") {
        (self.rules, self.mode, self.downloadURL, self.networkMode) = (rules, mode, downloadURL, networkMode)
        (self.defaultFetchers, self.fetchersByName, self.noSumPatterns) = (defaultFetchers, fetchersByName, noSumPatterns)
    }

    /// The route of `module`: the first matching rule, else the default.
    package func route(_ module: String) -> Route {
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
    package func refusesSumLookup(_ module: String) -> Bool {
        if !noSumPatterns.isEmpty && ModulePath.matchPrefixPatterns(noSumPatterns, module) { return true }
        let route = route(module)
        return route.isPrivate || route.excluded
    }
}
