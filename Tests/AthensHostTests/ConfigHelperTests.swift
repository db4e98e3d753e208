import Foundation
import Testing

/// athens_config.h, the optional config reader for C plugins, driven through Tests/Fixtures/CPlugins/config_probe.c
/// (built with the plugin authors' flags plus -pedantic): good configs read back exactly, hostile ones are refused
/// with a message naming the key, and nothing reads past the text.
@Suite("athens_config.h: flat JSON configs for C plugins", .blockingBodies)
struct ConfigHelperTests {
    static let directory = TestSupport.makeTemporaryDirectory("config-helper")

    /// The probe, built once per run (with -fsanitize=address,undefined when the compiler has them: an
    /// over-read of the text or the buffers would fail the run instead of passing by luck).
    static let probe = Result { () throws -> String in
        let output = directory + "/config_probe"
        let source = TestSupport.packageRoot + "/Tests/Fixtures/CPlugins/config_probe.c"
        let base = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-I", TestSupport.packageRoot + "/Sources/PluginABI/include", source, "-o", output]
        let sanitized = try TestSupport.run("/usr/bin/cc", ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"] + base)
        if sanitized.status != 0 {
            let plain = try TestSupport.run("/usr/bin/cc", base)
            guard plain.status == 0 else { throw TestFailure("cc config_probe.c: \(plain.stderr)") }
        }
        return output
    }

    /// Runs the probe on `json` with `queries`; returns its output lines.
    static func probe(_ json: String, _ queries: [String] = []) throws -> [String] {
        let file = directory + "/config-\(UUID().uuidString).json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try TestSupport.run(try probe.get(), [file] + queries)
        guard result.status == 0 else { throw TestFailure("config_probe exited \(result.status): \(result.stderr)") }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("a good config reads back: strings with every escape, integers, numbers, booleans, null as absent")
    func goodConfig() throws {
        let json = #" { "root" : "/srv/go proxy", "escaped": "q\"b\\s\/n\n t\t u\u00e9 pair\ud83d\ude00", "n": -12, "big": 9223372036854775807,"#
            + #" "small": -9223372036854775808, "f": 1.5e3, "yes": true, "no": false, "none": null } "#
        let lines = try Self.probe(json, ["s:root", "s:escaped", "i:n", "i:big", "i:small", "n:f", "b:yes", "b:no", "s:none", "u"])
        #expect(lines == [
            "parsed 9",
            #"root: "/srv/go proxy""#,
            #"escaped: "q"b\x5Cs/n\x0A t\x09 u\xC3\xA9 pair\xF0\x9F\x98\x80""#,
            "n: -12", "big: 9223372036854775807", "small: -9223372036854775808", "f: 1500",
            "yes: true", "no: false", "none: absent", "unknown: none",
        ])
    }

