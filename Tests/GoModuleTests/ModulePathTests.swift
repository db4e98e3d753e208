// Go's module path and version rules. Longer than ~400 lines on purpose: mostly tables of cases taken from
// golang.org/x/mod's own tests, one row per case.
import GoModule
import Testing

/// A string holding the exact bytes given, with any invalid UTF-8 replaced by U+FFFD as Swift does.
private func fromBytes(_ parts: [UInt8]...) -> String {
    String(decoding: parts.flatMap { $0 }, as: UTF8.self)
}

/// One row of module_test.go `checkPathTests`: whether a path is a valid module, import and file path.
struct CheckPathCase: Sendable, CustomTestStringConvertible {
    let path: String
    let moduleOK: Bool
    let importOK: Bool
    let fileOK: Bool
    init(_ path: String, _ moduleOK: Bool, _ importOK: Bool, _ fileOK: Bool) {
        (self.path, self.moduleOK, self.importOK, self.fileOK) = (path, moduleOK, importOK, fileOK)
    }
    var testDescription: String { path.debugDescription }
}

/// Which check a message row runs.
enum PathCheckKind: Sendable {
    case module, importPath, filePath
}

/// An input and the exact message the go command gives for it.
struct PathMessageCase: Sendable, CustomTestStringConvertible {
    let kind: PathCheckKind
    let path: String
    let message: String
    init(_ kind: PathCheckKind, _ path: String, _ message: String) {
        (self.kind, self.path, self.message) = (kind, path, message)
    }
    var testDescription: String { "\(kind) \(path.debugDescription)" }
}

/// A (path, version) pair from module_test.go `checkTests`.
struct PathVersionCase: Sendable, CustomTestStringConvertible {
    let path: String
    let version: String
    let ok: Bool
    init(_ path: String, _ version: String, _ ok: Bool) {
        (self.path, self.version, self.ok) = (path, version, ok)
    }
    var testDescription: String { "\(path)@\(version)" }
}

/// A glob list, a target and whether they match.
struct PrefixGlobCase: Sendable, CustomTestStringConvertible {
    let globs: String
    let target: String
    let matches: Bool
    init(_ globs: String, _ target: String, _ matches: Bool) {
        (self.globs, self.target, self.matches) = (globs, target, matches)
    }
    var testDescription: String { "\(globs.debugDescription) ~ \(target.debugDescription)" }
}

