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
        // The JSON reader's refusals carry its reason and offset; the other errors still name the key.
        (#"{"listen": "a", "listen": "b"}"#, #"manifest: not valid JSON (duplicate key "listen" at byte 16)"#),
        (#"{"listen": "a",}"#, "manifest: not valid JSON (expected a string key, found '}' at byte 15)"),
        ("{\"listen\": \"a\"} // note", "manifest: not valid JSON (data after the JSON value at byte 16)"),
        (#"{"storage": {"plugin": "M", "config": {"a": 1, "a": 2}}}"#, #"manifest: not valid JSON (duplicate key "a""#),
        (#"{"storage": {"plugin": "M", "config": "#+String(repeating: "[", count: 70)+"}}",
         "manifest: not valid JSON (nested deeper than 64 levels"),
        (#"{"stash": {"wrappers": [{"type": "pool", "size": 3}]}}"#, "manifest.stash.wrappers[0].size: unknown key"),
        (#"{"stash": {"abandonGraceSeconds": -1}}"#, "manifest.stash.abandonGraceSeconds: must be at least 0 and at most 86400"),
        (#"{"stash": {"abandonGraceSeconds": "10"}}"#, "manifest.stash.abandonGraceSeconds: must be a number"),
        (#"{"stash": {"fetchTimeoutSeconds": 0}}"#, "manifest.stash.fetchTimeoutSeconds: must be more than 0 and at most 86400"),
        (#"{"stash": {"fetchTimeoutSeconds": 90000}}"#, "manifest.stash.fetchTimeoutSeconds: must be more than 0 and at most 86400"),
        (#"{"stash": {"fetchTimeoutSeconds": 300}}"#, "manifest.stash.fetchTimeoutSeconds: must be at least stash.timeoutSeconds (600"),
        (#"{"stash": {"fetchTimeoutSeconds": 10, "timeoutSeconds": 20}}"#, "manifest.stash.fetchTimeoutSeconds: must be at least stash.timeoutSeconds (20"),
        (#"{"fetchers": [{"name": "a", "plugin": "P", "conf": {}}]}"#, "fetchers[0].conf: unknown key"),
        (#"{"download": {"workers": 99999999999999999999999}}"#, "manifest.download.workers: must be an integer from 1 to 4096"),
        (#"{"download": {"workers": "8"}}"#, "manifest.download.workers: must be a number"),
        (#"{"server": {"idleTimeoutSeconds": 1e999}}"#, "manifest.server.idleTimeoutSeconds: must be more than 0 and at most 86400"),
        (#"{"accessLog": 1}"#, "manifest.accessLog: must be true or false"),
        (#"{"basicAuth": {"user": "u", "password": "p", "realm": "r"}}"#, "manifest.basicAuth.realm: unknown key"),
        (#"{"server": {"thr\neads": 1}}"#, #"manifest.server."thr\neads": unknown key"#),
    ])
    func bad(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
        #expect(error?.description.contains("\n") == false)
    }

    @Test("stash.abandonGraceSeconds and stash.fetchTimeoutSeconds: defaults, zero grace, a fetch deadline of its own")
    func stashTimes() throws {
        let defaults = try Self.parse("{}")
        #expect(defaults.stashAbandonGrace == StashChain.defaultAbandonGrace && defaults.stashFetchTimeout == nil)
        let set = try Self.parse(#"{"stash": {"timeoutSeconds": 30, "abandonGraceSeconds": 0, "fetchTimeoutSeconds": 30}}"#)
        #expect(set.stashTimeout == 30 && set.stashAbandonGrace == 0 && set.stashFetchTimeout == 30)
        let chain = StashChain(wrappers: set.stashWrappers, timeout: set.stashTimeout, fetching: FetchingStasher(
            policy: DownloadPolicy(), storage: FakeStorage(), spoolDirectory: NSTemporaryDirectory()), callers: 1, queue: 1,
            abandonGrace: set.stashAbandonGrace, fetchTimeout: set.stashFetchTimeout)
        defer { chain.retire() }
        #expect(chain.stasher.abandonGrace == 0 && chain.stasher.fetchTimeout == 30)
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

    @Test("bytes that are not UTF-8 are refused with their offset")
    func notUTF8() {
        for bytes in [Array(#"{"listen": ""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8), [0xFF, 0xFE] + Array("{}".utf8),
                      Array("{}".utf8) + [0]] {
            let error = #expect(throws: ManifestError.self) { _ = try Manifest.parse(bytes, pluginDirectory: "/p") }
            #expect(error?.description.hasPrefix("manifest: not valid JSON (") == true, "got \(error?.description ?? "nothing")")
            #expect(error?.description.contains("at byte") == true)
        }
    }

    @Test("a plugin's config is handed on whole: nested arrays and objects, exact numbers, escapes, sorted keys")
    func configHandedOn() throws {
        let manifest = try Self.parse(#"""
        {"fetchers": [{"name": "f", "plugin": "P", "config": {"url": "http://x/", "nested": {"list": [1, "a", null, true, 2.50],
         "big": 12345678901234567890123}, "s": "a\u0000b\"c\u00e9"}}]}
        """#)
        let config = manifest.fetchers[0].use.configJSON
        #expect(config == #"{"nested":{"big":12345678901234567890123,"list":[1,"a",null,true,2.50]},"s":"a\u0000b\"cé","url":"http://x/"}"#)
        // NUL stays escaped, so the text crosses the ABI as a C string whole.
        #expect(!config.utf8.contains(0))
        // The upstream URL goes into a ProxyFetcher's config, keeping its other keys.
        var proxied = try Self.parse(#"{"fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "a", "timeoutSeconds": 5}}]}"#)
        try proxied.applyEnvironment(["ATHENS_UPSTREAM_URL": "http://127.0.0.1:1"])
        #expect(proxied.fetchers[0].use.configJSON == #"{"timeoutSeconds":5,"url":"http://127.0.0.1:1"}"#)
        try proxied.applyEnvironment(["ATHENS_STORAGE_TYPE": "disk", "ATHENS_DISK_STORAGE_ROOT": "/data/\"q\""])
        #expect(proxied.storage.configJSON == #"{"root":"/data/\"q\""}"#)
    }

    @Test("a 1 MiB value is read whole")
    func bigValue() throws {
        let patterns = String(repeating: "a", count: 1 << 20)
        let manifest = try Self.parse(#"{"noSumPatterns": ""#+patterns+#""}"#)
        #expect(manifest.noSumPatterns == patterns)
    }
}
