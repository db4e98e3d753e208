import GoModule
import Testing
@testable import AthensHost

/// Inputs found by the libFuzzer targets in fuzz/ (fuzz/run.sh), kept as tests once fixed.
@Suite("Fuzz regressions")
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
}
