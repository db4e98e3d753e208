import Foundation
import Testing
@testable import RequestPath

/// The manifest's `admin` key: the API's token (inline or from a file) and its body limit.
extension ManifestTests {
    @Test("admin is off by default; token or tokenFile turns it on and lets POST bodies in")
    func adminKey() throws {
        let off = try Self.parse("{}")
        #expect(off.adminToken == nil && off.server.limits.maxBodyBytes == 0, "no admin: POST stays refused")
        let inline = try Self.parse(#"{"admin": {"token": "0123456789abcdef"}}"#)
        #expect(inline.adminToken == "0123456789abcdef" && inline.server.limits.maxBodyBytes == 1 << 20)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("athens-admin-token-\(getpid())").path
        try "secret-token-from-a-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try Self.parse(#"{"admin": {"tokenFile": "\#(file)", "maxBodyBytes": 4096}}"#)
        #expect(fromFile.adminToken == "secret-token-from-a-file" && fromFile.server.limits.maxBodyBytes == 4096)
    }

    @Test("the prefetch and upload keys: defaults, values, and the streamed-body limit the server gets")
    func adminLimits() throws {
        let defaults = try Self.parse(#"{"admin": {"token": "0123456789abcdef"}}"#)
        #expect(defaults.adminSettings.prefetchConcurrency == nil && defaults.adminSettings.prefetchMaxItems == 10_000)
        #expect(defaults.adminSettings.maxJobs == 100 && defaults.adminSettings.maxUploadBytes == 516 << 20)
        #expect(defaults.server.limits.maxStreamedBodyBytes == 516 << 20)
        let set = try Self.parse(#"{"admin": {"token": "0123456789abcdef", "prefetchConcurrency": 3, "prefetchMaxItems": 50, "maxJobs": 7, "maxUploadBytes": 65536}}"#)
        #expect(set.adminSettings.prefetchConcurrency == 3 && set.adminSettings.prefetchMaxItems == 50 && set.adminSettings.maxJobs == 7)
        #expect(set.adminSettings.maxUploadBytes == 65536 && set.server.limits.maxStreamedBodyBytes == 65536)
        #expect(try Self.parse("{}").server.limits.maxStreamedBodyBytes == 0, "admin off: no body at all")
    }

    @Test("bad admin values name the key", arguments: [
        (#"{"admin": {"token": "0123456789abcdef", "prefetchConcurrency": 0}}"#, "manifest.admin.prefetchConcurrency: must be an integer from 1"),
        (#"{"admin": {"token": "0123456789abcdef", "prefetchMaxItems": 0}}"#, "manifest.admin.prefetchMaxItems: must be an integer from 1"),
        (#"{"admin": {"token": "0123456789abcdef", "maxJobs": "many"}}"#, "manifest.admin.maxJobs"),
        (#"{"admin": {"token": "0123456789abcdef", "maxUploadBytes": 10}}"#, "manifest.admin.maxUploadBytes: must be an integer from 1024"),
        (#"{"admin": {}}"#, "manifest.admin: give token or tokenFile, not both"),
        (#"{"admin": {"token": "0123456789abcdef", "tokenFile": "/x"}}"#, "manifest.admin: give token or tokenFile, not both"),
        (#"{"admin": {"token": "short"}}"#, "manifest.admin.token: 16 to 1024 visible ASCII characters"),
        (#"{"admin": {"token": "0123456789abcdef ghij"}}"#, "manifest.admin.token: 16 to 1024 visible ASCII characters"),
        (#"{"admin": {"token": 12345678901234567890}}"#, "manifest.admin.token: must be a string"),
        (#"{"admin": {"tokenFile": "/nonexistent/athens-token"}}"#, "manifest.admin.tokenFile: cannot read /nonexistent/athens-token"),
        (#"{"admin": {"token": "0123456789abcdef", "maxBodyBytes": 10}}"#, "manifest.admin.maxBodyBytes: must be an integer from 1024"),
        (#"{"admin": {"token": "0123456789abcdef", "users": []}}"#, "manifest.admin.users: unknown key"),
        (#"{"admin": "0123456789abcdef"}"#, "manifest.admin: must be an object"),
        (#"{"admin": {"token": "0123456789abcdef", "checksumDB": {"url": "ftp://x", "key": "k"}}}"#, "manifest.admin.checksumDB.url: required, http:// or https://"),
        (#"{"admin": {"token": "0123456789abcdef", "checksumDB": {"url": "http://127.0.0.1:1", "key": "not+a+key"}}}"#,
         "manifest.admin.checksumDB.key: required, a verifier key"),
        (#"{"admin": {"token": "0123456789abcdef", "checksumDB": {"url": "http://127.0.0.1:1"}}}"#, "manifest.admin.checksumDB.key: required"),
    ])
    func badAdmin(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
    }
}
