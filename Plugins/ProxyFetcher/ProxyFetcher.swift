// ProxyFetcher: fetches module versions from an upstream GOPROXY (proxy.golang.org, another athens, ...)
// over HTTP(S). Config: {"url": "https://proxy.golang.org", "timeoutSeconds": 30, "zipTimeoutSeconds": 600}.
// Every call blocks its (host-owned) thread; zips stream from the socket into the host's sink.
import FoundationEssentials
import Glibc
import GoModule
import PluginKit

/// The plugin's entry symbol.
@c(ath_plugin_query)
public func athPluginQuery(_ hostABIMajor: UInt32) -> UnsafePointer<ath_plugin>? {
    PluginEntry.fetcher(name: "ProxyFetcher", hostABIMajor: hostABIMajor) { config throws(PluginFailure) in
        try ProxyFetcher(config: config)
    }
}

/// A fetcher backed by an upstream GOPROXY.
final class ProxyFetcher: FetcherBackend {
    /// Largest .info (and @latest) body accepted.
    static let maxInfoBytes: Int64 = 64 << 10
    /// Largest .mod body accepted (Go's MaxGoMod).
    static let maxModBytes: Int64 = 16 << 20
    /// Largest @v/list body accepted.
    static let maxListBytes: Int64 = 16 << 20
    /// Largest zip accepted (Go's MaxZipFile).
    static let maxZipBytes: Int64 = 500 << 20
    /// Most bytes of an error body kept for the message (the ath_error buffer holds 511).
    static let maxDetailBytes = 160

    private let upstream: UpstreamBase
    private let client: UpstreamClient
    /// Whole-transfer limit for one zip.
    private let zipTimeout: Double

    /// Reads `url`, `timeoutSeconds` and `zipTimeoutSeconds`; refuses anything else.
    init(config: PluginConfig) throws(PluginFailure) {
        let url = try config.string("url")
        let timeout = try config.number("timeoutSeconds") ?? 30
        let zipTimeout = try config.number("zipTimeoutSeconds") ?? 600
        try config.finish()
        guard let url else { throw .invalid("config.url: required (the upstream GOPROXY, e.g. \"https://proxy.golang.org\")") }
        // A day is already absurd; beyond it the clock arithmetic is not worth trusting.
        guard timeout > 0, timeout <= 86_400 else { throw .invalid("config.timeoutSeconds: must be more than 0 and at most 86400") }
        guard zipTimeout > 0, zipTimeout <= 86_400 else { throw .invalid("config.zipTimeoutSeconds: must be more than 0 and at most 86400") }
        upstream = try UpstreamBase(config: url)
        self.zipTimeout = zipTimeout
        client = UpstreamClient(idleTimeout: timeout, authorization: upstream.authorization, origin: upstream.origin)
    }

    func fetch(module: String, version: String, info: ByteSink, mod: ByteSink, zip: ByteSink) throws(PluginFailure) {
        let subject = "\(module)@\(version)"
        // The module and version checked and escaped once for the three URLs.
        let stem: String
        do {
            stem = try upstream.versionURL(module: module, version: version, suffix: "")
        } catch {
            throw .invalid("\(subject): \(error.message)")
        }
        let infoURL = try requestURL(subject) { stem + ".info" }
        let modURL = try requestURL(subject) { stem + ".mod" }
        let zipURL = try requestURL(subject) { stem + ".zip" }

        // The .info first, checked before anything reaches a sink: a wrong version stops the fetch early.
        let infoBytes = try getWhole(infoURL, subject: subject, limit: Self.maxInfoBytes)
        let infoVersion = try infoObject(infoBytes, subject: subject, url: infoURL).version
        guard infoVersion == version else {
            throw .unavailable("\(subject): upstream sent .info for version \(infoVersion.prefix(80)) instead of \(version) (\(redacted(infoURL)))")
        }
        try write(infoBytes, to: info, subject: subject, url: infoURL)

        let modBytes = try getWhole(modURL, subject: subject, limit: Self.maxModBytes)
        try write(modBytes, to: mod, subject: subject, url: modURL)

        try get(zipURL, subject: subject, limit: Self.maxZipBytes, wholeTimeout: zipTimeout, wholeTimeoutName: "zipTimeoutSeconds") { chunk throws(PluginFailure) in
            try write(chunk, to: zip, subject: subject, url: zipURL)
        }
    }

    func list(module: String) throws(PluginFailure) -> [String] {
        // The list entry gives tagged versions only (athens_plugin.h).
        try rawList(module: module).filter { !SemVer.isPseudoVersion($0) }
    }