@Suite("ModulePath: golang.org/x/mod/module")
struct ModulePathTests {
    // module_test.go `checkPathTests` (current x/mod: '+' only in import paths, leading dots and dashes
    // only in import/file paths, trailing tilde-and-digits rejected outside file paths).
    static let checkPathTable: [CheckPathCase] = [
        CheckPathCase("x.y/z", true, true, true),
        CheckPathCase("x.y", true, true, true),

        CheckPathCase("", false, false, false),
        CheckPathCase(fromBytes(Array("x.y/".utf8), [0xFF], Array("z".utf8)), false, false, false),
        CheckPathCase("/x.y/z", false, false, false),
        CheckPathCase("x./z", false, false, false),
        CheckPathCase(".x/z", false, true, true),
        CheckPathCase("-x/z", false, false, true),
        CheckPathCase("x..y/z", true, true, true),
        CheckPathCase("x.y/z/../../w", false, false, false),
        CheckPathCase("x.y//z", false, false, false),
        CheckPathCase("x.y/z//w", false, false, false),
        CheckPathCase("x.y/z/", false, false, false),

        CheckPathCase("x.y/z/v0", false, true, true),
        CheckPathCase("x.y/z/v1", false, true, true),
        CheckPathCase("x.y/z/v2", true, true, true),
        CheckPathCase("x.y/z/v2.0", false, true, true),
        CheckPathCase("X.y/z", false, true, true),

        CheckPathCase("!x.y/z", false, false, true),
        CheckPathCase("_x.y/z", false, true, true),
        CheckPathCase("x.y!/z", false, false, true),
        CheckPathCase("x.y\"/z", false, false, false),
        CheckPathCase("x.y#/z", false, false, true),
        CheckPathCase("x.y$/z", false, false, true),
        CheckPathCase("x.y%/z", false, false, true),
        CheckPathCase("x.y&/z", false, false, true),
        CheckPathCase("x.y'/z", false, false, false),
        CheckPathCase("x.y(/z", false, false, true),
        CheckPathCase("x.y)/z", false, false, true),
        CheckPathCase("x.y*/z", false, false, false),
        CheckPathCase("x.y+/z", false, true, true),
        CheckPathCase("x.y,/z", false, false, true),
        CheckPathCase("x.y-/z", true, true, true),
        CheckPathCase("x.y./zt", false, false, false),
        CheckPathCase("x.y:/z", false, false, false),
        CheckPathCase("x.y;/z", false, false, false),
        CheckPathCase("x.y</z", false, false, false),
        CheckPathCase("x.y=/z", false, false, true),
        CheckPathCase("x.y>/z", false, false, false),
        CheckPathCase("x.y?/z", false, false, false),
        CheckPathCase("x.y@/z", false, false, true),
        CheckPathCase("x.y[/z", false, false, true),
        CheckPathCase("x.y\\/z", false, false, false),
        CheckPathCase("x.y]/z", false, false, true),
        CheckPathCase("x.y^/z", false, false, true),
        CheckPathCase("x.y_/z", false, true, true),
        CheckPathCase("x.y`/z", false, false, false),
        CheckPathCase("x.y{/z", false, false, true),
        CheckPathCase("x.y}/z", false, false, true),
        CheckPathCase("x.y~/z", false, true, true),
        CheckPathCase("x.y/z!", false, false, true),
        CheckPathCase("x.y/z\"", false, false, false),
        CheckPathCase("x.y/z#", false, false, true),
        CheckPathCase("x.y/z$", false, false, true),
        CheckPathCase("x.y/z%", false, false, true),
        CheckPathCase("x.y/z&", false, false, true),
        CheckPathCase("x.y/z'", false, false, false),
        CheckPathCase("x.y/z(", false, false, true),
        CheckPathCase("x.y/z)", false, false, true),
        CheckPathCase("x.y/z*", false, false, false),
        CheckPathCase("x.y/z++", false, true, true),
        CheckPathCase("x.y/z,", false, false, true),
        CheckPathCase("x.y/z-", true, true, true),
        CheckPathCase("x.y/z.t", true, true, true),
        CheckPathCase("x.y/z/t", true, true, true),
        CheckPathCase("x.y/z:", false, false, false),
        CheckPathCase("x.y/z;", false, false, false),
        CheckPathCase("x.y/z<", false, false, false),
        CheckPathCase("x.y/z=", false, false, true),
        CheckPathCase("x.y/z>", false, false, false),
        CheckPathCase("x.y/z?", false, false, false),
        CheckPathCase("x.y/z@", false, false, true),
        CheckPathCase("x.y/z[", false, false, true),
        CheckPathCase("x.y/z\\", false, false, false),
        CheckPathCase("x.y/z]", false, false, true),
        CheckPathCase("x.y/z^", false, false, true),
        CheckPathCase("x.y/z_", true, true, true),
        CheckPathCase("x.y/z`", false, false, false),
        CheckPathCase("x.y/z{", false, false, true),
        CheckPathCase("x.y/z}", false, false, true),
        CheckPathCase("x.y/z~", true, true, true),
        CheckPathCase("x.y/x.foo", true, true, true),
        CheckPathCase("x.y/aux.foo", false, false, false),
        CheckPathCase("x.y/prn", false, false, false),
        CheckPathCase("x.y/prn2", true, true, true),
        CheckPathCase("x.y/com", true, true, true),
        CheckPathCase("x.y/com1", false, false, false),
        CheckPathCase("x.y/com1.txt", false, false, false),
        CheckPathCase("x.y/calm1", true, true, true),
        CheckPathCase("x.y/z~", true, true, true),
        CheckPathCase("x.y/z~0", false, false, true),
        CheckPathCase("x.y/z~09", false, false, true),
        CheckPathCase("x.y/z09", true, true, true),
        CheckPathCase("x.y/z09~", true, true, true),
        CheckPathCase("x.y/z09~09z", true, true, true),
        CheckPathCase("x.y/z09~09z~09", false, false, true),
        CheckPathCase("github.com/!123/logrus", false, false, true),

        // Non-ASCII is refused in module and import paths until its case-folding and normalization are settled.
        CheckPathCase("github.com/user/unicode/испытание", false, false, true),

        CheckPathCase("../x", false, false, false),
        CheckPathCase("./y", false, false, false),
        CheckPathCase("x:y", false, false, false),
        CheckPathCase("\\temp\\foo", false, false, false),
        CheckPathCase(".gitignore", false, true, true),
        CheckPathCase(".github/ISSUE_TEMPLATE", false, true, true),
        CheckPathCase("x☺y", false, false, false),
    ]

    // Hostile and edge inputs beyond the x/mod table, with the answers Go's rules give.
    static let hostileTable: [CheckPathCase] = [
        CheckPathCase("..", false, false, false),
        CheckPathCase(".", false, false, false),
        CheckPathCase("...", false, false, false),
        CheckPathCase("x.y/..", false, false, false),
        CheckPathCase("x.y/./z", false, false, false),
        CheckPathCase("x.y/...", false, false, false),
        CheckPathCase("/", false, false, false),
        CheckPathCase("//", false, false, false),
        CheckPathCase("x.y/%2e%2e", false, false, true),
        CheckPathCase("x.y/%2e%2e/etc", false, false, true),
        CheckPathCase("x.y/a%2fb", false, false, true),
        CheckPathCase("x.y/a\0b", false, false, false),
        CheckPathCase("x.y\0", false, false, false),
        CheckPathCase("\0", false, false, false),
        CheckPathCase("x.y/a\nb", false, false, false),
        CheckPathCase("x.y/a\tb", false, false, false),
        CheckPathCase("x.y/a\u{7F}b", false, false, false),
        CheckPathCase("x.y/a b", false, false, true),
        CheckPathCase("x.y/a\u{A0}b", false, false, false),
        CheckPathCase("x.y/caf\u{E9}", false, false, true),
        CheckPathCase("x.y/cafe\u{301}", false, false, false),
        CheckPathCase("x.y/\u{212A}elvin", false, false, true),
        CheckPathCase("x.y/\u{FEFF}z", false, false, false),
        CheckPathCase("x.y/\u{202E}z", false, false, false),
        CheckPathCase("x.y/\u{1F600}", false, false, false),
        CheckPathCase("x.y/\u{FFFD}", false, false, false),
        CheckPathCase(fromBytes(Array("x.y/a".utf8), [0xC0, 0xAF], Array("b".utf8)), false, false, false),
        CheckPathCase(fromBytes(Array("x.y/".utf8), [0xED, 0xA0, 0x80]), false, false, false),
        CheckPathCase(fromBytes(Array("x.y/".utf8), [0xE2, 0x82]), false, false, false),
        CheckPathCase("x.y/CON", false, false, false),
        CheckPathCase("x.y/con", false, false, false),
        CheckPathCase("x.y/CoN.go", false, false, false),
        CheckPathCase("x.y/nul.tar.gz", false, false, false),
        CheckPathCase("x.y/Lpt9", false, false, false),
        CheckPathCase("x.y/lpt0", true, true, true),
        CheckPathCase("x.y/com10", true, true, true),
        CheckPathCase("x.y/conx", true, true, true),
        CheckPathCase("x.y/xcon", true, true, true),
        CheckPathCase("con.y/z", false, false, false),
        CheckPathCase("x.y/a/aux", false, false, false),
        CheckPathCase("x.y/longna~1", false, false, true),
        CheckPathCase("x.y/longna~1.dir", false, false, true),
        CheckPathCase("x.y/~9999999", false, false, true),
        CheckPathCase("x.y/~", true, true, true),
        CheckPathCase("x.y/~glenda", true, true, true),
        CheckPathCase("x.y/~glenda2", true, true, true),
        CheckPathCase("x.y/Upper", true, true, true),
        CheckPathCase("example.com", true, true, true),
        CheckPathCase("localhost/x", false, true, true),
        CheckPathCase("example", false, true, true),
        CheckPathCase("exa_mple.com/x", false, true, true),
        CheckPathCase("exa~mple.com/x", false, true, true),
        CheckPathCase("x.y/v2/v3", true, true, true),
        CheckPathCase("x.y/z/v01", false, true, true),
        CheckPathCase("x.y/z/v2.1", false, true, true),
        CheckPathCase("x.y/v2", true, true, true),
        CheckPathCase("gopkg.in/yaml.v2", true, true, true),
        CheckPathCase("gopkg.in/yaml", false, true, true),
        CheckPathCase("gopkg.in/yaml.v01", false, true, true),
        CheckPathCase("gopkg.in/yaml.v0", true, true, true),
        CheckPathCase("gopkg.in/yaml.v2-unstable", true, true, true),
        CheckPathCase("gopkg.in/user/pkg.v3", true, true, true),
    ]

