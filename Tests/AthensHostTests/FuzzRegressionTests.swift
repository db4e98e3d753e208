import Foundation
import GoModule
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// Inputs found by the libFuzzer targets in fuzz/ (fuzz/run.sh), kept as tests once fixed.
@Suite("Fuzz regressions", .blockingBodies)
struct FuzzRegressionTests {
    /// manifest target: ATHENS_LISTEN "0[fe80::1]:1" with ATHENS_PORT made the listen address "[0[fe80::1]]:8080",
    /// which parseListen then refused; and "[" followed by a combining mark was not seen as a bracket.
    @Test("ATHENS_PORT leaves a listen address that parseListen reads back with that port", arguments: [
        "0[fe80::1]:1", "[[::1]:1", "a]:1", "[\u{301}::1]:1", "\u{301}:x:1", "[::1]:1", "127.0.0.1:1", ":1", "nonsense",
    ])
    func portOverride(listen: String) throws {
        var manifest = Manifest.defaultManifest(pluginDirectory: "/plugins")
        try manifest.applyEnvironment(["ATHENS_LISTEN": listen, "ATHENS_PORT": ":8080"])
        let parsed = try HTTPServer.parseListen(manifest.listen)
        #expect(parsed.port == 8080)
    }

    @Test("a bracket left in the host is a bad address", arguments: ["0[fe80::1]:1", "[[::1]:80", "a]:80", "x[y:80"])
    func bracketInHost(listen: String) {
        let error = #expect(throws: ServerError.self) { try HTTPServer.parseListen(listen) }
        #expect(error?.description == "listen \"\(listen)\": bad address")
    }

    @Test("brackets and colons are found as bytes, even before a combining mark", arguments: [
        ("[\u{301}::1]:80", "\u{301}::1", UInt16(80)), ("[::1]:443", "::1", 443), ("127.0.0.1:3000", "127.0.0.1", 3000),
        (":0", "0.0.0.0", 0), ("::1:80", "::1", 80),
    ])
    func byteSplit(listen: String, host: String, port: UInt16) throws {
        let parsed = try HTTPServer.parseListen(listen)
        #expect(Array(parsed.host.utf8) == Array(host.utf8))
        #expect(parsed.port == port)
    }

    @Test("a combining mark after the bracket or colon makes the port bad, not part of it", arguments: [
        "[::1]\u{301}:80", "[::1]:\u{301}80", "127.0.0.1:\u{301}80",
    ])
    func combiningMarkAfterSeparator(listen: String) {
        let error = #expect(throws: ServerError.self) { try HTTPServer.parseListen(listen) }
        #expect(error?.description.hasPrefix("listen \"\(listen)\": ") == true)
    }

