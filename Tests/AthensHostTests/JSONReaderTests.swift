// The one JSON reader (Sources/JSON): what it accepts and how it reads it, what it refuses (with the byte offset),
// the bounds it keeps on hostile input, the compact writer it hands plugin configs on with, and JSONFields'
// key-by-key reading (unknown keys refused, nested too).
import JSON
import Testing

@Suite("JSON reader")
struct JSONReaderTests {
    static func parse(_ text: String, _ limits: JSONReader.Limits = .init()) throws(JSONError) -> JSONValue {
        try JSONReader.parse(text, limits: limits)
    }

    static func object(_ text: String) throws -> JSONObject {
        guard case .object(let object) = try parse(text) else { throw JSONError("not an object", at: 0) }
        return object
    }

    @Test("every kind of value is read; objects keep their key order")
    func kinds() throws {
        let object = try Self.object(#" {"z": 1, "a": [true, false, null], "m": {"s": "x"}, "n": -0.5e-3, "e": "", "o": {}, "l": []} "#)
        #expect(object.keys == ["z", "a", "m", "n", "e", "o", "l"])
        #expect(object["z"] == .number(JSONNumber(1)))
        #expect(object["a"] == .array([.bool(true), .bool(false), .null]))
        #expect(object["m"] == .object(JSONObject([("s", .string("x"))])))
        #expect(object["n"] == .number(JSONNumber(literal: "-0.5e-3")))
        #expect(object["e"] == .string(""))
        #expect(object["o"] == .object(JSONObject()) && object["l"] == .array([]))
        #expect(object["missing"] == nil)
        #expect(try Self.parse("\"top\"") == .string("top"))
        #expect(try Self.parse(" 7 ") == .number(JSONNumber(7)))
        #expect(try Self.parse("null") == .null)
    }

    @Test("escapes decode, surrogate pairs make one scalar, raw UTF-8 passes through")
    func escapes() throws {
        let value = try Self.parse(#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00\u0000 é€😀""#)
        #expect(value == .string("\"\\/\u{8}\u{C}\n\r\tAé€😀\u{0} é€😀"))
        // A byte order mark before the value is allowed by RFC 8259 and skipped.
        #expect(try JSONReader.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) == .object(JSONObject()))
    }

    @Test("numbers keep their literal: integers stay exact at any length; huge ones give no Int")
    func numbers() throws {
        func number(_ text: String) throws -> JSONNumber {
            guard case .number(let n) = try Self.parse(text) else { throw JSONError("not a number", at: 0) }
            return n
        }
        #expect(try number("9007199254740993").int == 9_007_199_254_740_993)  // 2^53 + 1: a Double would round it
        #expect(try number("9223372036854775807").int == Int.max)
        #expect(try number("-9223372036854775808").int == Int.min)
        #expect(try number("9223372036854775808").int == nil)
        #expect(try number("1e2").int == 100 && number("1.0").int == 1 && number("-0").int == 0)
        #expect(try number("1.5").int == nil && number("1e300").int == nil)
        #expect(try number("1e400").double == .infinity && number("-1e400").double == -.infinity)
        #expect(try number("1e-400").double == 0)
        let long = String(repeating: "9", count: 100_000)
        let huge = try number(long)
        #expect(huge.literal == long && huge.int == nil && huge.double == .infinity)
        #expect(try number("0.1").double == 0.1)
    }

    static let refused: [(text: String, reason: String, offset: Int)] = [
        ("", "unexpected end of text", 0),
        ("   ", "unexpected end of text", 3),
        (#"{"a": 1,}"#, "expected a string key, found '}'", 8),
        ("[1, 2,]", "expected a value, found ']'", 6),
        ("[1 2]", "expected ',' or ']' after an array element, found '2'", 3),
        (#"{"a" 1}"#, "expected ':' after an object key, found '1'", 5),
        (#"{"a": 1 "b": 2}"#, "expected ',' or '}' after an object member", 8),
        (#"{a: 1}"#, "expected a string key, found 'a'", 1),
        (#"{'a': 1}"#, "expected a string key, found '''", 1),
        ("// c\n{}", "expected a value, found '/'", 0),
        ("{} /* c */", "data after the JSON value", 3),
        (#"{"a": 1}x"#, "data after the JSON value", 8),
        ("{}{}", "data after the JSON value", 2),
        (#"{"a": 1, "a": 2}"#, #"duplicate key "a""#, 9),
        (#"{"k": {"x": 1, "y": 2, "x": 3}}"#, #"duplicate key "x""#, 23),
        ("01", "number with a leading zero", 0),
        ("-", "unexpected end of text", 1),
        ("-a", "expected a digit, found 'a'", 1),
        ("1.", "unexpected end of text", 2),
        ("1.e5", "expected a digit after '.', found 'e'", 2),
        ("1e", "unexpected end of text", 2),
        (".5", "expected a value, found '.'", 0),
        ("+1", "expected a value, found '+'", 0),
        ("NaN", "expected a value, found 'N'", 0),
        ("Infinity", "expected a value, found 'I'", 0),
        ("tru", "invalid literal (expected true)", 0),
        ("nul1", "invalid literal (expected null)", 0),
        (#""abc"#, "unterminated string", 4),
        (#""\x""#, "invalid escape: backslash followed by 'x'", 1),
        ("\"\\\n\"", "invalid escape: backslash followed by byte 0xA", 1),      // found by fuzz/targets/JSONFuzz.swift
        ("\"\\é\"", "invalid escape: backslash followed by byte 0xC3", 1),
        (#""\u12""#, #"\u escape needs four hex digits"#, 5),
        (#""\ud800""#, #"high surrogate \ud800 without a low surrogate after it"#, 1),
        (#""\ud800\u0041""#, #"high surrogate \ud800 followed by \u41, not a low surrogate"#, 1),
        (#""\udc00""#, #"lone low surrogate \udc00"#, 1),
        (#""\ud800\ud800""#, "not a low surrogate", 1),
        ("\"a\u{1}b\"", "control character U+0001 in a string (it must be escaped)", 2),
        ("\"tab\there\"", "control character U+0009", 4),
        ("\"line\nbreak\"", "control character U+000A", 5),
    ]

    @Test("malformed text is refused with the reason and the byte offset", arguments: refused)
    func refusal(text: String, reason: String, offset: Int) {
        let error = #expect(throws: JSONError.self) { _ = try Self.parse(text) }
        #expect(error?.reason.contains(reason) == true, "got \(error?.description ?? "nothing")")
        #expect(error?.offset == offset, "got \(error?.description ?? "nothing")")
        #expect(error?.description.contains("at byte \(offset)") == true)
        #expect(error?.description.contains("\n") == false)
    }

    static let badBytes: [(bytes: [UInt8], reason: String, offset: Int)] = [
        (Array(#""a"#.utf8) + [0x80] + Array(#"""#.utf8), "invalid UTF-8", 2),              // a lone continuation byte
        (Array(#"""#.utf8) + [0xC0, 0x80, 0x22], "invalid UTF-8", 1),                       // overlong NUL
        (Array(#"""#.utf8) + [0xE0, 0x80, 0xAF, 0x22], "invalid UTF-8", 1),                 // overlong '/'
        (Array(#"""#.utf8) + [0xED, 0xA0, 0x80, 0x22], "invalid UTF-8", 1),                 // a surrogate, UTF-8 encoded
        (Array(#"""#.utf8) + [0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8", 1),           // above U+10FFFF
        (Array(#"""#.utf8) + [0xF5, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8", 1),
        (Array(#"""#.utf8) + [0xE2, 0x82], "invalid UTF-8", 1),                             // cut short by the end
        (Array(#"""#.utf8) + [0xE2, 0x82, 0x22], "invalid UTF-8", 1),                       // cut short by the quote
        ([0xFF] + Array("{}".utf8), "expected a value, found byte 0xFF", 0),
        ([0xFE, 0xFF, 0x00, 0x7B, 0x00, 0x7D], "expected a value, found byte 0xFE", 0),   // UTF-16
        (Array("{}".utf8) + [0x00], "data after the JSON value", 2),                       // a NUL after the value
        ([0x00] + Array("{}".utf8), "expected a value, found byte 0x0", 0),
        (Array(#"{"a": "x"#.utf8) + [0x00] + Array(#""}"#.utf8), "control character U+0000", 8),
        (Array(#"{"k"#.utf8) + [0x00] + Array(#"": 1}"#.utf8), "control character U+0000", 3),
    ]

    @Test("bytes that are not UTF-8, and raw NULs, are refused where they are", arguments: badBytes)
    func refusedBytes(bytes: [UInt8], reason: String, offset: Int) {
        let error = #expect(throws: JSONError.self) { _ = try JSONReader.parse(bytes) }
        #expect(error?.reason.contains(reason) == true, "got \(error?.description ?? "nothing")")
        #expect(error?.offset == offset, "got \(error?.description ?? "nothing")")
    }

    @Test("nesting is bounded: 64 levels read, 65 refused, a million '[' refused without exhausting the stack")
    func depth() throws {
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { _ = try Self.parse(deep) }
        let objects = String(repeating: #"{"a":"#, count: 64) + "1" + String(repeating: "}", count: 64)
        #expect(throws: Never.self) { _ = try Self.parse(objects) }
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let error = #expect(throws: JSONError.self) { _ = try Self.parse(tooDeep) }
        #expect(error?.reason == "nested deeper than 64 levels" && error?.offset == 64)
        let mixed = String(repeating: #"[{"a":"#, count: 40) + "1" + String(repeating: "}]", count: 40)
        #expect(throws: JSONError.self) { _ = try Self.parse(mixed) }
        let hostile = #expect(throws: JSONError.self) { _ = try Self.parse(String(repeating: "[", count: 1_000_000)) }
        #expect(hostile?.offset == 64)
        let tight = #expect(throws: JSONError.self) { _ = try Self.parse("[[[1]]]", .init(maxDepth: 2)) }
        #expect(tight?.reason == "nested deeper than 2 levels")
    }

    @Test("size is bounded: a 1 MiB string is read whole, a text over the limit is refused before reading")
    func size() throws {
        let big = String(repeating: "x", count: 1 << 20)
        #expect(try Self.parse("\"\(big)\"") == .string(big))
        // Escapes and multi-byte characters throughout, so no fast path is taken.
        let mixed = String(repeating: "é\\n", count: 1 << 18)
        #expect(try Self.parse("\"\(mixed)\"") == .string(String(repeating: "é\n", count: 1 << 18)))
        let error = #expect(throws: JSONError.self) { _ = try Self.parse("\"\(big)\"", .init(maxBytes: 1 << 20)) }
        #expect(error?.reason == "text of \((1 << 20) + 2) bytes is larger than the limit of \(1 << 20)")
        #expect(throws: Never.self) { _ = try Self.parse("\"\(big)\"", .init(maxBytes: (1 << 20) + 2)) }
        #expect(JSONReader.Limits().maxBytes == 16 << 20 && JSONReader.Limits().maxDepth == 64)
    }

    @Test("the writer gives compact text the reader reads back as the same value; control characters escaped")
    func writer() throws {
        let text = #"{"b": [1, 2.50, -3e+7, true, null], "a": {"q\"uote": "\\ \u0000 \u001f \t é 😀"}, "": ""}"#
        let value = try Self.parse(text)
        let written = value.text()
        #expect(written == #"{"b":[1,2.50,-3e+7,true,null],"a":{"q\"uote":"\\ \u0000 \u001f \t é 😀"},"":""}"#)
        #expect(try Self.parse(written) == value)
        #expect(!written.utf8.contains(0) && !written.utf8.contains(0x1F))
        #expect(value.text(sortingKeys: true) == #"{"":"","a":{"q\"uote":"\\ \u0000 \u001f \t é 😀"},"b":[1,2.50,-3e+7,true,null]}"#)
        #expect(JSONValue.string("http://x/y").text() == #""http://x/y""#)
        #expect(JSONValue.quoted("del\u{7F} nul\u{0} cr\r") == #""del\u007f nul\u0000 cr\r""#)
        // Every ASCII byte alone and between multi-byte scalars: the escape the rules give, read back as itself.
        for byte in UInt8(0)...0x7F {
            let scalar = String(Character(Unicode.Scalar(byte)))
            let escaped = switch byte {
            case 0x22: #"\""#
            case 0x5C: #"\\"#
            case 0x0A: #"\n"#
            case 0x0D: #"\r"#
            case 0x09: #"\t"#
            case 0..<0x20, 0x7F: "\\u00" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            default: scalar
            }
            #expect(JSONValue.quoted(scalar) == "\"" + escaped + "\"", "byte \(byte)")
            #expect(JSONValue.quoted("é" + scalar + "😀") == "\"é" + escaped + "😀\"", "byte \(byte)")
            #expect(try Self.parse(JSONValue.quoted("é" + scalar + "😀")) == .string("é" + scalar + "😀"))
        }
    }

    @Test("JSONObject edits keep the order: a new key goes last, a known one is replaced in place")
    func objectEdits() {
        var object = JSONObject([("a", .null), ("b", .bool(true))])
        object["a"] = .string("x")
        object["c"] = .number(JSONNumber(3))
        #expect(object.keys == ["a", "b", "c"] && object["a"] == .string("x"))
        object["b"] = nil
        #expect(object.keys == ["a", "c"] && object["c"] == .number(JSONNumber(3)))
    }
}

/// JSONFields: the key-by-key reading the manifest and PluginConfig share.
@Suite("JSON fields")
struct JSONFieldsTests {
    struct Failure: Error { var message: String }

    static func fields(_ text: String) throws -> JSONFields<Failure> {
        try JSONFields(try JSONReader.parse(text), path: "config") { Failure(message: $0) }
    }

    static func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return (error as? Failure)?.message ?? "\(error)"
        }
    }

    @Test("typed accessors read their kind; absent and null read as nil; a wrong kind names the key")
    func accessors() throws {
        let f = try Self.fields(#"{"s": "x", "b": false, "n": 2.5, "i": 9007199254740993, "z": null, "l": ["a", "b"], "o": {"k": 1}}"#)
        #expect(try f.string("s") == "x" && f.bool("b") == false && f.number("n")?.double == 2.5)
        #expect(try f.integer("i", in: 0...Int.max) == 9_007_199_254_740_993)
        #expect(try f.string("z") == nil && f.string("absent") == nil)
        #expect(try f.strings("l") == ["a", "b"])
        #expect(try f.object("o")?.integer("k", in: 1...1) == 1)
        #expect(Self.failure { _ = try f.string("b") } == "config.b: must be a string")
        #expect(Self.failure { _ = try f.bool("s") } == "config.s: must be true or false")
        #expect(Self.failure { _ = try f.number("b") } == "config.b: must be a number")
        #expect(Self.failure { _ = try f.integer("n", in: 0...9) } == "config.n: must be an integer from 0 to 9")
        #expect(Self.failure { _ = try f.integer("i", in: 0...9) } == "config.i: must be an integer from 0 to 9")
        #expect(Self.failure { _ = try f.strings("o") } == "config.o: must be a list of strings")
        #expect(Self.failure { _ = try f.object("l", expected: "a map of hosts") } == "config.l: must be a map of hosts")
        #expect(Self.failure { _ = try f.objects("l") } == "config.l[0]: must be an object")
        #expect(Self.failure { _ = try f.objects("o") } == "config.o: must be an array of objects")
        #expect(Self.failure { _ = try JSONFields<Failure>(.array([]), path: "config") { Failure(message: $0) } } == "config: must be an object")
    }

    @Test("finish refuses the first unread key by its path, in nested objects too, even if theirs was not called")
    func finish() throws {
        let top = try Self.fields(#"{"known": 1, "extra": 2, "colour": 3}"#)
        _ = try top.integer("known", in: 0...9)
        #expect(Self.failure { try top.finish() } == "config.extra: unknown key")

        let nested = try Self.fields(#"{"repos": [{"root": "a"}], "map": {"h": "1"}}"#)
        for repo in try nested.objects("repos") ?? [] { _ = try repo.string("root") }
        _ = try nested.object("map")
        #expect(Self.failure { try nested.finish() } == "config.map.h: unknown key")

        let deeper = try Self.fields(#"{"repos": [{"root": "a"}, {"root": "b", "branch": "x"}]}"#)
        for repo in try deeper.objects("repos") ?? [] { _ = try repo.string("root") }
        #expect(Self.failure { try deeper.finish() } == "config.repos[1].branch: unknown key")

        // Taken whole (a plugin's config inside the manifest): its keys are not the reader's to check.
        let raw = try Self.fields(#"{"config": {"anything": [1]}}"#)
        #expect(try raw.rawObject("config")?.keys == ["anything"])
        #expect(Self.failure { try raw.finish() } == "no error")
    }
}