    /// The upstream's @v/list as the go command reads it: the first field of each line, canonical versions
    /// only, each once; pseudo-versions kept (they matter to the @latest fallback).
    private func rawList(module: String) throws(PluginFailure) -> [String] {
        let subject = "\(module)/@v/list"
        let url = try requestURL(subject) { () throws(ModuleError) in try upstream.listURL(module: module) }
        let body = try getWhole(url, subject: subject, limit: Self.maxListBytes)
        var seen = Set<String>()
        var versions: [String] = []
        for line in body.split(separator: UInt8(ascii: "\n")) {
            guard let field = line.split(whereSeparator: { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }).first,
                  let version = String(validating: field, as: UTF8.self),
                  ModulePath.canonicalVersion(version) == version,
                  seen.insert(version).inserted else { continue }
            versions.append(version)
        }
        return versions
    }

    func resolve(module: String, query: String, info: ByteSink) throws(PluginFailure) {
        let subject = "\(module)@\(query)"
        let url = try requestURL(subject) { () throws(ModuleError) in
            query == "latest" ? try upstream.latestURL(module: module)
                              : try upstream.versionURL(module: module, version: query, suffix: ".info")
        }
        let body: [UInt8]
        do {
            body = try getWhole(url, subject: subject, limit: Self.maxInfoBytes)
        } catch where query == "latest" && error.status == ATH_NOT_FOUND {
            // No @latest (a static tree, the go command's own cache): the go command's fallback, the pick
            // from the raw list, pseudo-versions included (modfetch proxyRepo.latest).
            guard let best = LatestVersion.pick(try rawList(module: module)) else { throw error }
            return try resolve(module: module, query: best, info: info)
        }
        let version = try infoObject(body, subject: subject, url: url).version
        guard ModulePath.canonicalVersion(version) == version else {
            throw .unavailable("\(subject): upstream answered with non-canonical version \"\(version.prefix(80))\" (\(redacted(url)))")
        }
        // The go command's rule (proxy.go Stat): asking for a version canonical for the path must give back that
        // very version; any other query — v3.2.0 of a path without /v3 included — may name another.
        if ModulePath.isCanonical(path: module, version: query), version != query {
            throw .unavailable("\(subject): upstream sent .info for version \(version) instead of \(query) (\(redacted(url)))")
        }
        try write(body, to: info, subject: subject, url: url)
    }

    // MARK: - Helpers

    /// Builds a request URL; a module path or version GOPROXY cannot spell is the caller's mistake.
    private func requestURL(_ subject: String, _ build: () throws(ModuleError) -> String) throws(PluginFailure) -> URL {
        let text: String
        do {
            text = try build()
        } catch {
            throw .invalid("\(subject): \(error.message)")
        }
        // Every byte outside Go's path-segment set is percent-encoded, so this parses unless the base is odd.
        guard let url = URL(string: text) else { throw .internal("\(subject): cannot build a request URL on the configured base") }
        return url
    }

    /// The .info's version, read with the host's own rule (`ArtifactValidator`): what passes here is stored.
    private func infoObject(_ bytes: [UInt8], subject: String, url: URL) throws(PluginFailure) -> (version: String, time: String?) {
        do {
            let info = try ArtifactValidator.readInfo(bytes, version: nil)
            return (info.version, info.time)
        } catch {
            throw .unavailable("\(subject): upstream sent \(error.message) (\(redacted(url)))")
        }
    }

    /// Hands bytes to a host sink, naming the subject if the host refuses them.
    private func write(_ bytes: some ContiguousBytes, to sink: ByteSink, subject: String, url: URL) throws(PluginFailure) {
        var failure: PluginFailure?
        bytes.withUnsafeBytes { raw in
            do throws(PluginFailure) { try sink.write(raw) } catch { failure = error }
        }
        if let failure { throw PluginFailure(failure.status, "\(subject): \(failure.message) (from \(redacted(url)))") }
    }

    /// GETs a small body whole, within the idle timeout between events and `zipTimeout` overall.
    private func getWhole(_ url: URL, subject: String, limit: Int64) throws(PluginFailure) -> [UInt8] {
        var body: [UInt8] = []
        try get(url, subject: subject, limit: limit, wholeTimeout: zipTimeout, wholeTimeoutName: "zipTimeoutSeconds") { chunk throws(PluginFailure) in
            body.append(contentsOf: chunk)
        }
        return body
    }

    /// GETs `url` and passes its 200 body to `consume` piece by piece, within `limit` bytes, the idle
    /// timeout and `wholeTimeout` (see UpstreamClient.get).
    private func get(_ url: URL, subject: String, limit: Int64, wholeTimeout: Double, wholeTimeoutName: String,
                     consume: (UnsafeRawBufferPointer) throws(PluginFailure) -> Void) throws(PluginFailure) {
        try client.get(url, subject: subject, limit: limit, wholeTimeout: wholeTimeout, wholeTimeoutName: wholeTimeoutName, consume: consume)
    }
}
