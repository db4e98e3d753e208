// ProxyFetcher plugin tests: the built libProxyFetcher.so, loaded by path through the host's FetcherPlugin,
// against Tests/Fixtures/fake_upstream.py (a static GOPROXY tree with fault modes) on 127.0.0.1.
// Longer than ~400 lines on purpose: one suite over one shared fake upstream process, each fault mode a test.
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Foundation
import GoModule
import Synchronization
import Testing

/// A running fake_upstream.py serving a fresh fixture tree; stopped (by pid) and removed on deinit.
private final class FakeGoproxyUpstream {
    /// What paths under /_auth/ require, with user "user".
    static let password = "s3cret"
    let port: Int
    private let directory: String
    private let process: ChildProcess

    /// "http://127.0.0.1:<port>".
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        directory = TestSupport.makeTemporaryDirectory("proxyfetcher")
        try ProxyFetcherFixture.write(into: URL(fileURLWithPath: directory + "/tree"))
        process = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/fake_upstream.py",
                                                    "--root", directory + "/tree", "--port", "0",
                                                    "--log", directory + "/requests.log", "--auth", "user:\(Self.password)"])
        guard let line = process.firstLine(), let port = Int(line) else {
            throw TestFailure("fake_upstream.py did not print its port: \(process.stderr)")
        }
        self.port = port
    }

    deinit {
        process.stop()
        TestSupport.removeDirectory(directory)
    }

    /// Every request path the upstream saw, in order.
    func requests() -> [String] {
        guard let text = try? String(contentsOfFile: directory + "/requests.log", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }
}

