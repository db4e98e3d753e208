// Fuzz target: download-path decoding (Sources/AthensHost/Download/DownloadRequest.swift) and Go's module path
// and version rules (Sources/GoModule/ModulePath.swift, SemVer.swift).
//
// Input: up to three strings separated by NUL bytes (a, b, c). `a` is the request path; all three are tried
// as module paths, versions and glob patterns. Besides "never traps", checks:
// - a parsed request names a valid module and re-encodes to a path that parses to the same request;
// - percent-decoding keeps text without "%" as is, never yields NUL, and undoes a full %XX encoding;
// - escape(unescape(x)) == x and unescape(escape(x)) == x wherever the first step succeeds, for paths and versions;
// - a valid module path is a valid import path and file path; splitPathVersion's parts concatenate to the path;
// - canonical versions are valid and canonical; compare is reflexive, antisymmetric and transitive; sorted sorts.
import GoModule
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

private func same(_ x: String, _ y: String) -> Bool { x.utf8.elementsEqual(y.utf8) }

private func checkDownloadRequest(_ path: String) {
    switch DownloadRequest.parse(Substring(path)) {
    case let .success(request):
        require((try? ModulePath.check(request.module)) != nil, "parsed module \(request.module.debugDescription) is invalid")
        guard let escaped = try? ModulePath.escapePath(request.module) else {
            require(false, "parsed module \(request.module.debugDescription) cannot be escaped")
            return
        }
        let tail: String
        switch request.kind {
        case .list: tail = "/@v/list"
        case .latest: tail = "/@latest"
        case let .file(artifact, version):
            guard let escapedVersion = try? ModulePath.escapeVersion(version) else {
                require(false, "parsed version \(version.debugDescription) cannot be escaped")
                return
            }
            tail = "/@v/" + escapedVersion + artifact.description
        }
        let again = DownloadRequest.parse(Substring("/" + escaped + tail))
        require(again == .success(request), "\(path.debugDescription) re-encoded does not parse to the same request")
    case .failure(.notARoute):
        break
    case let .failure(.malformed(status, message)):
        require(status == 400, "status \(status) for a malformed request")
        require(message.hasPrefix("bad request: "), "message \(message.debugDescription)")
    }
}

private func checkPercentDecode(_ text: String) {
    guard let decoded = DownloadRequest.percentDecode(Substring(text)) else { return }
    require(!decoded.utf8.contains(0) || text.utf8.contains(0), "decoding \(text.debugDescription) yields NUL")
    if !text.utf8.contains(UInt8(ascii: "%")) { require(same(decoded, text), "text without % changed by decoding") }
    let hex = Array("0123456789ABCDEF".utf8)
    var encoded: [UInt8] = []
    for byte in decoded.utf8 { encoded += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]] }
    let redecoded = DownloadRequest.percentDecode(Substring(String(decoding: encoded, as: UTF8.self)))
    require(redecoded.map { same($0, decoded) } ?? decoded.utf8.contains(0), "full %XX encoding does not decode back")
}

private func checkEscaping(_ text: String) {
    if let path = try? ModulePath.unescapePath(text) {
        let back = try? ModulePath.escapePath(path)
        require(back.map { same($0, text) } == true, "escapePath(unescapePath(\(text.debugDescription))) = \(String(describing: back))")
    }
    if let escaped = try? ModulePath.escapePath(text) {
        let back = try? ModulePath.unescapePath(escaped)
        require(back.map { same($0, text) } == true, "unescapePath(escapePath(\(text.debugDescription))) = \(String(describing: back))")
    }
    if let version = try? ModulePath.unescapeVersion(text) {
        let back = try? ModulePath.escapeVersion(version)
        require(back.map { same($0, text) } == true, "escapeVersion(unescapeVersion(\(text.debugDescription))) = \(String(describing: back))")
    }
    if let escaped = try? ModulePath.escapeVersion(text) {
        let back = try? ModulePath.unescapeVersion(escaped)
        require(back.map { same($0, text) } == true, "unescapeVersion(escapeVersion(\(text.debugDescription))) = \(String(describing: back))")
    }
}

