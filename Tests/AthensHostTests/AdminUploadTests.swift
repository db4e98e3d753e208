// POST /admin/upload through the Router over the in-memory fakes: what is stored, the checks a fetched version
// passes, immutability (409 unless force and the same bytes), and hostile uploads leaving nothing stored.
import Foundation
import JSON
import SumDB
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("admin upload over in-memory fakes", .serialized)
struct AdminUploadTests {
    static let module = "example.com/up"

    static func upload(_ h: DownloadHarness, _ query: String, mod: [UInt8], zip: [UInt8],
                       headers: [(name: String, value: String)] = AdminAPITests.bearer) throws -> Response {
        let target = "/admin/upload?" + query + (query.contains("modBytes") ? "" : "&modBytes=\(mod.count)")
        return try #require(h.start(target, method: .post, headers: headers, body: mod + zip).wait()).response
    }

    static func files(_ version: String, go: String = "package up\n") -> (mod: [UInt8], zip: [UInt8]) {
        let mod = Array("module \(module)\n\ngo 1.21\n".utf8)
        return (mod, FakeZip.stored(["\(module)@\(version)/go.mod": mod, "\(module)@\(version)/up.go": Array(go.utf8)]))
    }

    @Test("an upload is stored with its go.mod, zip and an .info of the time given, and served")
    func stored() throws {
        let h = DownloadHarness(adminToken: AdminAPITests.token)
        let (mod, zip) = Self.files("v1.2.3")
        let response = try Self.upload(h, "module=example.com/up&version=v1.2.3&time=2024-05-06T07:08:09Z", mod: mod, zip: zip)
        #expect(response.status == 200, "\(response.bodyText)")
        let stored = try #require(h.storage.stored(Self.module, "v1.2.3"))
        #expect(stored.mod == mod && stored.zip == zip)
        #expect(String(decoding: stored.info, as: UTF8.self) == #"{"Version":"v1.2.3","Time":"2024-05-06T07:08:09Z","Athens":{"Zip":"\#(try DirHash.hashZip(bytes: zip))","Mod":"\#(DirHash.hashGoMod(mod))"}}"#)
        #expect(h.get("/example.com/up/@v/v1.2.3.zip")?.response.bodyBytes == zip)
    }

    @Test("a stored version is not replaced: 409, and with force a no-op only when the bytes are the same")
    func immutable() throws {
        let h = DownloadHarness(adminToken: AdminAPITests.token)
        let (mod, zip) = Self.files("v1.0.0")
        #expect(try Self.upload(h, "module=example.com/up&version=v1.0.0", mod: mod, zip: zip).status == 200)
        let saves = h.storage.calls("save")
        #expect(try Self.upload(h, "module=example.com/up&version=v1.0.0", mod: mod, zip: zip).status == 409)
        let same = try Self.upload(h, "module=example.com/up&version=v1.0.0&force=true", mod: mod, zip: zip)
        #expect(same.status == 200 && same.bodyText.contains(#""stored":false"#))
        let other = Self.files("v1.0.0", go: "package up\n\nconst Changed = 1\n")
        #expect(try Self.upload(h, "module=example.com/up&version=v1.0.0&force=true", mod: other.mod, zip: other.zip).status == 409)
        #expect(h.storage.calls("save") == saves && h.storage.stored(Self.module, "v1.0.0")?.zip == zip)
    }

    @Test("hostile or inconsistent uploads are 400 and nothing is stored", arguments: [
        ("module=example.com/up&version=v1.0.0", "go.mod of another module"),
        ("module=example.com/up&version=v1.0.0", "zip of another version"),
        ("module=example.com/up&version=v1.0.0", "go.mod other than the zip's"),
        ("module=example.com/up&version=v1.0.0", "zip with a .. path"),
        ("module=example.com/up&version=v1.0.0", "not a zip"),
        ("module=../etc&version=v1.0.0", "ok"),
        ("module=example.com/up&version=1.0.0", "ok"),
        ("module=example.com/up&version=v2.0.0", "ok"),
        ("module=example.com/up&version=v1.0.0&time=yesterday", "ok"),
        ("module=example.com/up&version=v1.0.0&force=yes", "ok"),
        ("module=example.com/up&version=v1.0.0&bogus=1", "ok"),
        ("module=example.com/up&module=example.com/x&version=v1.0.0", "ok"),
        ("module=example.com/up&version=v1.0.0&modBytes=0", "ok"),
        ("module=example.com/up&version=v1.0.0&modBytes=999999", "ok"),
        ("module=example.com/up%zz&version=v1.0.0", "ok"),
        ("version=v1.0.0", "ok"),
    ])
    func hostile(_ query: String, _ kind: String) throws {
        let h = DownloadHarness(adminToken: AdminAPITests.token)
        var (mod, zip) = Self.files("v1.0.0")
        switch kind {
        case "go.mod of another module":
            mod = Array("module example.com/other\n".utf8)
            zip = FakeZip.stored(["\(Self.module)@v1.0.0/go.mod": mod])
        case "zip of another version": zip = Self.files("v1.0.1").zip
        case "go.mod other than the zip's": mod = Array("module \(Self.module)\n\ngo 1.22\n".utf8)
        case "zip with a .. path": zip = FakeZip.stored(["\(Self.module)@v1.0.0/go.mod": mod, "\(Self.module)@v1.0.0/../evil.go": Array("x".utf8)])
        case "not a zip": zip = Array("PK but not really a zip".utf8)
        default: break
        }
        let response = try Self.upload(h, query, mod: mod, zip: zip)
        #expect(response.status == 400, "\(query) \(kind): \(response.status) \(response.bodyText)")
        #expect(h.storage.calls("save") == 0 && h.storage.keys.isEmpty)
    }

    @Test("an upload without the token is 401 and stores nothing")
    func unauthorized() throws {
        let h = DownloadHarness(adminToken: AdminAPITests.token)
        let (mod, zip) = Self.files("v1.0.0")
        #expect(try Self.upload(h, "module=example.com/up&version=v1.0.0", mod: mod, zip: zip, headers: []).status == 401)
        #expect(h.storage.calls("save") == 0 && h.storage.calls("exists") == 0)
    }
}