/// The static GOPROXY tree the fake upstream serves.
private enum ProxyFetcherFixture {
    static let helloInfo = Array(#"{"Version":"v1.0.0","Time":"2020-01-02T03:04:05Z"}"#.utf8)
    static let helloMod = Array("module example.com/hello\n\ngo 1.21\n".utf8)
    /// Large enough to arrive in many chunks; deterministic so a failure is reproducible.
    static let helloZip: [UInt8] = {
        var state: UInt32 = 12345
        return (0..<300_000).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
    }()
    static let incompatibleInfo = Array(#"{"Version":"v2.0.0+incompatible"}"#.utf8)
    static let tomlInfo = Array(#"{"Version":"v1.3.2","Time":"2021-01-01T00:00:00Z"}"#.utf8)
    static let tomlMod = Array("module github.com/BurntSushi/toml\n".utf8)
    static let tomlZip = Array("PK not really a zip, the fetcher does not look inside".utf8)
    static let latestInfo = Array(#"{"Version":"v1.0.0","Time":"2020-01-02T03:04:05Z"}"#.utf8)
    static let masterInfo = Array(#"{"Version":"v1.0.1-0.20200102030405-abcdefabcdef","Time":"2020-01-02T03:04:05Z"}"#.utf8)
    /// Junk, duplicates, a pseudo-version, a non-canonical version, CRLF and a time column, as real upstreams send.
    static let helloList = """
        v1.0.0
        v1.1.0-rc.1 2020-03-01T00:00:00Z
        v0.0.0-20200101000000-abcdefabcdef
        not-a-version
        1.5.0
        v1.2
          v2.0.0+incompatible\r
        v1.0.0

        """

    static func write(into tree: URL) throws {
        let files: [(String, [UInt8])] = [
            ("example.com/hello/@v/v1.0.0.info", helloInfo),
            ("example.com/hello/@v/v1.0.0.mod", helloMod),
            ("example.com/hello/@v/v1.0.0.zip", helloZip),
            ("example.com/hello/@v/v2.0.0+incompatible.info", incompatibleInfo),
            ("example.com/hello/@v/v2.0.0+incompatible.mod", helloMod),
            ("example.com/hello/@v/v2.0.0+incompatible.zip", helloZip),
            ("example.com/hello/@v/list", Array(helloList.utf8)),
            ("example.com/hello/@latest", latestInfo),
            ("example.com/hello/@v/master.info", masterInfo),
            ("github.com/!burnt!sushi/toml/@v/v1.3.2.info", tomlInfo),
            ("github.com/!burnt!sushi/toml/@v/v1.3.2.mod", tomlMod),
            ("github.com/!burnt!sushi/toml/@v/v1.3.2.zip", tomlZip),
            ("github.com/!burnt!sushi/toml/@v/list", Array("v1.3.2\n".utf8)),
            ("example.com/empty/@v/list", []),
            // Over the 64 KiB .info limit, though valid JSON.
            ("example.com/big/@v/v1.0.0.info", Array((#"{"Version":"v1.0.0","Pad":""# + String(repeating: "x", count: 70_000) + #""}"#).utf8)),
            ("example.com/big/@v/v1.0.0.mod", helloMod),
            ("example.com/big/@v/v1.0.0.zip", helloZip),
            ("example.com/badtime/@v/v1.0.0.info", Array(#"{"Version":"v1.0.0","Time":5}"#.utf8)),
            ("example.com/wordtime/@v/v1.0.0.info", Array(#"{"Version":"v1.0.0","Time":"yesterday"}"#.utf8)),
            ("example.com/nulltime/@v/v1.0.0.info", Array(#"{"Version":"v1.0.0","Time":null}"#.utf8)),
            ("example.com/nulltime/@v/v1.0.0.mod", Array("module example.com/nulltime\n".utf8)),
            ("example.com/nulltime/@v/v1.0.0.zip", helloZip),
            ("example.com/noversion/@v/v1.0.0.info", Array(#"{"Time":"2020-01-02T03:04:05Z"}"#.utf8)),
            ("example.com/array/@v/v1.0.0.info", Array(#"["v1.0.0"]"#.utf8)),
            ("example.com/noncanonical/@latest", Array(#"{"Version":"v1.2"}"#.utf8)),
        ]
        for (path, bytes) in files {
            let file = tree.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: file)
        }
    }
}

/// What a fetch wrote into its three sinks.
private struct FetchedArtifacts {
    var info: [UInt8] = []
    var mod: [UInt8] = []
    var zip: [UInt8] = []
}

private func proxyFetcherPluginPath() -> String { TestSupport.plugin("ProxyFetcher") }

private func makeProxyFetcher(_ config: String) throws -> FetcherPlugin {
    try FetcherPlugin(library: PluginLibrary(path: proxyFetcherPluginPath()), configJSON: config)
}

private func makeProxyFetcher(url: String, timeout: Double = 5, zipTimeout: Double = 30) throws -> FetcherPlugin {
    try makeProxyFetcher(#"{"url": "\#(url)", "timeoutSeconds": \#(timeout), "zipTimeoutSeconds": \#(zipTimeout)}"#)
}

/// Runs a fetch and keeps what reached the sinks whether it failed or not; `zipLimit` makes the zip sink refuse.
private func attemptProxyFetch(_ fetcher: FetcherPlugin, _ module: String, _ version: String,
                          zipLimit: Int = .max) -> (error: PluginError?, got: FetchedArtifacts) {
    var got = FetchedArtifacts()
    do {
        try fetcher.fetch(module: module, version: version,
                          info: { got.info += $0; return true },
                          mod: { got.mod += $0; return true },
                          zip: { bytes in
                              guard got.zip.count + bytes.count <= zipLimit else { return false }
                              got.zip += bytes
                              return true
                          })
        return (nil, got)
    } catch {
        return (error, got)
    }
}

@Suite("ProxyFetcher plugin against a fake upstream")
struct ProxyFetcherTests {
    // MARK: loading and config

    @Test("the library is a fetcher named ProxyFetcher and declines another ABI major")
    func descriptor() throws {
        let library = try PluginLibrary(path: proxyFetcherPluginPath())
        #expect(library.name == "ProxyFetcher")
        #expect(library.kind == .fetcher)
        let handle = try #require(dlopen(proxyFetcherPluginPath(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))
        typealias Query = @convention(c) (UInt32) -> UnsafeRawPointer?
        let query = unsafeBitCast(try #require(dlsym(handle, "ath_plugin_query")), to: Query.self)
        #expect(query(library.descriptor.abi_major) != nil)
        #expect(query(library.descriptor.abi_major + 1) == nil)
    }

    @Test("a bad config is refused as invalid, naming the key", arguments: [
        ("{}", "config.url"),
        ("[]", "config"),
        ("not json", "config"),
        (#"{"url": null}"#, "config.url"),
        (#"{"url": 5}"#, "config.url"),
        (#"{"url": ""}"#, "config.url"),
        (#"{"url": "ftp://127.0.0.1/x"}"#, "config.url"),
        (#"{"url": "127.0.0.1:8081"}"#, "config.url"),
        (#"{"url": "http:///nohost"}"#, "config.url"),
        (#"{"url": "http://127.0.0.1/?a=b"}"#, "config.url"),
        (#"{"url": "http://127.0.0.1/#frag"}"#, "config.url"),
        (#"{"url": "http://127.0.0.1", "timeout": 3}"#, "config.timeout"),
        (#"{"url": "http://127.0.0.1", "timeoutSeconds": "3"}"#, "config.timeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "timeoutSeconds": true}"#, "config.timeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "timeoutSeconds": 0}"#, "config.timeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "timeoutSeconds": -1}"#, "config.timeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "timeoutSeconds": 1e9}"#, "config.timeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "zipTimeoutSeconds": [600]}"#, "config.zipTimeoutSeconds"),
        (#"{"url": "http://127.0.0.1", "zipTimeoutSeconds": 0}"#, "config.zipTimeoutSeconds"),
    ])
    func badConfig(config: String, key: String) throws {
        let error = #expect(throws: PluginError.self) { try makeProxyFetcher(config) }
        #expect(error?.code == .invalid)
        #expect(error?.message.hasPrefix(key) == true, "\(error?.message ?? "")")
    }

    @Test("a config URL's password never appears in a config error")
    func configErrorHidesPassword() throws {
        let error = #expect(throws: PluginError.self) { try makeProxyFetcher(#"{"url": "ftp://user:s3cret@127.0.0.1/"}"#) }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("s3cret") == false)
    }

    // MARK: fetch

    @Test("fetch writes the upstream's exact bytes, with one request per file")
    func fetchSuccess() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error == nil, "\(String(describing: error))")
        #expect(got.info == ProxyFetcherFixture.helloInfo)
        #expect(got.mod == ProxyFetcherFixture.helloMod)
        #expect(got.zip == ProxyFetcherFixture.helloZip)
        #expect(upstream.requests() == ["/example.com/hello/@v/v1.0.0.info", "/example.com/hello/@v/v1.0.0.mod",
                                        "/example.com/hello/@v/v1.0.0.zip"])
    }

    @Test("a base URL with a path and a trailing slash is used as a prefix")
    func basePathAndSlash() throws {
        let upstream = try FakeGoproxyUpstream()
        // The redirect fault answers 302 to the path without its prefix, so the prefix must reach the wire.
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/redirect/")
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error == nil, "\(String(describing: error))")
        #expect(got.zip == ProxyFetcherFixture.helloZip)
        #expect(upstream.requests().filter { $0.hasSuffix(".zip") }
                == ["/_fault/redirect/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/v1.0.0.zip"])
    }

    @Test("an upper-case module path is fetched from its !-escaped, percent-encoded URL")
    func upperCasePath() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "github.com/BurntSushi/toml", "v1.3.2")
        #expect(error == nil, "\(String(describing: error))")
        #expect(got.zip == ProxyFetcherFixture.tomlZip)
        #expect(upstream.requests().first == "/github.com/%21burnt%21sushi/toml/@v/v1.3.2.info")
    }

    @Test("a +incompatible version keeps its literal + on the wire")
    func incompatibleVersion() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v2.0.0+incompatible")
        #expect(error == nil, "\(String(describing: error))")
        #expect(got.info == ProxyFetcherFixture.incompatibleInfo)
        #expect(upstream.requests().last == "/example.com/hello/@v/v2.0.0+incompatible.zip")
    }

    @Test("one instance serves concurrent fetches")
    func concurrentFetches() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let results = Mutex<[Bool]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
            results.withLock { $0.append(error == nil && got.zip == ProxyFetcherFixture.helloZip && got.info == ProxyFetcherFixture.helloInfo) }
        }
        #expect(results.withLock { $0 } == Array(repeating: true, count: 6))
        #expect(upstream.requests().filter { $0.hasSuffix(".zip") }.count == 6)
    }

    @Test("a version the upstream does not have is notFound, naming module@version and quoting the upstream")
    func missingVersion() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v9.9.9")
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("example.com/hello@v9.9.9") == true)
        #expect(error?.message.contains("404") == true)
        #expect(error?.message.contains("not found: /example.com/hello/@v/v9.9.9.info") == true, "\(error?.message ?? "")")
        #expect(got.info.isEmpty && got.mod.isEmpty && got.zip.isEmpty)
    }

    @Test("404 and 410 on any file are notFound", arguments: ["status-404", "status-410", "status-410:.zip", "status-404:.mod"])
    func goneIsNotFound(fault: String) throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/" + fault)
        let (error, _) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true)
        #expect(error?.message.contains(upstream.url + "/_fault/" + fault + "/example.com/hello/@v/") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("fake upstream: status") == true)
    }

    @Test("any other status is unavailable, naming the status and the URL",
          arguments: ["status-500", "status-502", "status-503", "status-403", "status-429", "status-500:.zip"])
    func otherStatusIsUnavailable(fault: String) throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/" + fault)
        let (error, _) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        let status = fault.dropFirst("status-".count).prefix(3)
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true)
        #expect(error?.message.contains("answered \(status) for \(upstream.url)/_fault/") == true, "\(error?.message ?? "")")
    }

    @Test("a malformed .info is refused before anything reaches a sink", arguments: [
        ("/_fault/garbage:.info", "example.com/hello"),
        ("/_fault/wrong-version:.info", "example.com/hello"),
        ("", "example.com/badtime"),
        ("", "example.com/wordtime"),
        ("", "example.com/noversion"),
        ("", "example.com/array"),
        ("", "example.com/big"),
    ])
    func malformedInfo(prefix: String, module: String) throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + prefix)
        let (error, got) = attemptProxyFetch(fetcher, module, "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("\(module)@v1.0.0") == true, "\(error?.message ?? "")")
        #expect(got.info.isEmpty && got.mod.isEmpty && got.zip.isEmpty)
        #expect(!upstream.requests().contains { $0.hasSuffix(".zip") })
    }

    @Test("a .info with \"Time\": null passes, as it does in the host and the go command (one rule for both)")
    func nullTime() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "example.com/nulltime", "v1.0.0")
        #expect(error == nil, "\(String(describing: error))")
        #expect(got.info == Array(#"{"Version":"v1.0.0","Time":null}"#.utf8))
        // The host applies the same rule to what the fetcher handed over.
        #expect(try ArtifactValidator.checkInfo(got.info, version: "v1.0.0") == "v1.0.0")
    }

    @Test("a truncated zip (Content-Length larger than the bytes sent) fails the fetch")
    func truncatedZip() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/truncate:.zip")
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true)
        #expect(error?.message.contains("/example.com/hello/@v/v1.0.0.zip") == true, "\(error?.message ?? "")")
        #expect(got.zip.count < ProxyFetcherFixture.helloZip.count)
    }

    @Test("an upstream that never answers times out within the configured seconds")
    func stallTimesOut() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/stall", timeout: 1)
        let start = Date()
        let (error, _) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        let elapsed = Date().timeIntervalSince(start)
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true, "\(error?.message ?? "")")
        #expect(elapsed >= 0.9 && elapsed < 4, "took \(elapsed) s")
    }

    @Test("an upstream that stops sending mid-zip times out after the idle timeout")
    func stallMidBodyTimesOut() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/stall-body:.zip", timeout: 1)
        let start = Date()
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("sent nothing for 1 s") == true, "\(error?.message ?? "")")
        #expect(got.zip.count < ProxyFetcherFixture.helloZip.count)
        #expect(Date().timeIntervalSince(start) < 4)
    }

    @Test("a zip that keeps trickling in is cut off at zipTimeoutSeconds")
    func slowZipTimesOut() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/trickle:.zip", timeout: 5, zipTimeout: 1.5)
        let start = Date()
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        let elapsed = Date().timeIntervalSince(start)
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("zipTimeoutSeconds") == true, "\(error?.message ?? "")")
        #expect(!got.zip.isEmpty && got.zip.count < ProxyFetcherFixture.helloZip.count)
        #expect(elapsed >= 1.4 && elapsed < 4, "took \(elapsed) s")
    }

    @Test("a zip sink that refuses more data stops the fetch with invalid")
    func sinkRefusal() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, got) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0", zipLimit: 10_000)
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true, "\(error?.message ?? "")")
        #expect(got.zip.count <= 10_000)
    }

    @Test("a redirect loop is unavailable")
    func redirectLoop() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url + "/_fault/redirect-loop")
        let (error, _) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("redirect") == true, "\(error?.message ?? "")")
    }

    @Test("a refused connection is unavailable")
    func connectionRefused() throws {
        // Port 1 on loopback: nothing listens there.
        let fetcher = try makeProxyFetcher(url: "http://127.0.0.1:1")
        let (error, _) = attemptProxyFetch(fetcher, "example.com/hello", "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("example.com/hello@v1.0.0") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("http://127.0.0.1:1/example.com/hello/@v/v1.0.0.info") == true)
    }

    @Test("credentials in the URL are sent, and never appear in a message")
    func credentials() throws {
        let upstream = try FakeGoproxyUpstream()
        let withAuth = "http://user:\(FakeGoproxyUpstream.password)@127.0.0.1:\(upstream.port)/_auth"
        let good = try makeProxyFetcher(url: withAuth)
        let (ok, got) = attemptProxyFetch(good, "example.com/hello", "v1.0.0")
        #expect(ok == nil, "\(String(describing: ok))")
        #expect(got.zip == ProxyFetcherFixture.helloZip)

        let failing = try makeProxyFetcher(url: withAuth + "/_fault/status-503")
        let (error, _) = attemptProxyFetch(failing, "example.com/hello", "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(FakeGoproxyUpstream.password) == false, "\(error?.message ?? "")")
        #expect(error?.message.contains("127.0.0.1:\(upstream.port)/_auth/") == true)

        let wrong = try makeProxyFetcher(url: "http://user:wrong@127.0.0.1:\(upstream.port)/_auth")
        let (refused, _) = attemptProxyFetch(wrong, "example.com/hello", "v1.0.0")
        #expect(refused?.code == .unavailable)
        #expect(refused?.message.contains("401") == true)
        #expect(refused?.message.contains("wrong") == false, "\(refused?.message ?? "")")
    }

    @Test("a redirect keeps the credentials on the upstream's origin and drops them elsewhere")
    func credentialsStayOnOrigin() throws {
        let upstream = try FakeGoproxyUpstream()
        let elsewhere = try FakeGoproxyUpstream()
        let base = "http://user:\(FakeGoproxyUpstream.password)@127.0.0.1:\(upstream.port)"
        let sameOrigin = try makeProxyFetcher(url: base + "/_fault/redirect/_auth")
        let (ok, got) = attemptProxyFetch(sameOrigin, "example.com/hello", "v1.0.0")
        #expect(ok == nil, "\(String(describing: ok))")
        #expect(got.zip == ProxyFetcherFixture.helloZip)

        // The other server wants the same password, so it answers 401 only if the header was dropped.
        let otherOrigin = try makeProxyFetcher(url: base + "/_fault/redirect-port-\(elsewhere.port)/_auth")
        let (error, _) = attemptProxyFetch(otherOrigin, "example.com/hello", "v1.0.0")
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("answered 401 for http://127.0.0.1:\(elsewhere.port)/_auth/") == true, "\(error?.message ?? "")")
        #expect(elsewhere.requests() == ["/_auth/example.com/hello/@v/v1.0.0.info"])
    }

    @Test("a module path or version GOPROXY cannot spell is invalid",
          arguments: [("example.com/hello", "v1.0.0!"), ("", "v1.0.0"), ("example.com/hello", "a/b")])
    func unspellable(module: String, version: String) throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let (error, _) = attemptProxyFetch(fetcher, module, version)
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("\(module)@\(version)") == true, "\(error?.message ?? "")")
        #expect(upstream.requests().isEmpty)
    }

    // MARK: list

    @Test("list keeps canonical tagged versions and drops junk, pseudo-versions and duplicates")
    func listFilters() throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        let versions = try fetcher.list(module: "example.com/hello")
        #expect(versions.sorted() == ["v1.0.0", "v1.1.0-rc.1", "v2.0.0+incompatible"])
        #expect(upstream.requests() == ["/example.com/hello/@v/list"])
        #expect(try fetcher.list(module: "github.com/BurntSushi/toml") == ["v1.3.2"])
        #expect(upstream.requests().last == "/github.com/%21burnt%21sushi/toml/@v/list")
    }

    @Test("an empty list is no versions; a body of garbage yields none either")
    func listEmpty() throws {
        let upstream = try FakeGoproxyUpstream()
        #expect(try makeProxyFetcher(url: upstream.url).list(module: "example.com/empty").isEmpty)
        #expect(try makeProxyFetcher(url: upstream.url + "/_fault/garbage").list(module: "example.com/hello").isEmpty)
    }

    @Test("list of an unknown module is notFound; a failing upstream is unavailable")
    func listFailures() throws {
        let upstream = try FakeGoproxyUpstream()
        let missing = #expect(throws: PluginError.self) { try makeProxyFetcher(url: upstream.url).list(module: "example.com/nothing") }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("example.com/nothing") == true)
        let failing = #expect(throws: PluginError.self) {
            try makeProxyFetcher(url: upstream.url + "/_fault/status-500").list(module: "example.com/hello")
        }
        #expect(failing?.code == .unavailable)
        #expect(failing?.message.contains("/example.com/hello/@v/list") == true, "\(failing?.message ?? "")")
    }

    // MARK: resolve

    @Test("resolve asks @latest for latest and <query>.info otherwise, and returns the upstream's JSON",
          arguments: [("latest", "/example.com/hello/@latest", ProxyFetcherFixture.latestInfo),
                      ("master", "/example.com/hello/@v/master.info", ProxyFetcherFixture.masterInfo),
                      ("v1.0.0", "/example.com/hello/@v/v1.0.0.info", ProxyFetcherFixture.helloInfo)])
    func resolve(query: String, path: String, expected: [UInt8]) throws {
        let upstream = try FakeGoproxyUpstream()
        let fetcher = try makeProxyFetcher(url: upstream.url)
        #expect(try fetcher.resolve(module: "example.com/hello", query: query) == expected)
        #expect(upstream.requests() == [path])
    }

    @Test("resolve of an unknown query is notFound")
    func resolveMissing() throws {
        let upstream = try FakeGoproxyUpstream()
        let error = #expect(throws: PluginError.self) {
            try makeProxyFetcher(url: upstream.url).resolve(module: "example.com/hello", query: "nosuchbranch")
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("example.com/hello@nosuchbranch") == true)
    }

    @Test("resolve refuses garbage, a non-canonical version, or another version than asked", arguments: [
        ("/_fault/garbage", "example.com/hello", "latest"),
        ("/_fault/wrong-version", "example.com/hello", "v1.0.0"),
        ("", "example.com/noncanonical", "latest"),
        ("", "example.com/big", "v1.0.0"),
        ("/_fault/status-503", "example.com/hello", "latest"),
    ])
    func resolveMalformed(prefix: String, module: String, query: String) throws {
        let upstream = try FakeGoproxyUpstream()
        var written: [UInt8] = []
        let error = #expect(throws: PluginError.self) {
            written = try makeProxyFetcher(url: upstream.url + prefix).resolve(module: module, query: query)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("\(module)@\(query)") == true, "\(error?.message ?? "")")
        #expect(written.isEmpty)
    }

    @Test("resolve of a query GOPROXY cannot spell is invalid and asks nothing")
    func resolveUnspellable() throws {
        let upstream = try FakeGoproxyUpstream()
        let error = #expect(throws: PluginError.self) {
            try makeProxyFetcher(url: upstream.url).resolve(module: "example.com/hello", query: "feature/x")
        }
        #expect(error?.code == .invalid)
        #expect(upstream.requests().isEmpty)
    }

    @Test("resolve times out on a stalled upstream")
    func resolveTimeout() throws {
        let upstream = try FakeGoproxyUpstream()
        let error = #expect(throws: PluginError.self) {
            try makeProxyFetcher(url: upstream.url + "/_fault/stall", timeout: 1).resolve(module: "example.com/hello", query: "latest")
        }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("example.com/hello@latest") == true)
    }
}
