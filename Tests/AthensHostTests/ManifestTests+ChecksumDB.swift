import Testing
@testable import RequestPath

/// The manifest's `checksumDB` (and its older spelling `admin.checksumDB`): verify and ingest verification.
extension ManifestTests {
    static let sumKey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

    @Test("checksumDB: none by default; top-level or admin.checksumDB, ingest verification on unless verifyIngest is false")
    func checksumDBKey() throws {
        #expect(try Self.parse("{}").checksumDB == nil)
        let top = try Self.parse(#"{"checksumDB": {"url": "https://sum.golang.org", "key": "\#(Self.sumKey)"}}"#)
        #expect(top.checksumDB == ChecksumDBUse(url: "https://sum.golang.org", key: Self.sumKey, verifyIngest: true))
        let alias = try Self.parse(#"{"admin": {"token": "0123456789abcdef", "checksumDB": {"url": "http://127.0.0.1:1", "key": "\#(Self.sumKey)"}}}"#)
        #expect(alias.checksumDB == ChecksumDBUse(url: "http://127.0.0.1:1", key: Self.sumKey, verifyIngest: true))
        let off = try Self.parse(#"{"checksumDB": {"url": "https://sum.golang.org", "key": "\#(Self.sumKey)", "verifyIngest": false}}"#)
        #expect(off.checksumDB?.verifyIngest == false)
    }

    @Test("bad checksumDB values name the key", arguments: [
        (#"{"checksumDB": {"url": "ftp://x", "key": "k"}}"#, "manifest.checksumDB.url: required, http:// or https://"),
        (#"{"checksumDB": {"url": "https://sum.golang.org", "key": "not+a+key"}}"#, "manifest.checksumDB.key: required, a verifier key"),
        (#"{"checksumDB": {"url": "https://sum.golang.org", "key": "\#(ManifestTests.sumKey)", "verifyIngest": "yes"}}"#,
         "manifest.checksumDB.verifyIngest: must be true or false"),
        (#"{"checksumDB": {"url": "https://sum.golang.org", "key": "\#(ManifestTests.sumKey)", "failOpen": true}}"#, "manifest.checksumDB.failOpen: unknown key"),
        (#"{"checksumDB": "https://sum.golang.org"}"#, "manifest.checksumDB: must be an object"),
        (#"{"checksumDB": {"url": "https://sum.golang.org", "key": "\#(ManifestTests.sumKey)"}, "admin": {"token": "0123456789abcdef", "checksumDB": {"url": "https://sum.golang.org", "key": "\#(ManifestTests.sumKey)"}}}"#,
         "manifest.admin.checksumDB: give checksumDB once"),
    ])
    func badChecksumDB(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
    }
}
