// Fuzz target: the checksum-database proxy's path handling (Sources/AthensHost/Download/SumDBProxy.swift):
// for a request path under /sumdb/, what it answers itself and what it would forward upstream.
//
// Input: the path after "/sumdb/", as RequestParser hands it over (visible ASCII, no "?" or "#"; other inputs
// are skipped). The decision is `SumDBProxy.forwardable`'s; `serve` must answer the same, its pool kept full
// (fuzz/glue/BlockedSumDB.swift) so a request it would forward is answered 503 at once, without network.
// Besides "never traps", checks: statuses in {200, 400, 403, 404, 503}; 200 only for /supported; a
// forwarded path is /latest, /lookup/… or /tile/… of a configured database, decodes to itself and, with its
// dot segments removed (what an upstream's router does), still lies under that same prefix; a forwarded
// lookup never names a module that policy keeps private.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GoModule
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

private let policy = DownloadPolicy(rules: [
    RoutingRule(patterns: "private.example", action: .private(fetcher: "none")),
    RoutingRule(patterns: "excluded.example", action: .exclude),
], noSumPatterns: "nosum.example,*.corp.example")

/// The configured databases (what a forward may name); the proxy's URLs are the silent listener's.
private let databases: Set<String> = ["sum.golang.org", "sumdb.example"]
private let proxy = blockedSumDB(names: databases.sorted(), policy: policy)

/// RFC 3986 remove_dot_segments over "/"-separated segments.
private func removeDotSegments(_ path: String) -> String {
    var out: [Substring] = []
    let segments = path.split(separator: "/", omittingEmptySubsequences: false)
    for (index, segment) in segments.enumerated() {
        let last = index == segments.count - 1
        if segment == "." || segment == ".." {
            if segment == "..", out.count > 1 { out.removeLast() }
            if last { out.append("") }
        } else {
            out.append(segment)
        }
    }
    return out.joined(separator: "/")
}

/// What the proxy decides for `path`: the status it answers, and the tail it forwards (nil when it forwards
/// nothing). The database name is looked up as `SumDBProxy.handle` does; the rest is `SumDBProxy.forwardable`'s
/// decision. `serve` must agree: the same status, or 503 (its pool is full) for a path it would forward.
private func decide(_ path: String) -> (status: Int, forwarded: String?) {
    let rest = path.dropFirst("/sumdb/".count)
    let decided: (status: Int, forwarded: String?)
    if let slash = rest.firstIndex(of: "/"), databases.contains(String(rest[..<slash])) {
        switch SumDBProxy.forwardable(rest[slash...], policy: policy) {
        case let .refuse(response):
            require(response.status != 200, "forwardable refused \(path.debugDescription) with 200")
            decided = (response.status, nil)
        case let .forward(tail): decided = tail == "/supported" ? (200, nil) : (503, tail)
        }
    } else {
        decided = (404, nil)
    }
    final class Box: @unchecked Sendable { var responses: [Response] = [] }
    let box = Box()
    // Every answer of serve is synchronous when the pool refuses: no lock needed.
    proxy.serve(path: path[...], responder: Responder { box.responses.append($0) })
    require(box.responses.count == 1, "\(box.responses.count) responses to \(path.debugDescription)")
    require(box.responses[0].status == decided.status,
            "serve answered \(box.responses[0].status) to \(path.debugDescription), forwardable decided \(decided.status)")
    return decided
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    // What RequestParser lets through as a path (the request_parser target checks that it does).
    guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else { return 0 }
    let path = "/sumdb/" + String(decoding: bytes, as: UTF8.self)
    let (status, forwarded) = decide(path)
    require([200, 400, 403, 404, 503].contains(status), "status \(status) for \(path.debugDescription)")

    let name = String(path.dropFirst("/sumdb/".count).prefix { $0 != "/" })
    if status == 200 { require(databases.contains(name) && path.hasSuffix("/" + name + "/supported"), "200 for \(path.debugDescription)") }
    guard let tail = forwarded else { return 0 }

    // Forwarded: base + tail (decoded already, so it must not decode any further: no double encoding).
    require(databases.contains(name), "forwarded for unknown database \(name.debugDescription)")
    let prefix = tail == "/latest" ? "/latest" : tail.hasPrefix("/lookup/") ? "/lookup/" : tail.hasPrefix("/tile/") ? "/tile/" : nil
    guard let prefix else { require(false, "forwarded \(tail.debugDescription), not a checksum-database path"); return 0 }
    guard let decoded = DownloadRequest.percentDecode(tail[...]) else {
        require(false, "forwarded \(tail.debugDescription), which does not percent-decode")
        return 0
    }
    require(decoded == tail, "forwarded \(tail.debugDescription), which an upstream decodes again to \(decoded.debugDescription)")
    let normalized = removeDotSegments(decoded)
    require(prefix == "/latest" ? normalized == "/latest" : normalized.hasPrefix(prefix),
            "forwarded \(tail.debugDescription), which an upstream reads as \(normalized.debugDescription)")
    require(URL(string: "https://sumdb.example/base" + tail) != nil, "forwarded \(tail.debugDescription), not a URL")
    if prefix == "/lookup/" {
        let target = decoded.dropFirst(prefix.count)
        if let at = target.lastIndex(of: "@"), let module = try? ModulePath.unescapePath(String(target[..<at])) {
            require(!policy.refusesSumLookup(module), "forwarded a lookup of \(module), which policy keeps private")
        }
    }
    return 0
}
