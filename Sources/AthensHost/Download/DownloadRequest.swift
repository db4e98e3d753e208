import GoModule

/// A GOPROXY protocol request, decoded and validated. The one URL parser of the download routes.
struct DownloadRequest: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        /// `/{module}/@v/list`
        case list
        /// `/{module}/@latest`
        case latest
        /// `/{module}/@v/{version}.info|.mod|.zip`; the version is decoded but may be a query for .info: a branch,
        /// a commit, or any version not canonical for the module (`ModulePath.isCanonical(path:version:)`).
        case file(Artifact, version: String)
    }

    /// Decoded module path ("github.com/BurntSushi/toml"), valid per the go command's rules.
    var module: String
    var kind: Kind

    /// The metrics label: the artifact kind, "list" or "latest".
    var endpoint: String {
        switch kind {
        case .list: "list"
        case .latest: "latest"
        case .file(.info, _): "info"
        case .file(.mod, _): "mod"
        case .file(.zip, _): "zip"
        }
    }

    /// Why a path is not a valid download request.
    enum Failure: Error, Equatable {
        /// Not a download route at all (→ 404).
        case notARoute
        /// A download route with a malformed module or version (→ 400 / 404 with this message).
        case malformed(status: Int, message: String)
    }

    /// Parses a still percent-encoded request path such as "/github.com/%21burnt/toml/@v/v1.0.0.info".
    static func parse(_ encodedPath: Substring) -> Result<DownloadRequest, Failure> {
        guard let path = percentDecode(encodedPath) else {
            return .failure(.malformed(status: 400, message: "bad request: malformed percent-encoding in path"))
        }
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
        let escapedModule = path[path.index(after: path.startIndex)..<slash]
        let tail = path[utf8.index(slash, offsetBy: 2)...]
        let kind: Kind
        if tail == "latest" {
            kind = .latest
        } else if tail == "v/list" {
            kind = .list
        } else if tail.hasPrefix("v/") {
            let file = tail.dropFirst(2)
            let artifact: Artifact, escapedVersion: Substring
            if file.hasSuffix(".info") {
                artifact = .info; escapedVersion = file.dropLast(5)
            } else if file.hasSuffix(".mod") {
                artifact = .mod; escapedVersion = file.dropLast(4)
            } else if file.hasSuffix(".zip") {
                artifact = .zip; escapedVersion = file.dropLast(4)
            } else {
                return .failure(.notARoute)
            }
            guard !escapedVersion.isEmpty, !escapedVersion.contains("/") else {
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

    /// %XX-decodes a path. Nil for bad escapes, an escaped NUL, or a result that is not UTF-8.
    /// "+" stays "+" (paths are not form data).
    static func percentDecode(_ s: Substring) -> String? {
        var utf8 = Array(s.utf8)
        guard utf8.contains(UInt8(ascii: "%")) else { return String(s) }
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
