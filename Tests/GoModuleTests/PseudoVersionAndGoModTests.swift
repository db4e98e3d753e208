// The GoModule pieces GitFetcher added: pseudo-versions (x/mod module/pseudo.go), the go.mod facts a VCS
// fetcher reads (modfile.ModulePath, go and retract directives), and zip.Create's file selection.
import GoModule
import Testing

@Suite("GoModule: pseudo-versions")
struct GitFetcherPseudoVersionTests {
    // 1600000000 = 2020-09-13T12:26:40Z.
    static let made: [(major: String, older: String, expected: String)] = [
        ("", "", "v0.0.0-20200913122640-abcdefabcdef"),
        ("v2", "", "v2.0.0-20200913122640-abcdefabcdef"),
        ("", "v1.2.3", "v1.2.4-0.20200913122640-abcdefabcdef"),
        ("", "v1.2.9", "v1.2.10-0.20200913122640-abcdefabcdef"),
        ("", "v1.2.99", "v1.2.100-0.20200913122640-abcdefabcdef"),
        ("", "v1.2.3-pre", "v1.2.3-pre.0.20200913122640-abcdefabcdef"),
        ("", "v2.0.0+incompatible", "v2.0.1-0.20200913122640-abcdefabcdef+incompatible"),
        ("", "v2.0.0-rc.1+incompatible", "v2.0.0-rc.1.0.20200913122640-abcdefabcdef+incompatible"),
        ("", "not-a-version", "v0.0.0-20200913122640-abcdefabcdef"),
    ]

    @Test("make builds the three forms (and +incompatible)", arguments: made)
    func make(major: String, older: String, expected: String) {
        let version = PseudoVersion.make(major: major, older: older, unixSeconds: 1_600_000_000, rev: "abcdefabcdef")
        #expect(version == expected)
        #expect(SemVer.isPseudoVersion(version))
    }

    static let bases: [(version: String, base: String)] = [
        ("v0.0.0-20200913122640-abcdefabcdef", ""),
        ("v1.2.4-0.20200913122640-abcdefabcdef", "v1.2.3"),
        ("v1.2.10-0.20200913122640-abcdefabcdef", "v1.2.9"),
        ("v1.2.3-pre.0.20200913122640-abcdefabcdef", "v1.2.3-pre"),
        ("v2.0.1-0.20200913122640-abcdefabcdef+incompatible", "v2.0.0+incompatible"),
    ]

    @Test("base and parse invert make", arguments: bases)
    func base(version: String, base: String) throws {
        #expect(try PseudoVersion.base(version) == base)
        let parts = try #require(PseudoVersion.parse(version))
        #expect(parts.timestamp == "20200913122640")
        #expect(parts.rev == "abcdefabcdef")
    }

    static let notBases = ["v1.2.3", "v1.2.0-0.20200913122640-abcdefabcdef", "v0.0.0-20200913122640-abcdefabcdef+incompatible", "latest"]

    @Test("base refuses non-pseudo-versions, patch 0 with -0, and a no-base form with build metadata", arguments: notBases)
    func badBase(version: String) {
        #expect(throws: ModuleError.self) { try PseudoVersion.base(version) }
    }

    static let times: [(seconds: Int64, timestamp: String, rfc3339: String)] = [
        (0, "19700101000000", "1970-01-01T00:00:00Z"),
        (951_782_400, "20000229000000", "2000-02-29T00:00:00Z"),
        (1_600_000_000, "20200913122640", "2020-09-13T12:26:40Z"),
        (4_102_444_799, "20991231235959", "2099-12-31T23:59:59Z"),
        (-1, "19691231235959", "1969-12-31T23:59:59Z"),
    ]

    @Test("UTC timestamps: leap days, year ends, before 1970", arguments: times)
    func timestamps(seconds: Int64, timestamp: String, rfc3339: String) {
        #expect(PseudoVersion.timestamp(unixSeconds: seconds) == timestamp)
        #expect(PseudoVersion.rfc3339(unixSeconds: seconds) == rfc3339)
    }
}

@Suite("GoModule: go.mod facts")
struct GitFetcherGoModFileTests {
    static let paths: [(text: String, path: String)] = [
        ("module example.com/m\n", "example.com/m"),
        ("// comment\nmodule   example.com/m // trailing\n\ngo 1.21\n", "example.com/m"),
        ("module \"example.com/quoted\"\n", "example.com/quoted"),
        ("module `example.com/raw`\n", "example.com/raw"),
        ("module \"unterminated\n", ""),
        ("modulex example.com/m\n", ""),
        ("module\n", ""),
        ("go 1.21\n", ""),
        ("", ""),
    ]

    @Test("modulePath reads the module line as modfile.ModulePath does", arguments: paths)
    func modulePath(text: String, path: String) {
        #expect(GoModFile.modulePath(Array(text.utf8)) == path)
    }

    @Test("goVersion reads the go directive; atLeast compares dotted versions")
    func goVersion() {
        #expect(GoModFile.goVersion(Array("module m\n\ngo 1.24\n".utf8)) == "1.24")
        #expect(GoModFile.goVersion(Array("module m\n".utf8)) == nil)
        #expect(GoModFile.goVersion("1.24", atLeast: "1.24"))
        #expect(GoModFile.goVersion("1.24.1", atLeast: "1.24"))
        #expect(GoModFile.goVersion("1.25rc1", atLeast: "1.24"))
        #expect(!GoModFile.goVersion("1.23.9", atLeast: "1.24"))
        #expect(!GoModFile.goVersion("1.9", atLeast: "1.24"))
        #expect(!GoModFile.goVersion(nil, atLeast: "1.24"))
        #expect(!GoModFile.goVersion("banana", atLeast: "1.24"))
    }

