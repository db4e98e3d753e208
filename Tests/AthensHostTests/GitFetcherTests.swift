// GitFetcher plugin behaviour beyond version rules: its config, how failures map to statuses (not found for
// unknown modules and revisions, unavailable for unreachable repositories, timeout for a silent server),
// process handling (children reaped, temp folders removed, no credentials in messages), mirror sharing
// under concurrency, updates for new tags, sink refusal, and go-get discovery.
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import Foundation
import GoModule
import Testing

@Suite("GitFetcher plugin", .blockingBodies)
final class GitFetcherTests {
    let cache = TestSupport.makeTemporaryDirectory("gitfetcher-cache")

    deinit { TestSupport.removeDirectory(cache) }

    static let badConfigs: [(json: String, mentions: String)] = [
        (#"{}"#, "config.cacheDirectory"),
        (#"{"cacheDirectory": "relative/dir"}"#, "config.cacheDirectory"),
        (#"{"cacheDirectory": "/tmp/x", "colour": "blue"}"#, "config.colour: unknown key"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": "github.com/a/b"}"#, "config.repositories"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "corp.example/a"}]}"#, "config.repositories[0]"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "Corp.Example/a", "url": "file:///x"}]}"#, "config.repositories[0].root"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "corp.example/a", "url": "--upload-pack=evil"}]}"#, "config.repositories[0].url"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "corp.example/a", "url": "file:///x", "branch": "y"}]}"#, "config.repositories[0].branch"),
        (#"{"cacheDirectory": "/tmp/x", "insecureHosts": 7}"#, "config.insecureHosts"),
        (#"{"cacheDirectory": "/tmp/x", "hostAddresses": ["a"]}"#, "config.hostAddresses"),
        (#"{"cacheDirectory": "/tmp/x", "compressionLevel": 12}"#, "config.compressionLevel"),
        (#"{"cacheDirectory": "/tmp/x", "gitTimeoutSeconds": 0}"#, "config.gitTimeoutSeconds"),
        (#"{"cacheDirectory": "/tmp/x", "gitPath": "/nonexistent/git"}"#, "config.gitPath"),
        (#"["not", "an", "object"]"#, "config"),
        // Strict JSON (PluginKit's reader), and the shapes of the array and object keys, word for word.
        (#"{"cacheDirectory": "/tmp/x", "cacheDirectory": "/tmp/y"}"#, #"config: not a JSON object (duplicate key "cacheDirectory" at byte 29)"#),
        (#"{"cacheDirectory": "/tmp/x",}"#, "config: not a JSON object (expected a string key, found '}' at byte 28)"),
        (#"{"cacheDirectory": "/tmp/\u0000x"}"#, "config.cacheDirectory: must not contain a NUL character"),
        (#"{"cacheDirectory": "/tmp/x", "refreshSeconds": true}"#, "config.refreshSeconds: must be a non-negative number"),
        (#"{"cacheDirectory": "/tmp/x", "repositories": {"root": "a"}}"#, #"config.repositories: must be a list of {"root", "url"} objects"#),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [7]}"#, #"config.repositories[0]: must be an object with string "root" and "url""#),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "corp.example/a", "url": 1}]}"#,
         #"config.repositories[0]: must be an object with string "root" and "url""#),
        (#"{"cacheDirectory": "/tmp/x", "repositories": [{"root": "corp.example/a", "url": "file:///x"}, {"root": "corp.example/b", "url": "file:///y", "ref": {}}]}"#,
         "config.repositories[1].ref: unknown key"),
        (#"{"cacheDirectory": "/tmp/x", "insecureHosts": ["a", 1]}"#,
         "config.insecureHosts: must be a list of host patterns (GOINSECURE syntax) or a comma-separated string"),
        (#"{"cacheDirectory": "/tmp/x", "hostAddresses": {"a": "127.0.0.1:1", "b": 2}}"#,
         #"config.hostAddresses: must be an object mapping a host to "address:port""#),
        (#"{"cacheDirectory": "/tmp/x", "hostAddresses": "a=b"}"#, #"config.hostAddresses: must be an object mapping a host to "address:port""#),
    ]

    @Test("a bad config is refused as invalid, naming the key", arguments: badConfigs)
    func badConfig(json: String, mentions: String) {
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.load(json) }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains(mentions) == true, "\(error?.message ?? "")")
    }

    @Test("a module no rule, layout or discovery knows is not found, without waiting for DNS")
    func unknownModule() throws {
        // hostAddresses sends discovery to a closed local port, so no DNS or internet is involved.
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)", "hostAddresses": {"nowhere.example": "127.0.0.1:1"}, "discoveryTimeoutSeconds": 5}"#)
        for call in [{ _ = try GitFetcherDriver.resolve(fetcher, "nowhere.example/m", "latest") },
                     { _ = try fetcher.list(module: "nowhere.example/m") },
                     { _ = try GitFetcherDriver.fetch(fetcher, "nowhere.example/m", "v1.0.0") }] as [() throws -> Void] {
            let error = #expect(throws: PluginError.self) { try call() }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("nowhere.example/m") == true)
        }
    }

    static let unknownRevisions: [(module: String, query: String)] = [
        ("github.com/fixture/hello", "v9.9.9"),                       // no such tag
        ("github.com/fixture/hello", "no-such-branch"),
        ("github.com/fixture/hello", "0123456789ab"),                 // no such commit
        ("github.com/fixture/hello", "v1.4.0"),                       // v1.4 is not canonical, so no v1.4.0 tag
        ("github.com/fixture/hello", "v1.5.0"),                       // only v1.5.0+meta: not a version
        ("github.com/fixture/hello/v2", "v2.0.0"),                    // no v2 module there
        ("github.com/fixture/multi/sub", "v2.0.0"),                   // root's tag, not sub/'s
        ("github.com/fixture/major", "v2.0.0"),                       // go.mod says /v2: not +incompatible
        ("github.com/fixture/hello", "v1.0.1-0.20200913132640-000000000000"),      // pseudo-version of no commit
    ]

    @Test("unknown revisions and versions that are not this module's are not found", arguments: unknownRevisions)
    func unknownRevision(module: String, query: String) throws {
        let fixture = try GitFixture.shared()
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: cache))
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.resolve(fetcher, module, query) }
        #expect(error?.code == .notFound, "\(error?.message ?? "")")
        if ModulePath.canonicalVersion(query) == query {
            let fetchError = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, module, query) }
            #expect(fetchError?.code == .notFound)
        }
    }

    @Test("pseudo-versions are validated like the go command does")
    func pseudoVersionValidation() throws {
        let fixture = try GitFixture.shared()
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: cache))
        let module = "github.com/fixture/hello"
        let good = try #require(try GitFetcherDriver.resolve(fetcher, module, "feature")["Version"] as? String)
        let parts = try #require(PseudoVersion.parse(good))
        let full = try fixture.commit(module, "feature")
        let cases: [(version: String, message: String)] = [
            ("v1.5.1-0.20000101000000-\(parts.rev)", "does not match version-control timestamp"),
            ("v1.5.1-0.\(parts.timestamp)-\(full.prefix(10))", "revision is shorter than canonical"),
            ("v1.9.1-0.\(parts.timestamp)-\(parts.rev)", "preceding tag (v1.9.0) not found"),
            ("v1.0.0-\(parts.timestamp)-\(parts.rev)", "major version without preceding tag must be v0, not v1"),
        ]
        for (version, message) in cases {
            let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, module, version) }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains(message) == true, "\(version): \(error?.message ?? "")")
        }
        // The valid one fetches, and a no-base v0 pseudo-version of the same commit is valid too.
        #expect(try GitFetcherDriver.fetch(fetcher, module, good).version == good)
        let v0 = "v0.0.0-\(parts.timestamp)-\(parts.rev)"
        #expect(try GitFetcherDriver.fetch(fetcher, module, v0).version == v0)
    }

    @Test("a non-canonical version to fetch is invalid")
    func nonCanonicalFetch() throws {
        let fixture = try GitFixture.shared()
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: cache))
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, "github.com/fixture/hello", "v1.0") }
        #expect(error?.code == .invalid)
    }

    @Test("a repository that does not exist is not found")
    func missingRepository() throws {
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)", "repositories": [{"root": "corp.example/gone", "url": "file://\#(cache)/no-such-repo"}]}"#)
        let error = #expect(throws: PluginError.self) { _ = try fetcher.list(module: "corp.example/gone") }
        #expect(error?.code == .notFound, "\(error?.message ?? "")")
        try expectNoTemporaryMirrors()
    }

    @Test("an unreachable repository is unavailable, and its credentials never appear in the message")
    func unreachableRepository() throws {
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)", "repositories": [{"root": "corp.example/down", "url": "https://deploy:s3cr3t-token@127.0.0.1:1/down.git"}]}"#)
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.resolve(fetcher, "corp.example/down", "latest") }
        #expect(error?.code == .unavailable, "\(error?.message ?? "")")
        #expect(error?.message.contains("s3cr3t") == false)
        #expect(error?.message.contains("deploy") == false)
        #expect(error?.message.contains("127.0.0.1:1") == true)
        try expectNoTemporaryMirrors()
    }

    @Test("a server that never answers is a timeout; git and its children are killed and reaped")
    func silentServerTimesOut() throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)", "gitTimeoutSeconds": 2, "repositories": [{"root": "corp.example/slow", "url": "http://127.0.0.1:\#(listener.port)/slow.git"}]}"#)
        let started = Date()
        let error = #expect(throws: PluginError.self) { _ = try fetcher.list(module: "corp.example/slow") }
        #expect(error?.code == .timeout, "\(error?.message ?? "")")
        #expect(Date().timeIntervalSince(started) < 15)
        // No git process is left behind (git-remote-http ran in git's process group): none names this test's
        // mirror folder or the silent port on its command line.
        let leftovers = Self.processes { $0.contains(cache) || $0.contains("127.0.0.1:\(listener.port)") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        try expectNoTemporaryMirrors()
    }

    @Test("concurrent fetches of different versions share one mirror")
    func concurrentFetches() async throws {
        let fixture = try GitFixture.shared()
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: cache))
        let versions = ["v1.0.0", "v1.1.0", "v1.2.0-pre.1", "v1.3.0", "v1.0.0", "v1.1.0"]
        let results = await withTaskGroup(of: String?.self) { group in
            for version in versions {
                group.addTask { try? GitFetcherDriver.fetch(fetcher, "github.com/fixture/hello", version).version }
            }
            var all: [String?] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.compactMap { $0 }.sorted() == versions.sorted())
        let mirrors = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".git") }
        #expect(mirrors.count == 1, "\(mirrors)")
    }

    @Test("a tag pushed after the mirror was made is fetched on demand, and list sees it after refreshSeconds")
    func newTagIsFetched() throws {
        let fixture = try GitFixture.shared()
        // A private copy of a fixture repository, so the push does not change what other tests see.
        let origin = cache + "/origin.git"
        let copy = try TestSupport.run("/bin/cp", ["-R", fixture.repos + "/github.com/fixture/notags", origin])
        #expect(copy.status == 0)
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)/mirrors", "refreshSeconds": 0, "repositories": [{"root": "github.com/fixture/notags", "url": "file://\#(origin)"}]}"#)
        #expect(try fetcher.list(module: "github.com/fixture/notags") == [])
        let tagged = try TestSupport.run("/usr/bin/env", ["git", "--git-dir=" + origin, "tag", "v0.1.0", "main"])
        #expect(tagged.status == 0)
        #expect(try GitFetcherDriver.fetch(fetcher, "github.com/fixture/notags", "v0.1.0").version == "v0.1.0")
        #expect(try fetcher.list(module: "github.com/fixture/notags") == ["v0.1.0"])
    }

    @Test("when the remote goes away, list and latest are answered from the existing mirror")
    func staleMirrorServes() throws {
        let fixture = try GitFixture.shared()
        let origin = cache + "/origin.git"
        let copy = try TestSupport.run("/bin/cp", ["-R", fixture.repos + "/github.com/fixture/legacy", origin])
        #expect(copy.status == 0)
        let fetcher = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)/mirrors", "refreshSeconds": 0, "repositories": [{"root": "github.com/fixture/legacy", "url": "file://\#(origin)"}]}"#)
        let before = try fetcher.list(module: "github.com/fixture/legacy")
        try FileManager.default.moveItem(atPath: origin, toPath: origin + ".away")
        #expect(try fetcher.list(module: "github.com/fixture/legacy") == before)
        #expect(try GitFetcherDriver.resolve(fetcher, "github.com/fixture/legacy", "latest")["Version"] as? String == "v2.1.0+incompatible")
        // A version the mirror never had is still not found.
        let error = #expect(throws: PluginError.self) { _ = try GitFetcherDriver.fetch(fetcher, "github.com/fixture/legacy", "v9.0.0+incompatible") }
        #expect(error?.code == .notFound, "\(error?.message ?? "")")
    }

    @Test("a sink that refuses data makes the fetch fail")
    func sinkRefusal() throws {
        let fixture = try GitFixture.shared()
        let fetcher = try GitFetcherDriver.load(fixture.config(cache: cache))
        var received = 0
        let error = #expect(throws: PluginError.self) {
            try fetcher.fetch(module: "github.com/fixture/hello", version: "v1.3.0",
                              info: { _ in true }, mod: { _ in true },
                              zip: { bytes in received += bytes.count; return received < 100_000 })
        }
        #expect(error?.code == .invalid)
    }

    @Test("go-get discovery: meta tags over http for an insecure host, through a relative redirect, the root's page rechecked")
    func discovery() throws {
        let fixture = try GitFixture.shared()
        // Every path answers with the go-import tag of corp.example/legacy, as a forge does for its subpaths.
        let page = #"<html><head><meta name="go-import" content="corp.example/legacy git \#(fixture.url("github.com/fixture/legacy"))"></head><body>x</body></html>"#
        let handler = """
                    # As many web servers do: a redirect to the trailing-slash form, keeping the query.
                    if not self.path.split("?")[0].endswith("/"):
                        self.send_response(301)
                        self.send_header("Location", self.path.replace("?", "/?", 1))
                        self.end_headers()
                        return
                    ok = self.path.endswith("?go-get=1")
                    self.send_response(200 if ok else 404)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(argument if ok else b"no")
            """
        let (server, port, fetcher) = try discoveryServer(handler, page)
        defer { server.stop() }
        #expect(try GitFetcherDriver.resolve(fetcher, "corp.example/legacy", "latest")["Version"] as? String == "v2.1.0+incompatible")
        // A path below the root: its page names the root, whose own page is read again and agrees.
        #expect(try fetcher.list(module: "corp.example/legacy/sub") == [])
        // Without insecureHosts only https is tried, which this server does not speak: not found.
        let secure = try GitFetcherDriver.load(#"{"cacheDirectory": "\#(cache)/secure", "hostAddresses": {"corp.example": "127.0.0.1:\#(port)"}}"#)
        let error = #expect(throws: PluginError.self) { _ = try secure.list(module: "corp.example/legacy") }
        #expect(error?.code == .notFound)
    }

    @Test("go-get discovery reads at most 1 MiB of a page: a page that never ends after its head still resolves")
    func discoveryPageBound() throws {
        let fixture = try GitFixture.shared()
        let head = #"<html><head><meta name="go-import" content="corp.example/endless git \#(fixture.url("github.com/fixture/legacy"))"></head><body>"#
        // Sends the head, then body bytes until the client hangs up; counts what it managed to write.
        let handler = """
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    sent = 0
                    try:
                        self.wfile.write(argument)
                        while True:
                            self.wfile.write(b"x" * 65536)
                            sent += 65536
                    except OSError:
                        print("hung up after", sent, flush=True)
            """
        let (server, _, fetcher) = try discoveryServer(handler, head)
        defer { server.stop() }
        #expect(try GitFetcherDriver.resolve(fetcher, "corp.example/endless", "latest")["Version"] as? String == "v2.1.0+incompatible")
        // The connection was dropped once the first MiB was in, not read on: the server saw the hang-up.
        let hungUp = server.firstLine()
        let sent = hungUp.flatMap { Int($0.split(separator: " ").last ?? "") }
        #expect(sent.map { $0 < 64 << 20 } == true, "server: \(hungUp ?? "no line")")
    }

    /// A python discovery server whose GET handler is `handler` (the body of `do_GET`, indented for it; `argument`
    /// holds the bytes of the argument), on a port it prints first, and a GitFetcher that reaches corp.example
    /// through it over plain http.
    func discoveryServer(_ handler: String, _ argument: String) throws -> (ChildProcess, Int, FetcherPlugin) {
        let script = """
            import http.server, sys
            argument = sys.argv[1].encode()
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
            \(handler)
                def log_message(self, *args):
                    pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        let server = try ChildProcess("/usr/bin/env", ["python3", "-c", script, argument])
        guard let port = server.firstLine().flatMap({ Int($0) }) else {
            server.stop()
            throw TestFailure("discovery server did not start: \(server.stderr)")
        }
        let config = #"{"cacheDirectory": "\#(cache)", "insecureHosts": ["corp.example"], "hostAddresses": {"corp.example": "127.0.0.1:\#(port)"}}"#
        return (server, port, try GitFetcherDriver.load(config))
    }

    /// No half-made mirror ("<name>.git.tmp-…") is left in the cache folder.
    func expectNoTemporaryMirrors() throws {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        #expect(entries.filter { $0.contains(".tmp-") }.isEmpty, "\(entries)")
    }

    /// Command lines (NULs as spaces) of the running processes that `matches` selects, from /proc.
    static func processes(_ matches: (String) -> Bool) -> [String] {
        var found: [String] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(entry) != nil {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { continue }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if matches(line) { found.append(line) }
        }
        return found
    }
}

/// A TCP socket on 127.0.0.1 that accepts connections (the kernel does) but never answers.
final class SilentListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw TestFailure("bind/listen failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() { _ = Glibc.close(fd) }
}