    @Test("checkPathTests: module, import and file paths accept exactly what x/mod accepts", arguments: checkPathTable)
    func checkPathRows(row: CheckPathCase) {
        Self.expectOutcomes(row)
    }

    @Test("hostile inputs: dot elements, NUL, control and invisible characters, bad UTF-8, reserved names",
          arguments: hostileTable)
    func hostileInputs(row: CheckPathCase) {
        Self.expectOutcomes(row)
    }

    private static func expectOutcomes(_ row: CheckPathCase) {
        #expect(((try? ModulePath.check(row.path)) != nil) == row.moduleOK, "module path")
        #expect(((try? ModulePath.checkImportPath(row.path)) != nil) == row.importOK, "import path")
        #expect(((try? ModulePath.checkFilePath(row.path)) != nil) == row.fileOK, "file path")
        if row.moduleOK {
            // A valid module path escapes and unescapes back to itself.
            let escaped = try? ModulePath.escapePath(row.path)
            #expect(escaped.flatMap { try? ModulePath.unescapePath($0) } == row.path)
        } else {
            #expect(throws: ModuleError.self) { try ModulePath.escapePath(row.path) }
            #expect(throws: ModuleError.self) { try ModulePath.unescapePath(row.path) }
        }
        if let split = ModulePath.splitPathVersion(row.path) {
            #expect(Array((split.prefix + split.pathMajor).utf8) == Array(row.path.utf8))
        }
    }