    @Test("retract: single versions, intervals, blocks, comments")
    func retractions() {
        let text = """
            module example.com/m

            retract v1.0.0 // oops
            retract [v1.1.0, v1.1.9]
            require (
            \texample.com/dep v1.0.0
            )
            retract (
            \t// rationale
            \tv1.3.0
            \t[v1.4.0, v1.4.5] // range
            )
            """
        let found = GoModFile.retractions(Array(text.utf8))
        #expect(found == [.init(low: "v1.0.0", high: "v1.0.0"), .init(low: "v1.1.0", high: "v1.1.9"),
                          .init(low: "v1.3.0", high: "v1.3.0"), .init(low: "v1.4.0", high: "v1.4.5")])
        #expect(found[1].contains("v1.1.5"))
        #expect(!found[1].contains("v1.2.0"))
        #expect(found[3].contains("v1.4.1-0.20200913122640-abcdefabcdef"))
    }

    static let badRetractions = ["retract banana\n", "retract [v1.0.0 v1.1.0]\n", "retract [v1.0.0, \n", "retract (\n\tnope\n)\n"]

    @Test("a malformed retract directive means no retractions at all", arguments: badRetractions)
    func badRetraction(text: String) {
        #expect(GoModFile.retractions(Array(("module m\nretract v0.1.0\n" + text).utf8)).isEmpty)
    }
}

@Suite("GoModule: zip.Create's file selection")
struct GitFetcherZipPlanTests {
    static let tree: [(path: String, kind: ModuleZipPlan.Kind)] = [
        ("go.mod", .regular), ("a.go", .regular), ("vendor/modules.txt", .regular), ("vendor/top.go", .regular),
        ("vendor/example.com/dep/dep.go", .regular), ("pkg/vendor/vendor.go", .regular), ("sub/go.mod", .regular),
        ("sub/x.go", .regular), ("sub/deeper/y.go", .regular), ("Nested/GO.MOD", .regular), ("Nested/n.go", .regular),
        ("linked/go.mod", .symlink), ("linked/l.go", .regular), ("link.go", .symlink), ("module", .other),
        (".hg_archival.txt", .regular), ("sub2/.hg_archival.txt", .regular), ("odd name (1).txt", .regular),
    ]

    @Test("before go 1.24: vendor subdirectories (with the offset bug), nested modules, symlinks and irregular files omitted")
    func legacyRule() throws {
        let valid = try ModuleZipPlan.plan(files: Self.tree, goVersion: "1.16")
        #expect(valid == ["go.mod", "a.go", "vendor/modules.txt", "vendor/top.go", "linked/l.go",
                          "sub2/.hg_archival.txt", "odd name (1).txt"])
    }

    @Test("from go 1.24: vendor/modules.txt omitted and pkg/vendor/vendor.go kept")
    func modernRule() throws {
        let valid = try ModuleZipPlan.plan(files: Self.tree, goVersion: "1.24")
        #expect(valid == ["go.mod", "a.go", "vendor/top.go", "pkg/vendor/vendor.go", "linked/l.go",
                          "sub2/.hg_archival.txt", "odd name (1).txt"])
    }

    static let invalid: [(files: [String], message: String)] = [
        (["a.txt", "A.txt"], "A.txt: case-insensitive file name collision: \"a.txt\" and \"A.txt\""),
        (["dir/x", "DIR/y"], "DIR/y: case-insensitive file name collision: \"dir\" and \"DIR\""),
        (["x", "x/y"], "x/y: entry \"x\" is both a file and a directory"),
        (["GO.MOD"], "GO.MOD: go.mod files must have lowercase names"),
        (["bad\"quote.txt"], "malformed file path"),
        (["con.txt"], "malformed file path"),
        (["trailing."], "malformed file path"),
        (["a/../b"], "a/../b: file path is not clean"),
        (["a//b"], "a//b: file path is not clean"),
        (["/abs"], "/abs: file path is not relative"),
    ]

    @Test("invalid names and collisions fail the whole zip with Go's message", arguments: invalid)
    func invalidNames(files: [String], message: String) {
        let error = #expect(throws: ZipError.self) {
            _ = try ModuleZipPlan.plan(files: files.map { ($0, .regular) }, goVersion: nil)
        }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test("a symlink still collides with a file of the same folded name")
    func symlinkCollides() {
        #expect(throws: ZipError.self) { _ = try ModuleZipPlan.plan(files: [("Readme", .regular), ("README", .symlink)], goVersion: nil) }
    }

    @Test("size budget: total, go.mod and LICENSE limits")
    func sizes() throws {
        var budget = ModuleZipPlan.SizeBudget()
        try budget.add(path: "a", size: ModuleZip.maxZipFile - 10)
        #expect(throws: ZipError.self) { try budget.add(path: "b", size: 11) }
        var small = ModuleZipPlan.SizeBudget()
        #expect(throws: ZipError.self) { try small.add(path: "go.mod", size: ModuleZip.maxGoMod + 1) }
        #expect(throws: ZipError.self) { try small.add(path: "LICENSE", size: ModuleZip.maxLICENSE + 1) }
        try small.add(path: "sub/LICENSE", size: ModuleZip.maxLICENSE + 1)
    }
}
