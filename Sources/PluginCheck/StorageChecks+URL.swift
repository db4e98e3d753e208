import Basics
import HostSupport
import HTTPClient
import PluginHost

/// The optional `url` entry (ABI 1.1, redirect serving): what the host would put in a `Location` header.
extension StorageChecks {
    /// A zip it saved: its URL must pass the host's own checks (`RedirectURL`: NUL-terminated, printable, absolute
    /// http(s), valid ≥ 1 s), and when it points at loopback, a GET of it must give `open`'s bytes. Declining is a
    /// pass: the host then serves the bytes. The URL itself is never printed (it may carry a signature).
    func urlOfSavedZip() throws -> String {
        guard storage.hasURL else { throw CheckSkipped("no url entry: files are served as bytes") }
        let module = prefix + "/url", version = "v1.0.0"
        let zip = PatternBytes(seed: 77).bytes(70_000)
        try save(module, version, info: info(version), mod: mod(module), zip: zip)
        guard let answer = try storage.url(module, version, .zip) else { return "declines (ATH_DECLINED): zips are served as bytes" }
        let target: (url: String, validSeconds: Int)
        switch answer {
        case let .success(checked): target = checked
        case let .failure(refusal): throw CheckFailure("the host refuses the URL of a stored zip (\(refusal.rawValue)) and would serve bytes")
        }
        let opened = try read(module, version, .zip)
        guard let host = Self.loopbackHost(target.url) else {
            return "valid \(target.validSeconds) s; not fetched (not a loopback URL)"
        }
        let response: HTTPResponse
        do {
            response = try HTTPClient().fetch(HTTPRequest(.get, url: target.url),
                                              limits: HTTPLimits(maxBodyBytes: Int64(zip.count) + 1, timeout: .seconds(30), idleTimeout: .seconds(10)))
        } catch {
            throw CheckFailure("GET of its URL on \(host) failed: \(error)")
        }
        guard response.status == 200 else { throw CheckFailure("GET of its URL on \(host) answered \(response.status)") }
        guard response.body == opened else {
            throw CheckFailure("GET of its URL on \(host) gave \(response.body.count) bytes that differ from open's \(opened.count)")
        }
        return "valid \(target.validSeconds) s; GET on \(host) gave open's \(opened.count) bytes"
    }

    /// The host of an http(s) URL when it is loopback (127.0.0.0/8, localhost, [::1]), else nil.
    static func loopbackHost(_ url: String) -> String? {
        guard let schemeEnd = url.firstByteRange(of: "://") else { return nil }
        let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
        let host = hostPort.hasPrefix("[") ? String(hostPort.prefix { $0 != "]" }) + "]" : String(hostPort.prefix { $0 != ":" })
        let lower = host.lowercased()
        // A name such as 127.example.com is not loopback: only the dotted address is.
        let isIPv4Loopback = lower.hasPrefix("127.") && lower.allSatisfy { $0.isNumber || $0 == "." }
        return lower == "localhost" || lower == "[::1]" || isIPv4Loopback ? host : nil
    }
}
