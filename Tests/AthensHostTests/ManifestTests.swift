import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// The manifest: stable keys, strict types, one error line naming the key.
@Suite("manifest")
struct ManifestTests {
    static func parse(_ json: String) throws(ManifestError) -> Manifest {
        try Manifest.parse(Array(json.utf8), pluginDirectory: "/plugins")
    }

    @Test("a full manifest is read")
    func full() throws {
        let manifest = try Self.parse("""
        {"listen": "127.0.0.1:4000", "pluginDirectory": "/opt/athens/plugins",
         "storage": {"plugin": "MemoryStorage", "config": {}},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:9", "timeoutSeconds": 5}},
                      {"name": "second", "plugin": "/abs/libOther.so"}],
         "spoolDirectory": "/var/tmp", "logLevel": "debug",
         "download": {"workers": 8, "queue": 16},
         "server": {"threads": 2, "maxConnections": 100, "headerTimeoutSeconds": 5, "idleTimeoutSeconds": 30,
                    "writeTimeoutSeconds": 20, "maxRequestLineBytes": 4096, "maxHeaderBytes": 8192, "maxHeaderCount": 50}}
        """)
        #expect(manifest.listen == "127.0.0.1:4000")
        #expect(manifest.storage.plugin == "MemoryStorage")
        #expect(manifest.fetchers.map(\.name) == ["upstream", "second"])
        #expect(manifest.fetchers[0].use.configJSON == #"{"timeoutSeconds":5,"url":"http:\/\/127.0.0.1:9"}"#
                || manifest.fetchers[0].use.configJSON == #"{"timeoutSeconds":5,"url":"http://127.0.0.1:9"}"#)
        #expect(manifest.fetchers[1].use.configJSON == "{}")
        #expect(manifest.libraryPath(for: "MemoryStorage") == "/opt/athens/plugins/libMemoryStorage.so")
        #expect(manifest.libraryPath(for: "/abs/libOther.so") == "/abs/libOther.so")
        #expect(manifest.downloadWorkers == 8 && manifest.downloadQueue == 16)
        #expect(manifest.server.threads == 2 && manifest.server.limits.maxHeaderCount == 50)
        #expect(manifest.server.headerTimeout == 5)
    }

    @Test("an empty object gives the working default")
    func defaults() throws {
        let manifest = try Self.parse("{}")
        #expect(manifest.listen == "127.0.0.1:3000")
        #expect(manifest.pluginDirectory == "/plugins")
        #expect(manifest.fetchers.count == 1)
        #expect(manifest.fetchers[0].use.plugin == "ProxyFetcher")
        #expect(manifest.fetchers[0].use.configJSON.contains("proxy.golang.org"))
    }

    @Test("bad manifests name the key", arguments: [
        ("not json", "manifest: not valid JSON"),
        ("[]", "manifest: must be an object"),
        (#"{"listn": "x"}"#, "manifest.listn: unknown key"),
        (#"{"listen": 3000}"#, "manifest.listen: must be a string"),
        (#"{"storage": {"plugn": "x"}}"#, "manifest.storage.plugin: required"),
        (#"{"storage": {"plugin": "M", "extra": 1}}"#, "manifest.storage.extra: unknown key"),
        (#"{"storage": {"plugin": "M", "config": []}}"#, "manifest.storage.config: must be an object"),
        (#"{"fetchers": {}}"#, "manifest.fetchers: must be an array"),
        (#"{"fetchers": [{"plugin": "P"}]}"#, "fetchers[0].name: required"),
        (#"{"fetchers": [{"name": "a", "plugin": "P"}, {"name": "a", "plugin": "P"}]}"#, "fetchers[1].name: \"a\" is used twice"),
        (#"{"download": {"workers": 0}}"#, "manifest.download.workers: must be an integer from 1 to 4096"),
        (#"{"download": {"workers": 1.5}}"#, "manifest.download.workers: must be an integer"),
        (#"{"download": {"workers": true}}"#, "manifest.download.workers: must be a number"),
        (#"{"server": {"idleTimeoutSeconds": -1}}"#, "manifest.server.idleTimeoutSeconds: must be more than 0"),
        (#"{"server": {"bogus": 1}}"#, "manifest.server.bogus: unknown key"),
        (#"{"logLevel": "loud"}"#, "logLevel: must be debug, info or error"),
    ])
    func bad(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
        #expect(error?.description.contains("\n") == false)
    }

    @Test("environment overrides, named like Athens'")
    func environment() throws {
        var manifest = try Self.parse(#"{"listen": "127.0.0.1:3000"}"#)
        try manifest.applyEnvironment(["ATHENS_PORT": ":4321", "ATHENS_PLUGIN_DIR": "/p", "ATHENS_STORAGE_TYPE": "memory",
                                       "ATHENS_UPSTREAM_URL": "http://127.0.0.1:1", "ATHENS_PROTOCOL_WORKERS": "3"])
        #expect(manifest.listen == "127.0.0.1:4321")
        #expect(manifest.pluginDirectory == "/p")
        #expect(manifest.storage.plugin == "MemoryStorage")
        #expect(manifest.fetchers[0].use.configJSON.contains("127.0.0.1:1"))
        #expect(manifest.downloadWorkers == 3)
        try manifest.applyEnvironment(["ATHENS_STORAGE_TYPE": "disk", "ATHENS_DISK_STORAGE_ROOT": "/data"])
        #expect(manifest.storage.plugin == "FileStorage")
        #expect(manifest.storage.configJSON.contains("/data"))
        #expect(throws: ManifestError.self) { try manifest.applyEnvironment(["ATHENS_PORT": "http"]) }
        #expect(throws: ManifestError.self) { try manifest.applyEnvironment(["ATHENS_PROTOCOL_WORKERS": "0"]) }
    }
}