    @Test("missing keys are absent, an unread key is named, wrong types are refused by key")
    func missingUnknownAndTypes() throws {
        #expect(try Self.probe("{}", ["s:root", "i:n", "b:b", "u"]) == ["parsed 0", "root: absent", "n: absent", "b: absent", "unknown: none"])
        #expect(try Self.probe(#"{"root":"/x","rooot":"/y"}"#, ["s:root", "u"])
                == ["parsed 2", #"root: "/x""#, "unknown: rooot (config.rooot: unknown key)"])
        #expect(try Self.probe(#"{"s":1,"n":"1","b":"true","f":1.5}"#, ["s:s", "i:n", "b:b", "i:f", "r:n"]) == [
            "parsed 4", "s: error: config.s: must be a string", "n: error: config.n: must be a number",
            "b: error: config.b: must be true or false", "f: error: config.f: must be an integer",
            "n: error: config.n: must be a number",
        ])
    }

    @Test("huge numbers are refused, never wrapped", arguments: [
        (#"{"n":9223372036854775808}"#, "i:n", "n: error: config.n: out of range"),
        (#"{"n":-9223372036854775809}"#, "i:n", "n: error: config.n: out of range"),
        (#"{"n":123456789012345678901234567890123456789}"#, "i:n", "n: error: config.n: out of range"),
        (#"{"n":123456789012345678901234567890123456789}"#, "n:n", "n: 1.2345678901234568e+38"),
        (#"{"n":1e999}"#, "n:n", "n: error: config.n: out of range"),
        (#"{"n":-1e999}"#, "n:n", "n: error: config.n: out of range"),
        (#"{"n":101}"#, "r:n", "n: error: config.n: must be between 1 and 100"),
        (#"{"n":0}"#, "r:n", "n: error: config.n: must be between 1 and 100"),
        ("{\"n\":1" + String(repeating: "0", count: 100) + "}", "n:n", "n: error: config.n: number too long"),
    ])
    func hugeNumbers(json: String, query: String, expected: String) throws {
        #expect(try Self.probe(json, [query]) == ["parsed 1", expected])
    }

    @Test("hostile configs are refused at parse with a message, whatever they hold", arguments: [
        ("", "config: must be a JSON object"),
        ("[]", "config: must be a JSON object"),
        (#""root""#, "config: must be a JSON object"),
        (#"{"root":"/x"} trailing"#, "config: text after the object"),
        (#"{"root":"/x"}}"#, "config: text after the object"),
        (#"{"s":"abc"#, "config.s: unterminated string"),
        (#"{"s":"abc\"#, "config.s: unterminated string"),
        (#"{"s":"abc\""#, "config.s: unterminated string"),
        (#"{"abc"#, "config: unterminated key"),
        (#"{"s":"\q"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\u12"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\u12zz"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\u0000"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\udc00"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\ud83dx"}"#, "config.s: bad escape or control character in string"),
        (#"{"s":"\ud83d\u0041"}"#, "config.s: bad escape or control character in string"),
        ("{\"s\":\"tab\there\"}", "config.s: bad escape or control character in string"),
        (#"{"a":1,}"#, "config: expected a key in quotes"),
        (#"{"a":1 "b":2}"#, "config.a: expected ',' or '}'"),
        (#"{"a" 1}"#, "config.a: expected ':'"),
        (#"{"a":}"#, "config.a: expected a value"),
        (#"{"a":tru}"#, "config.a: expected a value"),
        (#"{"a":nullx}"#, "config.a: expected ',' or '}'"),
        (#"{"a":01}"#, "config.a: expected ',' or '}'"),
        (#"{"a":1.}"#, "config.a: malformed number"),
        (#"{"a":-}"#, "config.a: malformed number"),
        (#"{"a":+1}"#, "config.a: expected a value"),
        (#"{"a":.5}"#, "config.a: expected a value"),
        (#"{"a":1e}"#, "config.a: malformed number"),
        (#"{"a":"1","a":"2"}"#, "config.a: duplicate key"),
        (#"{"a":"1","\u0061":"2"}"#, "config.a: duplicate key"),
        (#"{"a":{"b":1}}"#, "config.a: nested objects and arrays are not supported"),
        (#"{"a":[1]}"#, "config.a: nested objects and arrays are not supported"),
    ])
    func hostile(json: String, message: String) throws {
        #expect(try Self.probe(json) == ["parse error: " + message])
    }

    @Test("deep nesting is refused where it starts, without recursion (200000 levels)")
    func deepNesting() throws {
        let deep = String(repeating: "[", count: 200_000)
        #expect(try Self.probe(#"{"a":"# + deep) == ["parse error: config.a: nested objects and arrays are not supported"])
        #expect(try Self.probe(String(repeating: "{\"a\":", count: 200_000)) == ["parse error: config.a: nested objects and arrays are not supported"])
        #expect(try Self.probe(deep) == ["parse error: config: must be a JSON object"])
    }

    @Test("size bounds: keys, key count, values that do not fit the caller's buffer")
    func bounds() throws {
        let longKey = String(repeating: "k", count: 65)
        #expect(try Self.probe("{\"\(longKey)\":1}") == ["parse error: config: key too long or badly escaped"])
        let maxKey = String(repeating: "k", count: 64)
        #expect(try Self.probe("{\"\(maxKey)\":1}", ["i:" + maxKey]) == ["parsed 1", "\(maxKey): 1"])
        let many = (0..<33).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try Self.probe("{" + many + "}") == ["parse error: config: too many keys"])
        let thirtyTwo = (0..<32).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try Self.probe("{" + thirtyTwo + "}", ["i:k31"]) == ["parsed 32", "k31: 31"])
        // 7 bytes fit an 8-byte buffer with the NUL, 8 do not; a 1 MiB string parses but does not fit 4096 bytes.
        #expect(try Self.probe(#"{"s":"1234567","t":"12345678","u":"\u00e9\u00e9\u00e9\u00e9"}"#, ["S:s", "S:t", "S:u"])
                == ["parsed 3", #"s: "1234567""#, "t: error: config.t: too long", "u: error: config.u: too long"])
        let huge = String(repeating: "x", count: 1 << 20)
        #expect(try Self.probe("{\"s\":\"\(huge)\"}", ["s:s"]) == ["parsed 1", "s: error: config.s: too long"])
    }
}