    /// Found writing the manifest target's invariant (a basic-auth user never contains ":"): ":" followed by a
    /// combining mark is not the Character ":", so `contains(":")` let such a user through.
    @Test("a basic-auth user with a colon byte is refused, in the manifest and the environment", arguments: [
        "a:\u{301}b", ":\u{301}", "a:b",
    ])
    func basicAuthUserColon(user: String) {
        let json = #"{"basicAuth": {"user": "\#(user)", "password": "p"}}"#
        let parseError = #expect(throws: ManifestError.self) { try Manifest.parse(Array(json.utf8), pluginDirectory: "/plugins") }
        #expect(parseError?.description == "manifest.basicAuth.user: required, without ':'")
        var manifest = Manifest.defaultManifest(pluginDirectory: "/plugins")
        let environmentError = #expect(throws: ManifestError.self) {
            try manifest.applyEnvironment(["BASIC_AUTH_USER": user, "BASIC_AUTH_PASS": "p"])
        }
        #expect(environmentError?.description.hasPrefix("BASIC_AUTH_USER/BASIC_AUTH_PASS:") == true)
        #expect(manifest.basicAuth == nil)
    }

    @Test("a basic-auth user without a colon is taken, combining marks and all")
    func basicAuthUserAccepted() throws {
        let json = #"{"basicAuth": {"user": "e\u0301", "password": "p:q"}}"#
        let manifest = try Manifest.parse(Array(json.utf8), pluginDirectory: "/plugins")
        #expect(manifest.basicAuth.map { Array($0.user.utf8) } == Array("e\u{301}".utf8))
        #expect(manifest.basicAuth?.password == "p:q")
    }

    /// gomod target: CivilTime computed (t - 86_399) / 86_400 for negative times, which overflowed near Int64.min.
    /// Expected values are Go's (time.Unix(t, 0).UTC()), the ends being Go's own smallest and largest times.
    @Test("pseudo-version times at and near the ends of Int64 are Go's, not a trap", arguments: [
        (Int64.min, "-292277022657-01-27T08:29:52Z"), (Int64.min + 1, "-292277022657-01-27T08:29:53Z"),
        (-86_401, "1969-12-30T23:59:59Z"), (-86_400, "1969-12-31T00:00:00Z"), (-1, "1969-12-31T23:59:59Z"),
        (0, "1970-01-01T00:00:00Z"), (1_573_264_771, "2019-11-09T01:59:31Z"), (Int64.max, "292277026596-12-04T15:30:07Z"),
    ])
    func civilTimeExtremes(seconds: Int64, expected: String) {
        #expect(PseudoVersion.rfc3339(unixSeconds: seconds) == expected)
    }

    @Test("pseudo-version timestamps before 1970 count back from the day's end")
    func timestampBefore1970() {
        #expect(PseudoVersion.timestamp(unixSeconds: -1) == "19691231235959")
        #expect(PseudoVersion.timestamp(unixSeconds: -86_401) == "19691230235959")
        #expect(PseudoVersion.timestamp(unixSeconds: 1_573_264_771) == "20191109015931")
    }

    /// sumdb_path target: "%2e%2e" passed the ".." check (made on the raw path) and was forwarded as
    /// /tile/%2e%2e/…, which the database decodes and routes as "../". Refused now, like a raw "..".
    @Test("a percent-encoded dot-dot in a checksum-database path is refused, not forwarded", arguments: [
        "/sumdb/sum.golang.org/tile/%2e%2e/%2e%2e/8/0/000", "/sumdb/sum.golang.org/tile/%2E%2E/latest",
        "/sumdb/sum.golang.org/tile/.%2e/x", "/sumdb/sum.golang.org/lookup/%2e%2e/x@v1.0.0",
        "/sumdb/sum.golang.org/tile/%zz/8/0/000",
    ])
    func sumDBEncodedDotDot(path: String) {
        // 404 for a decoded dot-dot, 400 for an escape that does not decode: never forwarded.
        #expect([400, 404].contains(Self.decision(for: path)))
    }

    @Test("checksum-database paths without dot-dot are still forwarded", arguments: [
        "/sumdb/sum.golang.org/tile/8/0/x001/234", "/sumdb/sum.golang.org/latest", "/sumdb/sum.golang.org/lookup/golang.org/x/text@v0.3.0",
        "/sumdb/sum.golang.org/tile/8/data/000.p/5",
    ])
    func sumDBForwardsPlainPaths(path: String) {
        #expect(Self.decision(for: path) == 0)
    }

    /// What the sumdb proxy decides for the part of a path after `/sumdb/<name>`: the status of a refusal, or 0
    /// when it would forward the path (the decision is a pure function; no network).
    private static func decision(for path: String) -> Int {
        let tail = path.dropFirst("/sumdb/sum.golang.org".count)
        switch SumDBProxy.forwardable(tail, policy: DownloadPolicy()) {
        case .forward: return 0
        case .refuse(let response): return response.status
        }
    }

    /// tar_reader target: a pax record whose length ("2") is shorter than its own "2 path=" trapped GitFetcher
    /// (a range with its upper bound below its lower) — the whole athens process, since plugins run in it.
    /// A git whose archive carries such a record now fails the fetch cleanly.
    @Test("a malformed pax record in git archive output fails the fetch instead of crashing")
    func malformedPaxRecord() throws {
        let fixture = try GitFixture.shared()
        let work = TestSupport.makeTemporaryDirectory("fuzz-pax")
        defer { TestSupport.removeDirectory(work) }
        // The fuzzer's input: a pax header whose only record says it is 2 bytes long, then a file, then the end.
        var tar = Self.tarHeader(name: "././@PaxHeader", size: 8, type: "x") + Self.padded(Array("2 path=\n".utf8))
        tar += Self.tarHeader(name: "go.mod", size: 0, type: "0") + [UInt8](repeating: 0, count: 1024)
        try Data(tar).write(to: URL(fileURLWithPath: work + "/hostile.tar"))
        let git = work + "/git"
        try """
            #!/bin/sh
            for argument in "$@"; do [ "$argument" = archive ] && exec cat '\(work)/hostile.tar'; done
            exec git "$@"
            """.write(toFile: git, atomically: true, encoding: .utf8)
        _ = try TestSupport.run("/bin/chmod", ["+x", git])
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: work + "/cache", extra: #", "gitPath": "\#(git)""#))
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, "github.com/fixture/hello", "v1.0.0") }
        // The archive's file went unrecognised: the fetch fails naming the version and git archive.
        #expect(error?.message.contains("github.com/fixture/hello@v1.0.0: git archive") == true, "\(error?.message ?? "")")
    }

    /// A ustar header block: `name`, octal `size`, type flag, checksum.
    private static func tarHeader(name: String, size: Int, type: Character) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        block.replaceSubrange(0..<name.utf8.count, with: name.utf8)
        block.replaceSubrange(100..<107, with: "0000644".utf8)
        block.replaceSubrange(124..<135, with: String(format: "%011o", size).utf8)
        block[156] = type.asciiValue!
        block.replaceSubrange(257..<263, with: "ustar\0".utf8)
        block.replaceSubrange(148..<156, with: "        ".utf8)
        let sum = block.reduce(0) { $0 + Int($1) }
        block.replaceSubrange(148..<155, with: String(format: "%06o\0", sum).utf8)
        return block
    }

    private static func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512) }
}
