import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The one URL parser of the download routes: decoding, validation, and hostile paths.
@Suite("download request parsing")
struct DownloadRequestTests {
    @Test("valid routes decode percent and bang escapes", arguments: [
        ("/github.com/%21burnt%21sushi/toml/@v/v2.0.0+incompatible.info", "github.com/BurntSushi/toml", DownloadRequest.Kind.file(.info, version: "v2.0.0+incompatible")),
        ("/github.com/!burnt!sushi/toml/@v/list", "github.com/BurntSushi/toml", .list),
        ("/example.com/m/@latest", "example.com/m", .latest),
        ("/example.com/m/v2/@v/v2.1.0-rc.!a.mod", "example.com/m/v2", .file(.mod, version: "v2.1.0-rc.A")),
        ("/example.com/m/@v/v1.0.0.zip", "example.com/m", .file(.zip, version: "v1.0.0")),
        ("/example.com/m/@v/master.info", "example.com/m", .file(.info, version: "master")),
        ("/gopkg.in/yaml.v3/@v/list", "gopkg.in/yaml.v3", .list),
    ])
    func valid(path: String, module: String, kind: DownloadRequest.Kind) throws {
        let request = try DownloadRequest.parse(path[...]).get()
        #expect(request.module == module)
        #expect(request.kind == kind)
    }

    @Test("paths that are not download routes", arguments: [
        "/", "/healthz", "/example.com/m", "/example.com/m/@v/", "/example.com/m/@v/v1.0.0.tar",
        "/example.com/m/@latest/x", "/example.com/m/@v/list/x", "/example.com/m/@x", "example.com/m/@v/list",
    ])
    func notRoutes(path: String) {
        #expect(DownloadRequest.parse(path[...]) == .failure(.notARoute))
    }

    @Test("malformed modules and versions are 400 with a reason", arguments: [
        "/@v/list", "/@latest", "/x/@v/list", "/example.com/M/@v/list", "/example.com/m!/@v/list",
        "/example.com/m/@v/V1.0.0.info", "/example.com/m/@v/v1!.info", "/example.com/m/@v/.info",
        "/example.com/m/@v/a/b.info", "/example.com/../m/@v/list", "/example.com/%2e%2e/m/@v/list",
        "/example.com/m%00/@v/list", "/example.com/m%/@v/list", "/example.com/m%4/@v/list", "/example.com/m%zz/@v/list",
        "/example.com/%FF%FE/@v/list", "/example.com//m/@v/list", "/example.com/m/./@v/list", "/.example.com/m/@v/list",
        "/example.com/m /@v/list", "/example.com/m/@v/v1.0.0\u{0}.info",
    ])
    func malformed(path: String) {
        guard case let .failure(.malformed(status, message)) = DownloadRequest.parse(path[...]) else {
            Issue.record("\(path) was not refused as malformed")
            return
        }
        #expect(status == 400)
        #expect(message.hasPrefix("bad request: "))
    }

    @Test("percent-decoding keeps '+' and refuses NUL and bad UTF-8")
    func percentDecoding() {
        #expect(DownloadRequest.percentDecode("/a+b%21c") == "/a+b!c")
        #expect(DownloadRequest.percentDecode("/%41%62") == "/Ab")
        #expect(DownloadRequest.percentDecode("/%00") == nil)
        #expect(DownloadRequest.percentDecode("/%C3") == nil)
        #expect(DownloadRequest.percentDecode("/%") == nil)
        #expect(DownloadRequest.percentDecode("/%4") == nil)
    }
}
