// Fuzz target: the config manifest (Sources/RequestPath/Config/Manifest.swift, read with Sources/JSON):
// `Manifest.parse` and `applyEnvironment`.
//
// Input: JSON text, then optionally a NUL byte and environment lines separated by "\n"; a line's first byte picks
// the variable ("0" the first of the list below, "1" the second… modulo its length), the rest is its value.
// The environment is applied to the parsed manifest, or to the default one when parsing fails. Besides "never
// traps", checks that an accepted manifest holds every value in its documented range, re-serialized plugin configs
// are JSON objects, the cross-key checks pass, and parsing is deterministic; after the environment, that
// ATHENS_PORT ends up in a listen address `HTTPServer.parseListen` reads back, and the other overrides stay in range.
import Foundation
import JSON
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

private let environmentNames = [
    "ATHENS_LISTEN", "ATHENS_PORT", "ATHENS_PLUGIN_DIR", "ATHENS_STORAGE_TYPE", "ATHENS_DISK_STORAGE_ROOT",
    "ATHENS_UPSTREAM_URL", "ATHENS_PROTOCOL_WORKERS", "ATHENS_LOG_LEVEL", "ATHENS_BASIC_AUTH_USER", "BASIC_AUTH_USER",
    "ATHENS_BASIC_AUTH_PASS", "BASIC_AUTH_PASS", "ATHENS_LOG_FORMAT", "ATHENS_SHUTDOWN_TIMEOUT",
]

/// Foundation's reader as an independent judge, and ours, which PluginKit's PluginConfig reads the text with.
private func isJSONObject(_ text: String) -> Bool {
    guard case .object? = try? JSONReader.parse(text) else { return false }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any]
}

private func checkRanges(_ m: Manifest, _ context: String) {
    require((1...4096).contains(m.downloadWorkers), "\(context): download.workers \(m.downloadWorkers)")
    require((0...1_000_000).contains(m.downloadQueue), "\(context): download.queue \(m.downloadQueue)")
    require(["debug", "info", "error"].contains(m.logLevel), "\(context): logLevel \(m.logLevel)")
    require(m.logFormat == "logfmt" || m.logFormat == "json", "\(context): logFormat \(m.logFormat)")
    require(m.shutdownTimeout >= 0 && m.shutdownTimeout <= 86400, "\(context): shutdownTimeout \(m.shutdownTimeout)")
    if let auth = m.basicAuth {
        require(!auth.user.isEmpty && !auth.user.utf8.contains(UInt8(ascii: ":")) && !auth.password.isEmpty,
                "\(context): basic auth user \(auth.user.debugDescription)")
    }
    require(!m.storage.plugin.isEmpty && isJSONObject(m.storage.configJSON), "\(context): storage \(m.storage)")
    require(Set(m.fetchers.map(\.name)).count == m.fetchers.count, "\(context): repeated fetcher names")
    for fetcher in m.fetchers {
        require(!fetcher.name.isEmpty && !fetcher.use.plugin.isEmpty, "\(context): fetcher \(fetcher)")
        require(isJSONObject(fetcher.use.configJSON), "\(context): fetcher config \(fetcher.use.configJSON.debugDescription)")
        _ = m.libraryPath(for: fetcher.use.plugin)
    }
}

private func checkParsed(_ m: Manifest, _ text: [UInt8]) {
    checkRanges(m, "parsed")
    let s = m.server
    require((0...1024).contains(s.threads) && (1...10_000_000).contains(s.maxConnections), "server \(s)")
    for t in [s.headerTimeout, s.idleTimeout, s.writeTimeout, m.stashTimeout] {
        require(t > 0 && t <= 86400, "a timeout of \(t) s")
    }
    require(m.listCacheSeconds >= 0 && m.listCacheSeconds <= 86400, "listCacheSeconds \(m.listCacheSeconds)")
    let l = s.limits
    require((256...(1 << 20)).contains(l.maxRequestLine) && (256...(1 << 20)).contains(l.maxHeaderBytes)
            && (1...10_000).contains(l.maxHeaderCount), "limits \(l)")
    require((0...(1 << 40)).contains(m.cacheMaxBytes) && (0...(1 << 30)).contains(m.cacheMaxFileBytes), "cache sizes")
    for wrapper in m.stashWrappers {
        if case let .pool(workers) = wrapper { require((1...4096).contains(workers), "pool of \(workers)") }
    }
    for rule in m.rules {
        require(!rule.patterns.isEmpty, "rule without patterns")
        _ = rule.matches("example.com/m")
    }
    for db in m.sumDBs {
        require(!db.name.isEmpty && !db.name.contains("/"), "sumdb name \(db.name.debugDescription)")
        require(db.url.hasPrefix("https://") || db.url.hasPrefix("http://"), "sumdb url \(db.url.debugDescription)")
    }
    require((try? m.validate()) != nil, "an accepted manifest fails validate()")
    // Deterministic: the same text gives the same manifest.
    guard let again = try? Manifest.parse(text, pluginDirectory: "/plugins") else {
        require(false, "the same text is refused the second time")
        return
    }
    require(again.listen == m.listen && again.storage == m.storage && again.fetchers == m.fetchers
            && again.rules == m.rules && again.stashWrappers == m.stashWrappers, "a second parse differs")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = splitInput(inputBytes(data, size), on: 0, limit: 2)
    let text = Array(parts[0])
    var manifest: Manifest
    do {
        manifest = try Manifest.parse(text, pluginDirectory: "/plugins")
        checkParsed(manifest, text)
    } catch {
        require(!error.description.isEmpty, "an empty manifest error")
        manifest = Manifest.defaultManifest(pluginDirectory: "/plugins")
    }
    guard parts.count > 1 else { return 0 }

    var environment: [String: String] = [:]
    for line in parts[1].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
        // "0"…"9", ":"…"=" name the variables in order, so seeds stay readable.
        let name = environmentNames[Int(line[line.startIndex] &- 0x30) % environmentNames.count]
        environment[name] = String(decoding: line.dropFirst(), as: UTF8.self)
    }
    do {
        try manifest.applyEnvironment(environment)
    } catch {
        require(!error.description.isEmpty, "an empty environment error")
        return 0
    }
    checkRanges(manifest, "after the environment")
    if let port = environment["ATHENS_PORT"], !port.isEmpty {
        let parsed = try? HTTPServer.parseListen(manifest.listen)
        require(parsed != nil, "ATHENS_PORT=\(port) gives listen \(manifest.listen.debugDescription), which does not parse")
        require(parsed.map { String($0.port) == (port.hasPrefix(":") ? String(port.dropFirst()) : port) } == true
                || UInt16(port.hasPrefix(":") ? String(port.dropFirst()) : port).map { parsed?.port == $0 } == true,
                "ATHENS_PORT=\(port) gives listen \(manifest.listen.debugDescription)")
    }
    return 0
}
