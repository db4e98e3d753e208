import Foundation
import Testing
import S3Core
import Digests

/// The SigV4 signer against AWS's published vectors (the "aws-sig-v4-test-suite" and the worked examples of the
/// S3 API reference), and against botocore for requests shaped like S3Storage's.
@Suite("SigV4 signing", .blockingBodies)
struct SigV4Tests {
    struct Vector: CustomTestStringConvertible, Sendable {
        var name: String
        var method = "GET"
        var path = "/"
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body = ""
        var signedHeaders = "host;x-amz-date"
        var signature: String
        var testDescription: String { name }
    }

    /// 2015-08-30T12:36:00Z, the test suite's signing time.
    static let suiteDate = SigV4Date(secondsSince1970: 1_440_938_160)
    static let suiteSigner = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let host = ("Host", "example.amazonaws.com")
    static let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    static let stsToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    static let suite: [Vector] = [
        Vector(name: "get-vanilla", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "get-vanilla-query-order-key-case", query: [("Param2", "value2"), ("Param1", "value1")],
               signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "get-vanilla-query-unreserved", query: [(unreserved, unreserved)],
               signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        Vector(name: "get-vanilla-utf8-query", query: [("ሴ", "bar")],
               signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
        Vector(name: "get-vanilla-empty-query-key", query: [("Param1", "value1")],
               signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
        Vector(name: "get-unreserved", path: "/" + unreserved,
               signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
        Vector(name: "get-utf8", path: "/ሴ", signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        Vector(name: "get-header-key-duplicate",
               headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
        Vector(name: "get-header-value-order",
               headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
        Vector(name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
               signedHeaders: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(name: "post-vanilla", method: "POST", signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "post-vanilla-query", method: "POST", query: [("Param1", "value1")],
               signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
        Vector(name: "post-header-key-sort", method: "POST", headers: [("My-Header1", "value1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
        Vector(name: "post-header-value-case", method: "POST", headers: [("My-Header1", "VALUE1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
        Vector(name: "post-x-www-form-urlencoded", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")],
               body: "Param1=value1", signedHeaders: "content-type;host;x-amz-date",
               signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        Vector(name: "post-x-www-form-urlencoded-parameters", method: "POST",
               headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], body: "Param1=value1",
               signedHeaders: "content-type;host;x-amz-date", signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
    ]

    static func authorization(_ added: [(name: String, value: String)]) -> String? {
        added.first { $0.name == "Authorization" }?.value
    }

    @Test("the AWS SigV4 test suite", arguments: suite)
    func testSuite(vector: Vector) {
        let added = Self.suiteSigner.sign(method: vector.method, encodedPath: SigV4.encode(vector.path, keepingSlash: true),
                                          query: vector.query, headers: [Self.host] + vector.headers,
                                          payloadHash: SHA256.hexHash(Array(vector.body.utf8)), date: Self.suiteDate)
        #expect(added.first { $0.name == "X-Amz-Date" }?.value == "20150830T123600Z")
        #expect(Self.authorization(added) == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)")
    }

    @Test("the test suite's temporary credentials: post-sts-header-before")
    func sessionToken() {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                                            sessionToken: Self.stsToken), region: "us-east-1", service: "service")
        let added = signer.sign(method: "POST", encodedPath: "/", query: [], headers: [Self.host], payloadHash: SigV4.emptyPayloadHash,
                                date: Self.suiteDate)
        #expect(added.first { $0.name == "X-Amz-Security-Token" }?.value == Self.stsToken)
        #expect(Self.authorization(added)?.hasSuffix("SignedHeaders=host;x-amz-date;x-amz-security-token, "
            + "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead") == true)
    }

    // MARK: - S3's worked examples (S3 API reference, "Signature calculations for the Authorization header")

    static let s3Signer = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    /// 2013-05-24T00:00:00Z.
    static let s3Date = SigV4Date(secondsSince1970: 1_369_353_600)
    static let s3Host = ("Host", "examplebucket.s3.amazonaws.com")

    @Test("S3 example: GET object with a Range")
    func s3GetObject() {
        let added = Self.s3Signer.sign(method: "GET", encodedPath: "/test.txt", query: [],
                                       headers: [Self.s3Host, ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4.emptyPayloadHash)],
                                       payloadHash: SigV4.emptyPayloadHash, date: Self.s3Date)
        #expect(Self.authorization(added) == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test("S3 example: PUT object (a key with $, a body, extra headers)")
    func s3PutObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = SHA256.hexHash(body)
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let added = Self.s3Signer.sign(method: "PUT", encodedPath: SigV4.encode("/test$file.text", keepingSlash: true), query: [],
                                       headers: [Self.s3Host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                                                 ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", hash)],
                                       payloadHash: hash, date: Self.s3Date)
        #expect(Self.authorization(added)?.hasSuffix("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            + "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd") == true)
    }

    @Test("S3 example: list objects with a query")
    func s3ListObjects() {
        let added = Self.s3Signer.sign(method: "GET", encodedPath: "/", query: [("max-keys", "2"), ("prefix", "J")],
                                       headers: [Self.s3Host, ("x-amz-content-sha256", SigV4.emptyPayloadHash)],
                                       payloadHash: SigV4.emptyPayloadHash, date: Self.s3Date)
        #expect(Self.authorization(added)?.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true)
    }

    @Test("S3 example: presigned GET URL")
    func s3Presigned() {
        let query = Self.s3Signer.presignedQuery(method: "GET", encodedPath: "/test.txt", query: [], host: "examplebucket.s3.amazonaws.com",
                                                 expires: 86400, date: Self.s3Date)
        #expect(query == "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            + "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    // MARK: - Pieces

    @Test("RFC 3986 encoding: unreserved kept, everything else %XX of UTF-8; slash only in paths")
    func encoding() {
        #expect(SigV4.encode("a b+c/d~é") == "a%20b%2Bc%2Fd~%C3%A9")
        #expect(SigV4.encode("/github.com/!burnt!sushi/@v/v1.0.0+incompatible.zip", keepingSlash: true)
            == "/github.com/%21burnt%21sushi/%40v/v1.0.0%2Bincompatible.zip")
    }

    @Test("dates are formatted in UTC")
    func dates() {
        #expect(SigV4Date(secondsSince1970: 0).stamp == "19700101T000000Z")
        #expect(SigV4Date(secondsSince1970: 1_709_251_199).stamp == "20240229T235959Z")
        #expect(SigV4Date(secondsSince1970: 1_709_251_199).day == "20240229")
    }

    @Test("credentials never print their keys")
    func credentialsRedacted() {
        let credentials = S3Credentials(accessKeyID: "AKIASECRETID", secretAccessKey: "very-secret", sessionToken: "tok")
        for text in ["\(credentials)", String(reflecting: credentials)] {
            #expect(!text.contains("AKIASECRETID") && !text.contains("very-secret") && !text.contains("tok"))
        }
    }

    @Test("SHA-256 and HMAC-SHA256 (RFC 4231 case 2)")
    func primitives() {
        #expect(SHA256.hexHash([]) == SigV4.emptyPayloadHash)
        #expect(SHA256.hexHash(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var pieces = SHA256()
        for part in ["a", "b", "c"] { Array(part.utf8).withUnsafeBytes { pieces.update($0) } }
        #expect(Hex.encode(pieces.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(HMACSHA256.mac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Every byte value, from an array and from any other sequence: two lower-case digits each.
        let all = (0...255).map { UInt8($0) }
        let expected = all.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(Hex.encode(all) == expected)
        #expect(Hex.encode(all[...]) == expected && Hex.encode([UInt8]()) == "")
    }

    // MARK: - botocore cross-check

    /// Requests shaped like S3Storage's (escaped module keys, query parameters, conditional headers, a session
    /// token), signed by botocore and by us at one fixed time. botocore signs the path as it is in the URL, so it
    /// gets the URL exactly as S3Storage sends it (everything but unreserved characters percent-encoded).
    @Test("matches botocore for S3Storage-shaped requests, headers and presigned")
    func botocore() throws {
        let script = #"""
import datetime, json, sys
from unittest import mock
import botocore.auth as A
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
c = Credentials("AKIDCROSSCHECK", "secret/with+chars=", "session-token/+=")
at = datetime.datetime(2026, 3, 4, 5, 6, 7)
out = []
with mock.patch.object(A, "get_current_datetime", return_value=at):
    for method, url, headers, body in [
        ("PUT", "http://127.0.0.1:8000/bucket/pre/fix/github.com/%21burnt%21sushi/toml/%40v/v1.2.3%2Bincompatible.info", {"If-None-Match": "*", "Content-Type": "application/json"}, b'{"Version":"v1"}'),
        ("GET", "http://127.0.0.1:8000/bucket?list-type=2&prefix=pre%2Ffix%2Fexample.com%2F%40v%2F&continuation-token=a%2Fb%3D%3D&max-keys=1000", {}, b""),
        ("POST", "http://127.0.0.1:8000/bucket/k.zip?uploads", {}, b""),
        ("PUT", "http://127.0.0.1:8000/bucket/k.zip?partNumber=2&uploadId=2~abc-DEF_0", {}, b"part"),
    ]:
        r = AWSRequest(method, url, headers=headers, data=body)
        A.S3SigV4Auth(c, "s3", "eu-west-3").add_auth(r)
        out.append(r.headers["Authorization"])
    r = AWSRequest("GET", "http://127.0.0.1:8000/bucket/example.com/%40v/v1.0.0.zip")
    A.S3SigV4QueryAuth(c, "s3", "eu-west-3", expires=300).add_auth(r)
    out.append(r.url.split("?", 1)[1])
print(json.dumps(out))
"""#
        let result = try TestSupport.run("/usr/bin/env", ["python3", "-c", script])
        try #require(result.status == 0, "\(result.stderr)")
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String])
        try #require(expected.count == 5)
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "AKIDCROSSCHECK", secretAccessKey: "secret/with+chars=",
                                                            sessionToken: "session-token/+="), region: "eu-west-3")
        let date = SigV4Date(secondsSince1970: 1_772_600_767) // 2026-03-04T05:06:07Z
        let host = ("Host", "127.0.0.1:8000")
        func header(_ method: String, _ path: String, _ query: [(name: String, value: String)], _ extra: [(name: String, value: String)], _ body: String) -> String? {
            let hash = SHA256.hexHash(Array(body.utf8))
            return Self.authorization(signer.sign(method: method, encodedPath: SigV4.encode(path, keepingSlash: true), query: query,
                                                  headers: [host, ("X-Amz-Content-SHA256", hash)] + extra, payloadHash: hash, date: date))
        }
        #expect(header("PUT", "/bucket/pre/fix/github.com/!burnt!sushi/toml/@v/v1.2.3+incompatible.info", [],
                       [("If-None-Match", "*"), ("Content-Type", "application/json")], #"{"Version":"v1"}"#) == expected[0])
        #expect(header("GET", "/bucket", [("list-type", "2"), ("prefix", "pre/fix/example.com/@v/"), ("continuation-token", "a/b=="),
                                          ("max-keys", "1000")], [], "") == expected[1])
        #expect(header("POST", "/bucket/k.zip", [("uploads", "")], [], "") == expected[2])
        #expect(header("PUT", "/bucket/k.zip", [("partNumber", "2"), ("uploadId", "2~abc-DEF_0")], [], "part") == expected[3])
        // botocore orders the parameters differently (the canonical form sorts them anyway): compare them as a set.
        let presigned = signer.presignedQuery(method: "GET", encodedPath: "/bucket/example.com/%40v/v1.0.0.zip", query: [],
                                              host: "127.0.0.1:8000", expires: 300, date: date)
        #expect(Set(presigned.split(separator: "&")) == Set(expected[4].split(separator: "&")))
        #expect(presigned.contains("X-Amz-Signature="))
    }
}
