// RepoFinder: module path → repository (its root module path and git URL), in the order the issue asks:
// manifest rules, well-known hosting layouts, then `?go-get=1` discovery of go-import meta tags.
import Basics
import FoundationEssentials
import Glibc
import GoModule
import HTTPClient
import PluginKit

/// A configured repository: modules under `root` live in the git repository at `url`.
struct RepositoryRule: Sendable {
    /// Module path prefix of the repository root, as in a go-import meta tag ("corp.example/mono").
    var root: String
    /// Git URL (https, ssh, file...).
    var url: String
}

/// Where a module's repository is.
struct RepoLocation: Sendable {
    /// The repository root's module path.
    var root: String
    /// Git URL.
    var url: String
}

/// Finds repositories. Every method may be called concurrently.
final class RepoFinder: @unchecked Sendable {
    // @unchecked: `client` is thread-safe, `cache` is guarded by `lock`, the rest is immutable.
    private let rules: [RepositoryRule]
    /// GOINSECURE-style globs: hosts whose discovery may use plain http.
    private let insecure: String
    /// Host → "address:port" to connect to for discovery instead of the host itself.
    private let hostAddresses: [String: String]
    private let timeout: Double
    private let client = HTTPClient()
    private let lock = PosixLock()
    /// Discovery results (and failures) for `discoveryTTL` seconds.
    private var cache: [String: (location: RepoLocation?, at: Date)] = [:]
    private static let discoveryTTL: Double = 300
    /// Largest discovery page read.
    private static let maxPage = 1 << 20

    init(rules: [RepositoryRule], insecure: String, hostAddresses: [String: String], timeout: Double) {
        // Longest root first, so a rule for a subtree wins over one for its parent.
        self.rules = rules.sorted { $0.root.count > $1.root.count }
        self.insecure = insecure
        self.hostAddresses = hostAddresses
        self.timeout = timeout
    }

    /// The repository of `modulePath`; `.notFound` if no rule, layout or meta tag gives one.
    func find(_ modulePath: String) throws(PluginFailure) -> RepoLocation {
        for rule in rules where modulePath == rule.root || modulePath.hasPrefix(rule.root + "/") {
            return RepoLocation(root: rule.root, url: rule.url)
        }
        if let known = Self.wellKnown(modulePath) { return known }
        // The go command refuses a github.com path that is not github.com/OWNER/REPO[/...] without asking
        // the network (cmd/go/internal/vcs: a vcsPaths prefix that matches but whose pattern does not).
        if modulePath == "github.com" || modulePath.hasPrefix("github.com/") {
            throw .notFound("\(modulePath): invalid github.com import path \"\(modulePath)\"")
        }
        return try discover(modulePath)
    }

    /// The static layouts of cmd/go/internal/vcs (vcsPaths) that are git: github.com/OWNER/REPO, and a
    /// ".git" qualifier anywhere in the path (example.com/repo.git/sub → https://example.com/repo.git).
    static func wellKnown(_ path: String) -> RepoLocation? {
        let elements = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        func isName(_ text: String) -> Bool {
            !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
        }
        if elements.first == "github.com" {
            guard elements.count >= 3, isName(elements[1]), isName(elements[2]), !elements[2].hasSuffix(".git") else { return nil }
            let root = elements[0...2].joined(separator: "/")
            return RepoLocation(root: root, url: "https://" + root)
        }
        if let index = elements.firstIndex(where: { $0.hasSuffix(".git") && $0.count > 4 }), index > 0 {
            let root = elements[0...index].joined(separator: "/")
            return RepoLocation(root: root, url: "https://" + root)
        }
        return nil
    }

    /// `GET https://<path>?go-get=1` (http too for insecure hosts), go-import meta tags, and for a root
    /// above the path, the root's own page must agree (as the go command checks).
    private func discover(_ modulePath: String) throws(PluginFailure) -> RepoLocation {
        if let cached = lock.withLock({ cache[modulePath] }), Date().timeIntervalSince(cached.at) < Self.discoveryTTL {
            if let location = cached.location { return location }
            throw .notFound("\(modulePath): no repository rule matches and go-get discovery found none")
        }
        do {
            let location = try discoverUncached(modulePath)
            lock.withLock { cache[modulePath] = (location, Date()) }
            return location
        } catch let failure {
            if failure.status == ATH_NOT_FOUND { lock.withLock { cache[modulePath] = (nil, Date()) } }
            throw failure
        }
    }

    private func discoverUncached(_ modulePath: String) throws(PluginFailure) -> RepoLocation {
        let tag = try metaTag(for: modulePath, requested: modulePath)
        if tag.root != modulePath {
            // The go command re-reads the root's page and requires the same tag there.
            let again = try metaTag(for: tag.root, requested: modulePath)
            guard again.root == tag.root, again.url == tag.url else {
                throw .notFound("\(modulePath): go-get discovery: \(tag.root)?go-get=1 disagrees with \(modulePath)?go-get=1")
            }
        }
        return RepoLocation(root: tag.root, url: tag.url)
    }

