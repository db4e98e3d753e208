import GoModule

/// What `POST /admin/prefetch[?format=gosum|gomod|list]` names: module versions and queries to warm the cache with.
///
/// The body is one of:
/// - a go.sum: every `path version` and `path version/go.mod` line. A version whose only line is `/go.mod` is one the
///   go command reads only the go.mod of (module graph pruning); it is prefetched whole anyway, because storage keeps
///   a version's .info, .mod and .zip together (a stash is never partial), and a client asking for its .mod would
///   stash the whole version on a miss too. Such items say `goModOnly`.
/// - a go.mod: its `require` lines (single and in blocks; `// indirect` ones too). `replace`, `exclude` and other
///   directives are ignored (they change what a build uses, not what a proxy holds) and `notes` say so.
/// - a list: one `module@version` or `module@query` (`@latest`, `@v1`, `@master`, a commit) per line; blank lines
///   and `#` comments are skipped.
/// Without `format` the body says which: a line starting with a go.mod directive → go.mod; a first line of three
/// fields ending in `h1:…` → go.sum; else a list.
///
/// A line that does not parse, or names a malformed path or version (`ModulePath`), refuses the whole body: `400`
/// listing the bad lines by number, and nothing starts. What only a fetch can tell (not found, excluded, private) is
/// a failed item of the job instead. Items are deduplicated by module and version (or query).
package struct PrefetchRequest: Equatable {
    package enum Format: String, Equatable { case gosum, gomod, list }

    /// One thing to prefetch: a canonical version, or a query that a fetcher resolves to one.
    package struct Item: Equatable, Sendable {
        package var module: String
        /// A canonical version for the module, or a query (`latest`, `v1`, `master`…).
        package var version: String
        package var isQuery: Bool
        /// A go.sum named only this version's go.mod.
        package var goModOnly = false
    }

    package var format: Format
    package var items: [Item]
    /// What was ignored, for the job's answer ("go.mod: 2 replace directives ignored").
    package var notes: [String]

    /// Lines listed in a refusal at most (the count says how many more).
    static let listedProblems = 20

    package static func parse(query: Substring, body: [UInt8], maxItems: Int) throws(AdminError) -> PrefetchRequest {
        let format = try Self.format(query: query, body: body)
        var items: [Item] = [], notes: [String] = []
        var problems: [(line: Int, message: String)] = []
        var seen: [String: Int] = [:]
        func add(_ module: String, _ version: String, line: Int, goModOnly: Bool = false, queries: Bool = false) {
            if let problem = problem(module: module, version: version, queries: queries) {
                problems.append((line, problem))
                return
            }
            let isQuery = !ModulePath.isCanonical(path: module, version: version)
            let key = module + "@" + version
            if let index = seen[key] {
                // The zip line of a version seen first by its /go.mod line: the whole version is wanted.
                if !goModOnly { items[index].goModOnly = false }
            } else {
                seen[key] = items.count
                items.append(Item(module: module, version: version, isQuery: isQuery, goModOnly: goModOnly))
            }
        }
        switch format {
        case .gosum:
            let read = GoSumFile.lines(body)
            problems += read.problems
            for line in read.lines { add(line.path, line.version, line: line.line, goModOnly: line.goModOnly) }
        case .gomod:
            let read = GoModFile.requirements(body)
            problems += read.problems
            for requirement in read.requires { add(requirement.path, requirement.version, line: requirement.line) }
            for (directive, count) in read.ignored.sorted(by: { $0.key < $1.key }) {
                notes.append("go.mod: \(count) \(directive) directive\(count == 1 ? "" : "s") ignored")
            }
        case .list:
            for (index, raw) in body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
                var line = raw
                while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
                while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
                if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
                guard let at = line.lastIndex(of: UInt8(ascii: "@")), at != line.startIndex, at != line.index(before: line.endIndex) else {
                    problems.append((index + 1, "expected module@version or module@query"))
                    continue
                }
                add(String(decoding: line[..<at], as: UTF8.self), String(decoding: line[(at + 1)...], as: UTF8.self), line: index + 1, queries: true)
            }
        }
        if !problems.isEmpty {
            let listed = problems.sorted { $0.line < $1.line }.prefix(listedProblems).map { "line \($0.line): \($0.message)" }
            let more = problems.count > listedProblems ? "; and \(problems.count - listedProblems) more" : ""
            throw .badRequest("prefetch: \(problems.count) bad line\(problems.count == 1 ? "" : "s") (\(format.rawValue)), nothing started: "
                + listed.joined(separator: "; ") + more)
        }
        guard !items.isEmpty else { throw .badRequest("prefetch: the body names no module (\(format.rawValue))") }
        guard items.count <= maxItems else {
            throw .badRequest("prefetch: \(items.count) items, more than admin.prefetchMaxItems (\(maxItems)); split the list")
        }
        return PrefetchRequest(format: format, items: items, notes: notes)
    }

    /// The `format` query parameter, or what the body looks like.
    private static func format(query: Substring, body: [UInt8]) throws(AdminError) -> Format {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "format" else { throw .badRequest("query.\(parts[0]): unknown parameter") }
            guard parts.count == 2, let format = Format(rawValue: String(parts[1])) else {
                throw .badRequest("query.format: gosum, gomod or list")
            }
            return format
        }
        guard String(validating: body, as: UTF8.self) != nil else { throw .badRequest("prefetch: the body is not UTF-8 text") }
        let directives: Set<String> = ["module", "go", "require", "replace", "exclude", "retract", "toolchain"]
        for line in body.split(separator: UInt8(ascii: "\n")) {
            let word = line.drop { $0 == 0x20 || $0 == 0x09 }.prefix { $0 != 0x20 && $0 != 0x09 && $0 != 0x28 && $0 != 0x0D }
            if directives.contains(String(decoding: word, as: UTF8.self)) { return .gomod }
        }
        return GoSumFile.looksLike(body) ? .gosum : .list
    }

    /// Why `module` and `version` cannot be prefetched, or nil. Queries (anything not canonical for the path) only in lists.
    private static func problem(module: String, version: String, queries: Bool) -> String? {
        // Before any other check: the messages quote the text, and a line of control bytes must not reach a log.
        guard module.utf8.count <= 1024, version.utf8.count <= 256 else { return "a module path over 1024 or a version over 256 bytes" }
        guard version.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return "a version with a control, space or non-ASCII byte" }
        do { try ModulePath.check(module) } catch { return error.message }
        if ModulePath.isCanonical(path: module, version: version) { return nil }
        guard queries else {
            do { try ModulePath.check(path: module, version: version) } catch { return error.message }
            return "\(module)@\(version): not a canonical version"
        }
        if version == "upgrade" || version == "patch" { return "\(module)@\(version): use @latest (upgrade and patch need a current version)" }
        // A query is one path element of the proxy URL: no slash, no "..", nothing the escaping refuses.
        guard !version.contains("/"), version != "..", version != ".", (try? ModulePath.escapeVersion(version)) != nil else {
            return "\(module)@\(version): not a version or query"
        }
        return nil
    }
}