private func checkPathRules(_ path: String, version: String) {
    let isModule = (try? ModulePath.check(path)) != nil
    let isImport = (try? ModulePath.checkImportPath(path)) != nil
    let isFile = (try? ModulePath.checkFilePath(path)) != nil
    require(!isModule || isImport, "\(path.debugDescription) is a module path but not an import path")
    require(!isImport || isFile, "\(path.debugDescription) is an import path but not a file path")
    if let (prefix, pathMajor) = ModulePath.splitPathVersion(path) {
        require(same(prefix + pathMajor, path), "splitPathVersion(\(path.debugDescription)) = (\(prefix), \(pathMajor))")
        _ = try? ModulePath.checkPathMajor(version: version, pathMajor: pathMajor)
    } else {
        require(!isModule, "valid module path \(path.debugDescription) has no path/major split")
    }
    if (try? ModulePath.check(path: path, version: version)) != nil {
        require(isModule && SemVer.isValid(version), "check(path:version:) accepts \(path.debugDescription)@\(version.debugDescription)")
    }
}

private func checkVersion(_ v: String) {
    let valid = SemVer.isValid(v)
    let canonical = SemVer.canonical(v)
    require(valid == (canonical != nil), "isValid and canonical disagree on \(v.debugDescription)")
    require(valid || SemVer.compare(v, "v0.0.0") < 0, "invalid \(v.debugDescription) is not below every valid version")
    if let canonical {
        require(SemVer.isValid(canonical), "canonical(\(v.debugDescription)) = \(canonical.debugDescription) is invalid")
        require(SemVer.canonical(canonical).map { same($0, canonical) } == true, "canonical is not idempotent on \(v.debugDescription)")
        require(SemVer.compare(v, canonical) == 0, "\(v.debugDescription) does not compare equal to its canonical form")
        require(SemVer.major(v).map { canonical.utf8.starts(with: $0.utf8) } == true, "major of \(v.debugDescription)")
        require(SemVer.majorMinor(v).map { canonical.utf8.starts(with: $0.utf8) } == true, "majorMinor of \(v.debugDescription)")
    } else {
        require(SemVer.prerelease(v).isEmpty && SemVer.build(v).isEmpty, "prerelease/build of invalid \(v.debugDescription)")
    }
    if let moduleCanonical = ModulePath.canonicalVersion(v) {
        require(SemVer.isValid(moduleCanonical), "canonicalVersion(\(v.debugDescription)) is invalid")
        require(ModulePath.canonicalVersion(moduleCanonical).map { same($0, moduleCanonical) } == true,
                "canonicalVersion is not idempotent on \(v.debugDescription)")
    } else {
        require(!valid, "valid \(v.debugDescription) has no canonicalVersion")
    }
    require(!SemVer.isPseudoVersion(v) || valid, "invalid \(v.debugDescription) is a pseudo-version")
}

private func checkOrder(_ versions: [String]) {
    for x in versions {
        require(SemVer.compare(x, x) == 0, "compare(\(x.debugDescription), itself) != 0")
        for y in versions {
            let xy = SemVer.compare(x, y)
            require(xy >= -1 && xy <= 1 && xy == -SemVer.compare(y, x), "compare not antisymmetric on \(x.debugDescription), \(y.debugDescription)")
            for z in versions where xy <= 0 && SemVer.compare(y, z) <= 0 {
                require(SemVer.compare(x, z) <= 0, "compare not transitive on \(x.debugDescription), \(y.debugDescription), \(z.debugDescription)")
            }
        }
    }
    let sorted = SemVer.sorted(versions)
    require(sorted.count == versions.count, "sorted changed the count")
    for (x, y) in zip(sorted, sorted.dropFirst()) {
        require(SemVer.compare(x, y) <= 0, "sorted puts \(x.debugDescription) before \(y.debugDescription)")
    }
    for x in versions {
        require(sorted.filter { same($0, x) }.count == versions.filter { same($0, x) }.count, "sorted is not a permutation")
    }
}

private func checkPatterns(_ globs: String, _ target: String) {
    _ = ModulePath.matchPrefixPatterns(globs, target)
    // A plain path (no glob syntax, no comma) matches itself.
    let special = Set("*?[\\,".utf8)
    if !target.isEmpty, !target.utf8.contains(where: special.contains), target.utf8.last != UInt8(ascii: "/") {
        require(ModulePath.matchPrefixPatterns(target, target), "\(target.debugDescription) does not match itself")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = splitInput(inputBytes(data, size), on: 0, limit: 3).map { String(decoding: $0, as: UTF8.self) }
    let a = parts[0], b = parts.count > 1 ? parts[1] : "", c = parts.count > 2 ? parts[2] : ""
    checkDownloadRequest(a)
    checkPercentDecode(a)
    for text in parts {
        checkEscaping(text)
        checkVersion(text)
    }
    checkPathRules(a, version: b)
    checkPathRules(b, version: c)
    checkOrder([a, b, c])
    checkPatterns(a, b)
    checkPatterns(b, a)
    return 0
}
