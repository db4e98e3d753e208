// `"serve": "redirect"` over the in-memory fakes: stored files answered with 302 to the storage's url, and the
// bytes served as before whenever the storage has no URL (declined, failed, not stored). Also the URL checks the
// host applies before a plugin's URL reaches a Location header.
import Foundation
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("storage redirects: 302 to the storage's url, bytes when it has none")
struct StorageRedirectTests {
    static let module = "example.com/a"
    static let files = FakeVersion.honest(module: module, version: "v1.0.0")
    static let signed: @Sendable (String, String, Artifact) -> (url: String, validSeconds: Int)? = { module, version, artifact in
        ("https://objects.example/\(module)/@v/\(version)\(artifact)?sig=1", 300)
    }

    @Test("a stored zip is answered 302 to its url on the loop, without reading the bytes, every time")
    func storedZipRedirects() throws {
        let h = DownloadHarness(storageRedirects: [.zip])
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.storage.scriptURL(Self.signed)
        for round in 1...2 {
            let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
            #expect(answer.response.status == 302)
            #expect(answer.response.header("Location") == "https://objects.example/example.com/a/@v/v1.0.0.zip?sig=1")
            #expect(answer.response.header("Cache-Control") == "private, max-age=150", "reused for at most half the URL's validity")
            #expect(answer.response.bodyBytes.isEmpty)
            #expect(answer.response.cacheResult == "hit")
            #expect(answer.onCaller && answer.poolRunning == 0, "a redirect is a hit: no pool")
            #expect(h.storage.calls("url") == round)
        }
        #expect(h.storage.calls("open") == 0, "the zip's bytes were never read")
        #expect(h.download.cache.heldBytes == 0)
        #expect(h.upstream.calls("fetch") == 0)
    }

    @Test("HEAD of a stored zip gets the same 302")
    func headRedirects() throws {
        let h = DownloadHarness(storageRedirects: [.zip])
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.storage.scriptURL(Self.signed)
        let answer = try #require(h.start("/example.com/a/@v/v1.0.0.zip", method: .head).wait())
        #expect(answer.response.status == 302)
        #expect(answer.response.header("Location")?.hasPrefix("https://objects.example/") == true)
        #expect(h.storage.calls("open") == 0)
    }

    @Test(".info and .mod are served as bytes (and cached) unless the manifest lists them; listed, they redirect too")
    func onlyListedFilesRedirect() throws {
        let zipOnly = DownloadHarness(storageRedirects: [.zip])
        zipOnly.storage.put(Self.module, "v1.0.0", Self.files)
        zipOnly.storage.scriptURL(Self.signed)
        for (artifact, bytes) in [("info", Self.files.info), ("mod", Self.files.mod)] {
            let answer = try #require(zipOnly.get("/example.com/a/@v/v1.0.0.\(artifact)"))
            #expect(answer.response.status == 200 && answer.response.bodyBytes == bytes)
        }
        #expect(zipOnly.storage.calls("url") == 0)
        #expect(zipOnly.download.cache.heldBytes == Self.files.info.count + Self.files.mod.count)

        let all = DownloadHarness(storageRedirects: [.zip, .info, .mod])
        all.storage.put(Self.module, "v1.0.0", Self.files)
        all.storage.scriptURL(Self.signed)
        for artifact in ["info", "mod", "zip"] {
            let answer = try #require(all.get("/example.com/a/@v/v1.0.0.\(artifact)"))
            #expect(answer.response.status == 302)
            #expect(answer.response.header("Location") == "https://objects.example/example.com/a/@v/v1.0.0.\(artifact)?sig=1")
        }
        #expect(all.storage.calls("open") == 0)
    }

    @Test("serve bytes (the default) never asks the storage for a URL")
    func bytesModeNeverAsks() throws {
        let h = DownloadHarness()
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.storage.scriptURL(Self.signed)
        let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(answer.response.status == 200 && answer.response.bodyBytes == Self.files.zip)
        #expect(h.storage.calls("url") == 0)
    }

    @Test("a storage without a URL for the zip (declined or failed) gets it served as bytes, never from memory")
    func declinedZipIsServedAndNotCached() throws {
        let h = DownloadHarness(storageRedirects: [.zip])
        h.storage.put(Self.module, "v1.0.0", Self.files)
        h.storage.scriptURL { _, _, _ in nil }
        for round in 1...2 {
            let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
            #expect(answer.response.status == 200)
            #expect(answer.response.bodyBytes == Self.files.zip)
            #expect(answer.response.header("Location") == nil)
            #expect(h.storage.calls("url") == round)
            #expect(h.storage.calls("open") == round, "not kept in memory: the next request asks url again")
        }
        #expect(h.download.cache.heldBytes == 0)
        // The storage recovers: the very next request redirects (a cached copy would have hidden it).
        h.storage.scriptURL(Self.signed)
        let later = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(later.response.status == 302)
    }

