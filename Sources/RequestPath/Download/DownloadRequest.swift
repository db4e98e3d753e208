import HostSupport
import PluginHost
import GoModule
import Synchronization

/// A GOPROXY protocol request, decoded and validated. The one URL parser of the download routes.
package struct DownloadRequest: Equatable, Sendable {
    package enum Kind: Equatable, Sendable {
        /// `/{module}/@v/list`
        case list
        /// `/{module}/@latest`
        case latest
        /// `/{module}/@v/{version}.info|.mod|.zip`; the version is decoded but may be a query for .info: a branch,
        /// a commit, or any version not canonical for the module (`ModulePath.isCanonical(path:version:)`).
        case file(Artifact, version: String)
    }

    /// Decoded module path ("github.com/BurntSushi/toml"), valid per the go command's rules.
    package let module: String
    package let kind: Kind
    /// "module@version" + ".info|.mod|.zip" for a file, else "": the in-memory file cache's key, made once per
    /// parsed path (the memo below keeps it), not once per request.
    package let cacheKey: String

    package init(module: String, kind: Kind) {
        self.module = module
        self.kind = kind
        if case let .file(artifact, version) = kind {
            cacheKey = Self.cacheKey(module: module, version: version, artifact: artifact)
        } else {
            cacheKey = ""
        }
    }

    /// The in-memory file cache's key of one file: "module@version.zip".
    package static func cacheKey(module: String, version: String, artifact: Artifact) -> String {
        module + "@" + version + artifact.description
    }

    /// The metrics label: the artifact kind, "list" or "latest".
    package var endpoint: String {
        switch kind {
        case .list: "list"
        case .latest: "latest"
        case .file(.info, _): "info"
        case .file(.mod, _): "mod"
        case .file(.zip, _): "zip"
        }
    }

    /// Why a path is not a valid download request.
    package enum Failure: Error, Equatable {
        /// Not a download route at all (→ 404).
        case notARoute
        /// A download route with a malformed module or version (→ 400 / 404 with this message).
        case malformed(status: Int, message: String)
    }

    /// Parses a still percent-encoded request path such as "/github.com/%21burnt/toml/@v/v1.0.0.info".
    package static func parse(_ encodedPath: Substring) -> Result<DownloadRequest, Failure> {
        // The whole target (no query) is its own key: no copy. Warm clients ask the same paths again and
        // again, and validating module path and version was a quarter of a cache hit's instructions.
        let key = encodedPath.startIndex == encodedPath.base.startIndex && encodedPath.endIndex == encodedPath.base.endIndex
            ? encodedPath.base : String(encodedPath)
        if let known = memo.withLock({ $0[key] }) { return .success(known) }
        let result = parseUncached(encodedPath)
        if case let .success(parsed) = result {
            memo.withLock { entries in
                if entries.count >= memoCapacity { entries.removeAll(keepingCapacity: true) }
                entries[key] = parsed
            }
        }
        return result
    }

    /// Successful parses of recent paths. Parsing is a pure function of the path, so an entry never goes stale;
    /// bounded by emptying it when full (a few hundred KiB at most).
    private static let memo = Mutex<[String: DownloadRequest]>([:])
    package static let memoCapacity = 2048
    /// Entries in the memo now (tests check the bound).
    package static var memoCount: Int { memo.withLock { $0.count } }

    private static func parseUncached(_ encodedPath: Substring) -> Result<DownloadRequest, Failure> {
        // The go command escapes nothing with %: then the path is parsed in place, not copied.
        if !encodedPath.utf8.contains(UInt8(ascii: "%")) { return parse(decoded: encodedPath) }
        guard let path = percentDecode(encodedPath) else {
            return .failure(.malformed(status: 400, message: "bad request: malformed percent-encoding in path"))
        }
        return parse(decoded: path[...])
    }

    /// `parse` after percent-decoding.
    private static func parse(decoded path: Substring) -> Result<DownloadRequest, Failure> {
        // A byte scan, not String.range(of:), which goes through Foundation on Linux (hot path).
        let utf8 = path.utf8
        guard utf8.first == UInt8(ascii: "/") else { return .failure(.notARoute) }
        var cursor = utf8.startIndex
        var atSlash: String.Index?
        while cursor < utf8.endIndex {
            let next = utf8.index(after: cursor)
            if utf8[cursor] == UInt8(ascii: "/"), next < utf8.endIndex, utf8[next] == UInt8(ascii: "@") {
                atSlash = cursor
                break
            }
            cursor = next
        }
        guard let slash = atSlash else { return .failure(.notARoute) }
        guard slash > path.startIndex else {
            return .failure(.malformed(status: 400, message: "bad request: empty module path"))
        }
        // UTF-8 views throughout: Character-wise slicing (dropLast, index(after:)) costs grapheme breaking.
        let escapedModule = path[utf8.index(after: path.startIndex)..<slash]
        let tail = path[utf8.index(slash, offsetBy: 2)...]
        let kind: Kind
        if tail == "latest" {
            kind = .latest
        } else if tail == "v/list" {
            kind = .list
        } else if tail.utf8.starts(with: "v/".utf8) {
            let file = tail[tail.utf8.index(tail.startIndex, offsetBy: 2)...]
            let artifact: Artifact, escapedVersion: Substring
            if let v = dropSuffix(file, ".info") {
                artifact = .info; escapedVersion = v
            } else if let v = dropSuffix(file, ".mod") {
                artifact = .mod; escapedVersion = v
            } else if let v = dropSuffix(file, ".zip") {
                artifact = .zip; escapedVersion = v
            } else {
                return .failure(.notARoute)
            }
            // A byte test: Substring.contains("/") would be Foundation's string search.
            guard !escapedVersion.isEmpty, !escapedVersion.utf8.contains(UInt8(ascii: "/")) else {
                return .failure(.malformed(status: 400, message: "bad request: malformed version \"\(escapedVersion)\""))
            }
            let version: String
            do {
                version = try ModulePath.unescapeVersion(String(escapedVersion))
            } catch {
                return .failure(.malformed(status: 400, message: "bad request: \(error.message)"))
            }
            kind = .file(artifact, version: version)
        } else {
            return .failure(.notARoute)
        }
        let module: String
        do {
            module = try ModulePath.unescapePath(String(escapedModule))
        } catch {
            return .failure(.malformed(status: 400, message: "bad request: \(error.message)"))
        }
        return .success(DownloadRequest(module: module, kind: kind))
    }

    /// `s` without the ASCII `suffix`, or nil when it does not end with it.
    private static func dropSuffix(_ s: Substring, _ suffix: StaticString) -> Substring? {
        let n = suffix.utf8CodeUnitCount
        guard s.utf8.count >= n, s.utf8.suffix(n).elementsEqual(UnsafeBufferPointer(start: suffix.utf8Start, count: n)) else { return nil }
        return s[..<s.utf8.index(s.endIndex, offsetBy: -n)]
    }

    /// %XX-decodes a path. Nil for bad escapes, an escaped NUL, or a result that is not UTF-8.
    /// "+" stays "+" (paths are not form data).
    package static func percentDecode(_ s: Substring) -> String? {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return String(s) }
        var utf8 = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            let c = utf8[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, let hi = hex(utf8[i + 1]), let lo = hex(utf8[i + 2]) else { return nil }
                let byte = hi << 4 | lo
                if byte == 0 { return nil }
                out.append(byte)
                i += 3
            } else {
                out.append(c)
                i += 1
            }
        }
        utf8 = out
        return String(validating: utf8, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