    private func metaTag(for path: String, requested: String) throws(PluginFailure) -> (root: String, url: String) {
        let host = String(path.prefix { $0 != "/" })
        let rest = String(path.dropFirst(host.count))
        let allowHTTP = ModulePath.matchPrefixPatterns(insecure, path)
        let authority = hostAddresses[host] ?? host
        var page: [UInt8]?
        var lastError = ""
        for scheme in allowHTTP ? ["https", "http"] : ["https"] {
            let url = "\(scheme)://\(authority)\(Self.escapePath(rest))?go-get=1"
            do {
                page = try get(url)
                break
            } catch {
                lastError = "\(scheme): \(error.message)"
            }
        }
        guard let page else { throw .notFound("\(requested): no repository rule matches and go-get discovery failed (\(lastError))") }
        let tags = Self.parseMetaImports(page).filter { path == $0.root || path.hasPrefix($0.root + "/") }
        if tags.contains(where: { $0.vcs == "mod" }) {
            throw .notFound("\(requested): go-get discovery names a module proxy (vcs \"mod\"), not a git repository")
        }
        let git = tags.filter { $0.vcs == "git" }
        guard let tag = git.first else { throw .notFound("\(requested): go-get discovery found no go-import meta tag for git") }
        guard git.count == 1 else { throw .notFound("\(requested): go-get discovery found several go-import meta tags") }
        guard let scheme = URL(string: tag.url)?.scheme?.lowercased(), ["https", "http", "ssh", "git", "git+ssh", "file"].contains(scheme) else {
            throw .notFound("\(requested): go-get discovery gave an unusable repository URL")
        }
        if scheme == "http" || scheme == "git", !ModulePath.matchPrefixPatterns(insecure, requested) {
            throw .notFound("\(requested): go-get discovery gave an insecure \(scheme) URL and the host is not in insecureHosts")
        }
        return (tag.root, tag.url)
    }

    private struct TransferFailure: Error { var message: String }

    /// A GET whose status is ignored (the go command reads meta tags from 404 pages too); the first `maxPage`
    /// bytes of the body. Redirects are followed as the go command's client does (at most 10, never from https
    /// to http: HTTPClient refuses that).
    private func get(_ url: String) throws(TransferFailure) -> [UInt8] {
        var body: [UInt8] = []
        do {
            try client.perform(HTTPRequest(url: url, redirects: .follow(max: 10)),
                               limits: HTTPLimits(maxBodyBytes: .max, timeout: .seconds(timeout), idleTimeout: .seconds(timeout))) { chunk in
                body.append(contentsOf: chunk.prefix(Self.maxPage - body.count))
                // The meta tags are in the head: the rest of a huge page is not worth reading.
                if body.count >= Self.maxPage { throw HTTPClient.Stop() }
            }
        } catch {
            throw TransferFailure(message: error.description)
        }
        return body
    }

    /// Percent-encodes what a URL path cannot hold literally (the bytes outside `CharacterSet.urlPathAllowed`).
    private static func escapePath(_ path: String) -> String {
        path.percentEncoded { $0.isASCIIAlphanumeric || "!$&'()*+,-./:=@_~".utf8.contains($0) }
    }

    /// `<meta name="go-import" content="root vcs url">` tags in the page's head (cmd/go parseMetaGoImports:
    /// it stops at <body> or </head>).
    static func parseMetaImports(_ page: [UInt8]) -> [(root: String, vcs: String, url: String)] {
        let text = String(decoding: page, as: UTF8.self)
        var result: [(root: String, vcs: String, url: String)] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "<") {
            rest = rest[rest.index(after: open)...]
            let lower = rest.prefix(6).lowercased()
            if lower.hasPrefix("body") || lower.hasPrefix("/head") { break }
            guard lower.hasPrefix("meta"), let close = rest.firstIndex(of: ">") else { continue }
            let attributes = Self.attributes(rest[rest.index(rest.startIndex, offsetBy: 4)..<close])
            rest = rest[close...]
            guard attributes["name"] == "go-import", let content = attributes["content"] else { continue }
            let fields = content.split(whereSeparator: \.isWhitespace).map(String.init)
            guard fields.count == 3 || fields.count == 4 else { continue }
            result.append((fields[0], fields[1], fields[2]))
        }
        return result
    }

    /// Attributes of one tag: name=value, quoted with " or ', names lower-cased, entities &amp; &quot; decoded.
    private static func attributes(_ text: Substring) -> [String: String] {
        var result: [String: String] = [:]
        var index = text.startIndex
        func skipSpace() { while index < text.endIndex, text[index].isWhitespace || text[index] == "/" { index = text.index(after: index) } }
        while true {
            skipSpace()
            guard index < text.endIndex else { break }
            let nameStart = index
            while index < text.endIndex, !text[index].isWhitespace, text[index] != "=" { index = text.index(after: index) }
            let name = text[nameStart..<index].lowercased()
            skipSpace()
            guard index < text.endIndex, text[index] == "=" else { result[name] = ""; continue }
            index = text.index(after: index)
            skipSpace()
            guard index < text.endIndex else { break }
            var value: Substring
            if text[index] == "\"" || text[index] == "'" {
                let quote = text[index]
                let start = text.index(after: index)
                let end = text[start...].firstIndex(of: quote) ?? text.endIndex
                value = text[start..<end]
                index = end < text.endIndex ? text.index(after: end) : end
            } else {
                let start = index
                while index < text.endIndex, !text[index].isWhitespace { index = text.index(after: index) }
                value = text[start..<index]
            }
            result[name] = String(value).replacingAll("&quot;", with: "\"").replacingAll("&#39;", with: "'")
                .replacingAll("&lt;", with: "<").replacingAll("&gt;", with: ">").replacingAll("&amp;", with: "&")
        }
        return result
    }
}