    @Test("a miss is fetched and stored as usual, then redirected; the fetch happens once")
    func missIsStashedThenRedirected() throws {
        let h = DownloadHarness(storageRedirects: [.zip])
        h.upstream.add(Self.module, "v1.0.0", Self.files)
        h.storage.scriptURL(Self.signed)
        let answer = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(answer.response.status == 302)
        #expect(answer.response.header("Location") == "https://objects.example/example.com/a/@v/v1.0.0.zip?sig=1")
        #expect(answer.response.cacheResult == "miss")
        #expect(h.storage.stored(Self.module, "v1.0.0")?.zip == Self.files.zip)
        #expect(h.upstream.calls("fetch") == 1)
        let again = try #require(h.get("/example.com/a/@v/v1.0.0.zip"))
        #expect(again.response.status == 302 && again.response.cacheResult == "hit")
        #expect(h.upstream.calls("fetch") == 1)
    }

    @Test("a version not stored and not fetchable is still a 404, with no Location")
    func missingVersionIs404() throws {
        let h = DownloadHarness(storageRedirects: [.zip])
        h.storage.scriptURL(Self.signed)
        let answer = try #require(h.get("/example.com/a/@v/v9.9.9.zip"))
        #expect(answer.response.status == 404)
        #expect(answer.response.header("Location") == nil)
    }
}

@Suite("storage url checks: nothing unsafe reaches a Location header")
struct RedirectURLCheckTests {
    func check(_ text: [UInt8], valid: UInt32 = 60, capacity: Int = 64) -> Result<(url: String, validSeconds: Int), RedirectURL.Refusal> {
        var buffer = [UInt8](repeating: 0, count: capacity)
        buffer.replaceSubrange(0..<min(text.count, capacity), with: text.prefix(capacity))
        return buffer.withUnsafeBufferPointer { RedirectURL.check($0, validSeconds: valid) }
    }

    @Test("http and https URLs of printable ASCII with a validity pass")
    func goodURLs() throws {
        for url in ["http://127.0.0.1:9000/b/k.zip", "https://s3.example/b/k?X-Amz-Signature=ab%2F"] {
            let target = try check(Array(url.utf8)).get()
            #expect(target.url == url && target.validSeconds == 60)
        }
    }

    @Test("CR/LF, spaces, control or non-ASCII bytes, other schemes, a bare scheme, no NUL, no validity are refused")
    func badURLs() {
        let cases: [([UInt8], UInt32, RedirectURL.Refusal)] = [
            (Array("http://x/a\r\nSet-Cookie: y".utf8), 60, .notPrintable),
            (Array("http://x/a b".utf8), 60, .notPrintable),
            (Array("http://x/\u{7F}".utf8), 60, .notPrintable),
            (Array("http://x/é".utf8), 60, .notPrintable),
            (Array("file:///etc/passwd".utf8), 60, .notHTTP),
            (Array("/relative/path.zip".utf8), 60, .notHTTP),
            (Array("HTTP://x/".utf8), 60, .notHTTP),
            (Array("https://".utf8), 60, .notHTTP),
            ([], 60, .notPrintable),
            (Array("http://x/ok".utf8), 0, .noValidity),
            ([UInt8](repeating: UInt8(ascii: "a"), count: 64), 60, .unterminated),
        ]
        for (bytes, valid, refusal) in cases {
            switch check(bytes, valid: valid) {
            case .success: Issue.record("accepted \(String(decoding: bytes, as: UTF8.self))")
            case let .failure(got): #expect(got == refusal, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }
}

extension ManifestTests {
    @Test("storage.serve and storage.redirect: bytes by default, redirect of zips, or of the files listed")
    func storageServe() throws {
        #expect(try Self.parse("{}").storageRedirects.isEmpty)
        #expect(try Self.parse(#"{"storage": {"plugin": "M", "serve": "bytes"}}"#).storageRedirects.isEmpty)
        #expect(try Self.parse(#"{"storage": {"plugin": "M", "serve": "redirect"}}"#).storageRedirects == [.zip])
        #expect(try Self.parse(#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": ["zip", "info", "mod"]}}"#).storageRedirects
                == [.zip, .info, .mod])
        #expect(try Self.parse(#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": ["mod"]}}"#).storageRedirects == [.mod])
    }

    @Test("bad storage.serve and storage.redirect values are refused with a line naming the key", arguments: [
        (#"{"storage": {"plugin": "M", "serve": "302"}}"#, #"manifest.storage.serve: must be "bytes" or "redirect""#),
        (#"{"storage": {"plugin": "M", "serve": true}}"#, "manifest.storage.serve: must be a string"),
        (#"{"storage": {"plugin": "M", "redirect": ["zip"]}}"#, #"manifest.storage.redirect: only with "serve": "redirect""#),
        (#"{"storage": {"plugin": "M", "serve": "bytes", "redirect": ["zip"]}}"#, "manifest.storage.redirect: only with"),
        (#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": "zip"}}"#, "manifest.storage.redirect: must be an array"),
        (#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": []}}"#, "manifest.storage.redirect: names no file"),
        (#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": [".zip"]}}"#, #"manifest.storage.redirect[0]: must be "zip", "info" or "mod""#),
        (#"{"storage": {"plugin": "M", "serve": "redirect", "redirect": ["zip", 1]}}"#, "manifest.storage.redirect[1]: must be"),
    ])
    func badStorageServe(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
        #expect(error?.description.contains("\n") == false)
    }
}
