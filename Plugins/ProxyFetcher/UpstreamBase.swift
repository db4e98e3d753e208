// UpstreamBase: the configured GOPROXY base URL, and the request URLs built on it.
import FoundationEssentials
import Glibc
import GoModule
import PluginKit

/// The upstream's base URL, split into what goes on the wire and the credentials kept aside.
struct UpstreamBase {
    /// "https://host[:port][/path]" with no userinfo and no trailing slash.
    let base: String
    /// Scheme, host and port, for deciding where credentials may go.
    let origin: Origin
    /// "Basic …" when the configured URL carried user:password, else nil.
    let authorization: String?

    /// Parses the `url` config value. Messages never repeat the URL: it may carry a password.
    init(config text: String) throws(PluginFailure) {
        guard var components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased() else {
            throw .invalid("config.url: not a URL")
        }
        guard scheme == "http" || scheme == "https" else { throw .invalid("config.url: scheme must be http or https") }
        guard let host = components.host, !host.isEmpty else { throw .invalid("config.url: has no host") }
        guard components.query == nil, components.fragment == nil else {
            throw .invalid("config.url: must not have a query or a fragment")
        }
        if let user = components.user {
            let pair = user + ":" + (components.password ?? "")
            authorization = "Basic " + Data(pair.utf8).base64EncodedString()
        } else {
            authorization = nil
        }
        components.user = nil
        components.password = nil
        components.scheme = scheme
        guard var string = components.string, let origin = Origin(components.url) else {
            throw .invalid("config.url: not a URL")
        }
        while string.hasSuffix("/") { string.removeLast() }
        base = string
        self.origin = origin
    }

    /// "<base>/<module>/@v/<version><suffix>", e.g. suffix ".info"; `version` may be any query.
    func versionURL(module: String, version: String, suffix: String) throws(ModuleError) -> String {
        let module = try ModulePath.escapePath(module)
        let version = try ModulePath.escapeVersion(version)
        return base + "/" + Self.pathEscape(module) + "/@v/" + Self.pathEscape(version) + suffix
    }

    /// "<base>/<module>/@v/list".
    func listURL(module: String) throws(ModuleError) -> String {
        base + "/" + Self.pathEscape(try ModulePath.escapePath(module)) + "/@v/list"
    }

    /// "<base>/<module>/@latest".
    func latestURL(module: String) throws(ModuleError) -> String {
        base + "/" + Self.pathEscape(try ModulePath.escapePath(module)) + "/@latest"
    }

    /// Percent-encodes each "/"-separated segment as Go's url.PathEscape does ("!" becomes "%21").
    static func pathEscape(_ path: String) -> String {
        // Bytes first, one String at the end: appending scalar by scalar cost ~50 instructions a byte.
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count + 8)
        for byte in path.utf8 {
            if keepsLiterally(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHexDigit(byte >> 4))
                out.append(upperHexDigit(byte & 15))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func upperHexDigit(_ value: UInt8) -> UInt8 { value < 10 ? 0x30 + value : 0x37 + value }

    /// Unreserved characters, Go's path-segment extras ($ & + : = @), and "/" between segments.
    private static func keepsLiterally(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"),
             UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "+"), UInt8(ascii: ":"), UInt8(ascii: "="), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }
}