    // Messages in the go command's words (module.go's texts and Go's %q quoting).
    static let messages: [PathMessageCase] = [
        PathMessageCase(.module, "", #"malformed module path "": empty string"#),
        PathMessageCase(.importPath, "", #"malformed import path "": empty string"#),
        PathMessageCase(.filePath, "", #"malformed file path "": empty string"#),
        PathMessageCase(.module, "/x.y/z", #"malformed module path "/x.y/z": empty path element"#),
        PathMessageCase(.module, "x./z", #"malformed module path "x./z": trailing dot in path element"#),
        PathMessageCase(.module, ".x/z", #"malformed module path ".x/z": leading dot in path element"#),
        PathMessageCase(.module, "-x/z", #"malformed module path "-x/z": leading dash"#),
        PathMessageCase(.importPath, "-x/z", #"malformed import path "-x/z": leading dash"#),
        PathMessageCase(.module, "x.y/z/../../w", #"malformed module path "x.y/z/../../w": invalid path element "..""#),
        PathMessageCase(.filePath, "./y", #"malformed file path "./y": invalid path element ".""#),
        PathMessageCase(.module, "x.y//z", #"malformed module path "x.y//z": double slash"#),
        PathMessageCase(.module, "x.y/z/", #"malformed module path "x.y/z/": trailing slash"#),
        PathMessageCase(.module, "X.y/z", #"malformed module path "X.y/z": invalid char 'X' in first path element"#),
        PathMessageCase(.module, "x_y.z/w", #"malformed module path "x_y.z/w": invalid char '_' in first path element"#),
        PathMessageCase(.module, "rsc/quote", #"malformed module path "rsc/quote": missing dot in first path element"#),
        PathMessageCase(.module, "x.y/z/v1", #"malformed module path "x.y/z/v1": invalid version"#),
        PathMessageCase(.module, "x.y/z/v2.0", #"malformed module path "x.y/z/v2.0": invalid version"#),
        PathMessageCase(.module, "gopkg.in/yaml", #"malformed module path "gopkg.in/yaml": invalid version"#),
        PathMessageCase(.module, "x.y/z+", #"malformed module path "x.y/z+": invalid char '+'"#),
        PathMessageCase(.module, "x.y/z'", #"malformed module path "x.y/z'": invalid char '\''"#),
        PathMessageCase(.importPath, "x.y\"/z", #"malformed import path "x.y\"/z": invalid char '"'"#),
        PathMessageCase(.importPath, "x.y/z\\", #"malformed import path "x.y/z\\": invalid char '\\'"#),
        PathMessageCase(.importPath, "x.y/z@", #"malformed import path "x.y/z@": invalid char '@'"#),
        PathMessageCase(.filePath, "x.y/z*", #"malformed file path "x.y/z*": invalid char '*'"#),
        PathMessageCase(.filePath, "x.y:/z", #"malformed file path "x.y:/z": invalid char ':'"#),
        PathMessageCase(.importPath, "x.y/z~0", #"malformed import path "x.y/z~0": trailing tilde and digits in path element"#),
        PathMessageCase(.module, "x.y/z09~09z~09", #"malformed module path "x.y/z09~09z~09": trailing tilde and digits in path element"#),
        PathMessageCase(.module, "x.y/aux.foo",
                    #"malformed module path "x.y/aux.foo": "aux" disallowed as path element component on Windows"#),
        PathMessageCase(.filePath, "x.y/com1.txt",
                    #"malformed file path "x.y/com1.txt": "com1" disallowed as path element component on Windows"#),
        PathMessageCase(.importPath, "x.y/CoN.go",
                    #"malformed import path "x.y/CoN.go": "CoN" disallowed as path element component on Windows"#),
        PathMessageCase(.importPath, "github.com/user/unicode/испытание",
                    #"malformed import path "github.com/user/unicode/испытание": invalid char 'и'"#),
        PathMessageCase(.module, "rsc io/quote", #"malformed module path "rsc io/quote": invalid char ' '"#),
        PathMessageCase(.module, "x.y/a\0b", #"malformed module path "x.y/a\x00b": invalid char '\x00'"#),
        PathMessageCase(.importPath, "x.y/a\nb", #"malformed import path "x.y/a\nb": invalid char '\n'"#),
        PathMessageCase(.importPath, "x.y/a\u{7F}b", #"malformed import path "x.y/a\x7fb": invalid char '\x7f'"#),
        PathMessageCase(.filePath, "x.y/a\u{A0}b", #"malformed file path "x.y/a\u00a0b": invalid char '\u00a0'"#),
        PathMessageCase(.filePath, "x.y/\u{FEFF}z", #"malformed file path "x.y/\ufeffz": invalid char '\ufeff'"#),
        PathMessageCase(.filePath, "x.y/\u{E0001}", #"malformed file path "x.y/\U000e0001": invalid char '\U000e0001'"#),
        PathMessageCase(.filePath, "x☺y", #"malformed file path "x☺y": invalid char '☺'"#),
        PathMessageCase(.module, fromBytes(Array("x.y/".utf8), [0xFF], Array("z".utf8)),
                    #"malformed module path "x.y/�z": invalid char '�'"#),
    ]

    @Test("errors carry the go command's message, quoted as Go's %q quotes", arguments: messages)
    func messagesMatchGo(row: PathMessageCase) {
        let error: ModuleError?
        switch row.kind {
        case .module: error = #expect(throws: ModuleError.self) { try ModulePath.check(row.path) }
        case .importPath: error = #expect(throws: ModuleError.self) { try ModulePath.checkImportPath(row.path) }
        case .filePath: error = #expect(throws: ModuleError.self) { try ModulePath.checkFilePath(row.path) }
        }
        #expect(error?.message == row.message)
        #expect(error?.description == row.message)
    }

    @Test("very long paths are checked without trouble, and an invalid character at the end is found")
    func veryLongPaths() throws {
        let longPath = "example.com/" + Array(repeating: "abcdefgh", count: 20_000).joined(separator: "/")
        try ModulePath.check(longPath)
        try ModulePath.checkImportPath(longPath)
        #expect(try ModulePath.escapePath(longPath) == longPath)
        #expect(throws: ModuleError.self) { try ModulePath.check(longPath + "/x*") }
        let longElement = "example.com/" + String(repeating: "A", count: 100_000)
        let escaped = try ModulePath.escapePath(longElement)
        #expect(escaped.utf8.count == "example.com/".utf8.count + 200_000)
        #expect(try ModulePath.unescapePath(escaped) == longElement)
        #expect(throws: ModuleError.self) { try ModulePath.check("example.com/" + String(repeating: ".", count: 100_000)) }
        #expect(!ModulePath.matchPrefixPatterns(String(repeating: "*a", count: 2_000), String(repeating: "a", count: 1_999) + "b"))
    }

    // module_test.go `checkTests`.
    static let checkTable: [PathVersionCase] = [
        PathVersionCase("rsc.io/quote", "0.1.0", false),
        PathVersionCase("rsc io/quote", "v1.0.0", false),

        PathVersionCase("github.com/go-yaml/yaml", "v0.8.0", true),
        PathVersionCase("github.com/go-yaml/yaml", "v1.0.0", true),
        PathVersionCase("github.com/go-yaml/yaml", "v2.0.0", false),
        PathVersionCase("github.com/go-yaml/yaml", "v2.1.5", false),
        PathVersionCase("github.com/go-yaml/yaml", "v3.0.0", false),

        PathVersionCase("github.com/go-yaml/yaml/v2", "v1.0.0", false),
        PathVersionCase("github.com/go-yaml/yaml/v2", "v2.0.0", true),
        PathVersionCase("github.com/go-yaml/yaml/v2", "v2.1.5", true),
        PathVersionCase("github.com/go-yaml/yaml/v2", "v3.0.0", false),

        PathVersionCase("gopkg.in/yaml.v0", "v0.8.0", true),
        PathVersionCase("gopkg.in/yaml.v0", "v1.0.0", false),
        PathVersionCase("gopkg.in/yaml.v0", "v2.0.0", false),
        PathVersionCase("gopkg.in/yaml.v0", "v2.1.5", false),
        PathVersionCase("gopkg.in/yaml.v0", "v3.0.0", false),

        PathVersionCase("gopkg.in/yaml.v1", "v0.8.0", false),
        PathVersionCase("gopkg.in/yaml.v1", "v1.0.0", true),
        PathVersionCase("gopkg.in/yaml.v1", "v2.0.0", false),
        PathVersionCase("gopkg.in/yaml.v1", "v2.1.5", false),
        PathVersionCase("gopkg.in/yaml.v1", "v3.0.0", false),

        // gopkg.in .v1 means v1 only, but early vgo wrote v0 pseudo-versions for it; those stay accepted.
        PathVersionCase("gopkg.in/check.v1", "v0.0.0", false),
        PathVersionCase("gopkg.in/check.v1", "v0.0.0-20160102150405-abcdef123456", true),

        PathVersionCase("gopkg.in/yaml.v2", "v1.0.0", false),
        PathVersionCase("gopkg.in/yaml.v2", "v2.0.0", true),
        PathVersionCase("gopkg.in/yaml.v2", "v2.1.5", true),
        PathVersionCase("gopkg.in/yaml.v2", "v3.0.0", false),

        PathVersionCase("rsc.io/quote", "v17.0.0", false),
        PathVersionCase("rsc.io/quote", "v17.0.0+incompatible", true),

        // Beyond the table: shorthands pass as in Go, hostile versions do not.
        PathVersionCase("rsc.io/quote", "v1.2", true),
        PathVersionCase("rsc.io/quote/v3", "v3.0.0-pre+meta", true),
        PathVersionCase("rsc.io/quote", "", false),
        PathVersionCase("rsc.io/quote", "latest", false),
        PathVersionCase("rsc.io/quote", "v1.0.0/../../x", false),
        PathVersionCase("rsc.io/quote", "v1.0.0\0", false),
        PathVersionCase("rsc.io/quote/v1", "v1.0.0", false),
        PathVersionCase("gopkg.in/yaml.v2-unstable", "v2.0.0", true),
    ]

    @Test("check(path:version:) accepts exactly the checkTests pairs x/mod accepts", arguments: checkTable)
    func checkPathAndVersion(row: PathVersionCase) {
        #expect(((try? ModulePath.check(path: row.path, version: row.version)) != nil) == row.ok)
    }

    @Test(
        "check(path:version:) words its errors as module.Check does",
        arguments: [
            ("rsc.io/quote", "0.1.0", "rsc.io/quote@0.1.0: invalid version: not a semantic version"),
            ("github.com/go-yaml/yaml", "v2.0.0",
             "github.com/go-yaml/yaml@v2.0.0: invalid version: should be v0 or v1, not v2"),
            ("github.com/go-yaml/yaml/v2", "v1.0.0",
             "github.com/go-yaml/yaml/v2@v1.0.0: invalid version: should be v2, not v1"),
            ("gopkg.in/yaml.v1", "v0.8.0", "gopkg.in/yaml.v1@v0.8.0: invalid version: should be v1, not v0"),
            ("rsc io/quote", "v1.0.0", #"malformed module path "rsc io/quote": invalid char ' '"#),
        ] as [(String, String, String)])
    func checkPathAndVersionMessages(path: String, version: String, message: String) {
        let error = #expect(throws: ModuleError.self) { try ModulePath.check(path: path, version: version) }
        #expect(error?.message == message)
    }

    @Test(
        "checkPathMajor: the MatchPathMajor table",
        arguments: [
            ("v0.0.0", "", true),
            ("v0.0.0", "/v2", false),
            ("v0.0.0", ".v0", true),
            ("v0.0.0-20190510104115-cbcb75029529", ".v1", true),
            ("v1.0.0", "/v2", false),
            ("v1.0.0", ".v1", true),
            ("v1.0.0", ".v1-unstable", true),
            ("v2.0.0+incompatible", "", true),
            ("v2.0.0", "", false),
            ("v2.0.0", "/v2", true),
            ("v2.0.0", ".v2", true),
            ("bad", "", false),
            ("v2.0.0", "v2", false),
        ] as [(String, String, Bool)])
    func checkPathMajor(version: String, pathMajor: String, ok: Bool) {
        #expect(((try? ModulePath.checkPathMajor(version: version, pathMajor: pathMajor)) != nil) == ok)
    }

    @Test(
        "checkPathMajor words its errors as module.InvalidVersionError does",
        arguments: [
            ("v2.0.0", "", #"version "v2.0.0" invalid: should be v0 or v1, not v2"#),
            ("v1.0.0", "/v2", #"version "v1.0.0" invalid: should be v2, not v1"#),
            ("v1.0.0", ".v2-unstable", #"version "v1.0.0" invalid: should be v2, not v1"#),
            ("bad", "/v2", #"version "bad" invalid: should be v2, not "#),
            ("v2.0.0", "v3", #"version "v2.0.0" invalid: should be v3, not v2"#),
        ] as [(String, String, String)])
    func checkPathMajorMessages(version: String, pathMajor: String, message: String) {
        let error = #expect(throws: ModuleError.self) {
            try ModulePath.checkPathMajor(version: version, pathMajor: pathMajor)
        }
        #expect(error?.message == message)
    }

    @Test(
        "splitPathVersion: the splitPathVersionTests table and its edges",
        arguments: [
            ("x.y/z", "x.y/z", ""),
            ("x.y/z/v2", "x.y/z", "/v2"),
            ("x.y/z/v3", "x.y/z", "/v3"),
            ("x.y/v", "x.y/v", ""),
            ("gopkg.in/yaml.v0", "gopkg.in/yaml", ".v0"),
            ("gopkg.in/yaml.v1", "gopkg.in/yaml", ".v1"),
            ("gopkg.in/yaml.v2", "gopkg.in/yaml", ".v2"),
            ("gopkg.in/yaml.v3", "gopkg.in/yaml", ".v3"),
            ("gopkg.in/yaml.v2-unstable", "gopkg.in/yaml", ".v2-unstable"),
            ("x.y/z/v10", "x.y/z", "/v10"),
            ("x.y/z/v2x", "x.y/z/v2x", ""),
            ("v2", "v2", ""),
            ("/v2", "", "/v2"),
            ("", "", ""),
        ] as [(String, String, String)])
    func splitPathVersionSplits(path: String, prefix: String, pathMajor: String) throws {
        let split = try #require(ModulePath.splitPathVersion(path))
        #expect(split.prefix == prefix)
        #expect(split.pathMajor == pathMajor)
    }

    @Test(
        "splitPathVersion refuses malformed suffixes",
        arguments: [
            "x.y/z/v0", "x.y/z/v1", "x.y/z/v01", "x.y/z/v2.0", "x.y/z/v1.2", "x.y/z/v2.", "gopkg.in/yaml",
            "gopkg.in/yaml.v01", "gopkg.in/yaml.v", "gopkg.in/yaml.v0-unstable", "gopkg.in/", "gopkg.in/v2",
        ])
    func splitPathVersionRefuses(path: String) {
        #expect(ModulePath.splitPathVersion(path) == nil)
    }

    @Test(
        "canonicalVersion is semver.Canonical that keeps +incompatible",
        arguments: [
            ("v1.2", "v1.2.0"), ("v1", "v1.0.0"), ("v1.0.0+meta", "v1.0.0"),
            ("v2.0.0+incompatible", "v2.0.0+incompatible"), ("v2.0.0-pre+incompatible", "v2.0.0-pre+incompatible"),
            ("v2.0.0+incompatible.x", "v2.0.0"), ("v2.0.0+Incompatible", "v2.0.0"),
        ] as [(String, String)])
    func canonicalVersion(v: String, want: String) {
        #expect(ModulePath.canonicalVersion(v) == want)
    }

    @Test("canonicalVersion is nil for invalid versions",
          arguments: ["", "bad", "v2+incompatible", "v2.0+incompatible", "2.0.0+incompatible", "v1.0.0-"])
    func canonicalVersionInvalid(v: String) {
        #expect(ModulePath.canonicalVersion(v) == nil)
    }

    // module_test.go `escapeTests`, plus the protocol notes' example.
    @Test(
        "escapePath replaces each upper-case letter by ! and the lower-case letter, and unescapePath undoes it",
        arguments: [
            ("ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789", "ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789"),
            ("github.com/GoogleCloudPlatform/omega", "github.com/!google!cloud!platform/omega"),
            ("github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"),
            ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
            ("example.com/ABCDEFGHIJKLMNOPQRSTUVWXYZ", "example.com/!a!b!c!d!e!f!g!h!i!j!k!l!m!n!o!p!q!r!s!t!u!v!w!x!y!z"),
        ] as [(String, String)])
    func escapeRoundTrip(path: String, escaped: String) throws {
        #expect(try ModulePath.escapePath(path) == escaped)
        #expect(try ModulePath.unescapePath(escaped) == path)
    }

    // module_test.go `badUnescape`, plus hostile encodings.
    @Test(
        "unescapePath refuses upper case, a trailing !, ! before anything but a-z, non-ASCII and invalid paths",
        arguments: [
            "github.com/GoogleCloudPlatform/omega",
            "github.com/!google!cloud!platform!/omega",
            "github.com/!0google!cloud!platform/omega",
            "github.com/!_google!cloud!platform/omega",
            "github.com/!!google!cloud!platform/omega",
            "",
            "github.com/x!", "github.com/!", "!", "github.com/!A", "github.com/!é", "github.com/é",
            "github.com/%21burnt%21sushi/toml", "github.com/%2e%2e", "github.com/../x", "github.com/./x",
            "github.com/a/b/", "/github.com/a", "github.com/a\0", "github.com/!c!o!n", "github.com/a/v1",
            "github.com/!x/!\u{212A}", "GITHUB.COM/x", "!github.com/x",
        ])
    func unescapePathRefuses(escaped: String) {
        #expect(throws: ModuleError.self) { try ModulePath.unescapePath(escaped) }
    }

    @Test(
        "unescapePath words its errors as module.UnescapePath does",
        arguments: [
            ("github.com/!google!cloud!platform!/omega", #"invalid escaped module path "github.com/!google!cloud!platform!/omega""#),
            ("github.com/Gopher", #"invalid escaped module path "github.com/Gopher""#),
            ("github.com/x!", #"invalid escaped module path "github.com/x!""#),
            ("github.com/%2e%2e",
             #"invalid escaped module path "github.com/%2e%2e": malformed module path "github.com/%2e%2e": invalid char '%'"#),
            ("github.com/!c!o!n",
             #"invalid escaped module path "github.com/!c!o!n": malformed module path "github.com/CON": "CON" disallowed as path element component on Windows"#),
        ] as [(String, String)])
    func unescapePathMessages(escaped: String, message: String) {
        let error = #expect(throws: ModuleError.self) { try ModulePath.unescapePath(escaped) }
        #expect(error?.message == message)
    }

    @Test(
        "escapeVersion and unescapeVersion round-trip versions, branch names and hashes",
        arguments: [
            ("v1.0.0", "v1.0.0"), ("v1.0.0-Pre", "v1.0.0-!pre"), ("v2.0.0+incompatible", "v2.0.0+incompatible"),
            ("master", "master"), ("Feature-X", "!feature-!x"), ("e3702bed2", "e3702bed2"), ("a b", "a b"),
            ("v1.0.0@x", "v1.0.0@x"), ("abc~1", "abc~1"), ("-rc", "-rc"), (".v1", ".v1"),
        ] as [(String, String)])
    func escapeVersionRoundTrip(version: String, escaped: String) throws {
        #expect(try ModulePath.escapeVersion(version) == escaped)
        #expect(try ModulePath.unescapeVersion(escaped) == version)
    }

    @Test(
        "escapeVersion refuses versions that are not single file names or contain !",
        arguments: [
            "", ".", "..", "v1.0.0/x", "feature/x", "v1.0.0!", "!", "v1.0.0.", "con", "NUL.txt", "v1*", "v1?", "v1:0",
            "a\0b", "a\nb", "v1.0.0\\x", "<v1.2.3", "v1\"",
        ])
    func escapeVersionRefuses(version: String) {
        let error = #expect(throws: ModuleError.self) { try ModulePath.escapeVersion(version) }
        #expect(error?.message == "version \(Self.goQuoteASCII(version)) invalid: disallowed version string")
    }

    @Test("escapeVersion refuses non-ASCII letters that file names allow, as Go does (an internal error there)")
    func escapeVersionNonASCII() {
        let error = #expect(throws: ModuleError.self) { try ModulePath.escapeVersion("v1.0.0-é") }
        #expect(error?.message == "internal error: inconsistency in EscapePath")
    }

    @Test(
        "unescapeVersion refuses bad encodings and versions that are not file names",
        arguments: [
            ("v1.0.0-Pre", #"invalid escaped version "v1.0.0-Pre""#),
            ("v1.0.0!", #"invalid escaped version "v1.0.0!""#),
            ("!!x", #"invalid escaped version "!!x""#),
            ("!1", #"invalid escaped version "!1""#),
            ("é", #"invalid escaped version "é""#),
            ("", #"invalid escaped version "": empty path element"#),
            ("..", #"invalid escaped version "..": invalid path element "..""#),
            ("a*b", #"invalid escaped version "a*b": invalid char '*'"#),
            ("a/b", #"invalid escaped version "a/b": invalid char '/'"#),
            ("!c!o!n", #"invalid escaped version "CON": "CON" disallowed as path element component on Windows"#),
            ("a\0", #"invalid escaped version "a\x00": invalid char '\x00'"#),
        ] as [(String, String)])
    func unescapeVersionRefuses(escaped: String, message: String) {
        let error = #expect(throws: ModuleError.self) { try ModulePath.unescapeVersion(escaped) }
        #expect(error?.message == message)
    }

    // module_test.go TestMatchPrefixPatterns, then GOPRIVATE-style cases and malformed globs.
    static let prefixPatternTable: [PrefixGlobCase] = [
        PrefixGlobCase("", "rsc.io/quote", false),
        PrefixGlobCase("/", "rsc.io/quote", false),
        PrefixGlobCase("*/quote", "rsc.io/quote", true),
        PrefixGlobCase("*/quo", "rsc.io/quote", false),
        PrefixGlobCase("*/quo??", "rsc.io/quote", true),
        PrefixGlobCase("*/quo*", "rsc.io/quote", true),
        PrefixGlobCase("*quo*", "rsc.io/quote", false),
        PrefixGlobCase("rsc.io", "rsc.io/quote", true),
        PrefixGlobCase("*.io", "rsc.io/quote", true),
        PrefixGlobCase("rsc.io/", "rsc.io/quote", true),
        PrefixGlobCase("rsc", "rsc.io/quote", false),
        PrefixGlobCase("rsc*", "rsc.io/quote", true),

        PrefixGlobCase("rsc.io", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/quote", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/quote/", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/quote/*", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/quote/*/", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/v3", "rsc.io/quote/v3", false),
        PrefixGlobCase("*/*/v3", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/*/*", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/*/*/", "rsc.io/quote/v3", true),
        PrefixGlobCase("*/*/*", "rsc.io/quote", false),
        PrefixGlobCase("*/*/*/", "rsc.io/quote", false),

        PrefixGlobCase("*/*/*,,", "rsc.io/quote", false),
        PrefixGlobCase("*/*/*,,*/quote", "rsc.io/quote", true),
        PrefixGlobCase(",,*/quote", "rsc.io/quote", true),

        PrefixGlobCase(",", "rsc.io/quote", false),
        PrefixGlobCase("*", "rsc.io/quote", true),
        PrefixGlobCase("rsc.io/quote/", "rsc.io/quote", true),
        PrefixGlobCase("rsc.io//", "rsc.io/quote", false),
        PrefixGlobCase("RSC.io", "rsc.io/quote", false),
        PrefixGlobCase("corp.example.com", "corp.example.com.evil.com/x", false),
        PrefixGlobCase("*.corp.example.com", "git.corp.example.com/team/x", true),
        PrefixGlobCase("*.corp.example.com", "corp.example.com/x", false),
        PrefixGlobCase("github.com/acme", "github.com/acme/tool/v2", true),
        PrefixGlobCase("github.com/acme", "github.com/acmecorp/tool", false),
        PrefixGlobCase("github.com/acme,rsc.io/private", "rsc.io/private/x", true),
        PrefixGlobCase("[", "rsc.io/quote", false),
        PrefixGlobCase("[,rsc.io", "rsc.io/quote", true),
        PrefixGlobCase("rsc.io/[", "rsc.io/quote", false),
        PrefixGlobCase("\\", "rsc.io/quote", false),
        PrefixGlobCase("rsc.i[o-p]", "rsc.io/quote", true),
        PrefixGlobCase("rsc.i[^o]", "rsc.io/quote", false),
        PrefixGlobCase("rsc\\.io", "rsc.io/quote", true),
        PrefixGlobCase("rsc.io", "rsc.io", true),
        PrefixGlobCase("rsc.io", "", false),
        PrefixGlobCase("*", "", true),
        // path.Match's own table would say false here; the prefix "ab" is what is matched.
        PrefixGlobCase("a*", "ab/c", true),
        // A "/" in a class counts as a glob slash, which lets these reach a "/" in the target:
        // ? and * never match it, a class may.
        PrefixGlobCase("a?b[^/]", "a/bc", false),
        PrefixGlobCase("a*[^/]", "a/b", false),
        PrefixGlobCase("a[^x]b[^/]", "a/bc", true),
    ]

    @Test("matchPrefixPatterns matches globs against path prefixes", arguments: prefixPatternTable)
    func matchPrefixPatterns(row: PrefixGlobCase) {
        #expect(ModulePath.matchPrefixPatterns(row.globs, row.target) == row.matches)
    }

    // Go's path/match_test.go `matchTests`. With as many slashes in the target as in the glob and no comma,
    // matchPrefixPatterns is path.Match on the whole target; a malformed pattern (ErrBadPattern) matches nothing.
    static let pathMatchTable: [PrefixGlobCase] = [
        PrefixGlobCase("abc", "abc", true),
        PrefixGlobCase("*", "abc", true),
        PrefixGlobCase("*c", "abc", true),
        PrefixGlobCase("a*", "a", true),
        PrefixGlobCase("a*", "abc", true),
        PrefixGlobCase("a*/b", "abc/b", true),
        PrefixGlobCase("a*/b", "a/c/b", false),
        PrefixGlobCase("a*b*c*d*e*/f", "axbxcxdxe/f", true),
        PrefixGlobCase("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
        PrefixGlobCase("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        PrefixGlobCase("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
        PrefixGlobCase("a*b?c*x", "abxbbxdbxebxczzx", true),
        PrefixGlobCase("a*b?c*x", "abxbbxdbxebxczzy", false),
        PrefixGlobCase("ab[c]", "abc", true),
        PrefixGlobCase("ab[b-d]", "abc", true),
        PrefixGlobCase("ab[e-g]", "abc", false),
        PrefixGlobCase("ab[^c]", "abc", false),
        PrefixGlobCase("ab[^b-d]", "abc", false),
        PrefixGlobCase("ab[^e-g]", "abc", true),
        PrefixGlobCase("a\\*b", "a*b", true),
        PrefixGlobCase("a\\*b", "ab", false),
        PrefixGlobCase("a?b", "a☺b", true),
        PrefixGlobCase("a[^a]b", "a☺b", true),
        PrefixGlobCase("a???b", "a☺b", false),
        PrefixGlobCase("a[^a][^a][^a]b", "a☺b", false),
        PrefixGlobCase("[a-ζ]*", "α", true),
        PrefixGlobCase("*[a-ζ]", "A", false),
        PrefixGlobCase("a?b", "a/b", false),
        PrefixGlobCase("a*b", "a/b", false),
        PrefixGlobCase("[\\]a]", "]", true),
        PrefixGlobCase("[\\-]", "-", true),
        PrefixGlobCase("[x\\-]", "x", true),
        PrefixGlobCase("[x\\-]", "-", true),
        PrefixGlobCase("[x\\-]", "z", false),
        PrefixGlobCase("[\\-x]", "x", true),
        PrefixGlobCase("[\\-x]", "-", true),
        PrefixGlobCase("[\\-x]", "a", false),
        PrefixGlobCase("[]a]", "]", false),
        PrefixGlobCase("[-]", "-", false),
        PrefixGlobCase("[x-]", "x", false),
        PrefixGlobCase("[x-]", "-", false),
        PrefixGlobCase("[x-]", "z", false),
        PrefixGlobCase("[-x]", "x", false),
        PrefixGlobCase("[-x]", "-", false),
        PrefixGlobCase("[-x]", "a", false),
        PrefixGlobCase("\\", "a", false),
        PrefixGlobCase("[a-b-c]", "a", false),
        PrefixGlobCase("[", "a", false),
        PrefixGlobCase("[^", "a", false),
        PrefixGlobCase("[^bc", "a", false),
        PrefixGlobCase("a[", "a", false),
        PrefixGlobCase("a[", "ab", false),
        PrefixGlobCase("a[", "x", false),
        PrefixGlobCase("a/b[", "x", false),
        PrefixGlobCase("*x", "xxx", true),
    ]

    @Test("path.Match semantics, through matchPrefixPatterns", arguments: pathMatchTable)
    func pathMatch(row: PrefixGlobCase) {
        #expect(ModulePath.matchPrefixPatterns(row.globs, row.target) == row.matches)
    }

    /// Go's %q for the printable ASCII and control characters the refusal table uses.
    private static func goQuoteASCII(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\0": out += "\\x00"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
