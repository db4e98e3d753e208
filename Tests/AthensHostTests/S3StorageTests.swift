// S3Storage against a real Ceph RGW (scripts/rgw.sh). Longer than ~400 lines on purpose: every test shares the
// RGW session, bucket set-up and athens helpers of this file, and starting RGW once per file keeps the suite fast.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath
import S3Core
import Digests

/// S3Storage against a real S3 server: the Ceph RGW that scripts/rgw.sh starts (no mocks). Each test has a bucket
/// of its own. The outage test stops a proxy of its own in front of the RGW, never the RGW the other tests use.
@Suite("S3Storage on Ceph RGW", .blockingChain, .serialized, .enabled(if: RGW.isAvailable, "needs the RGW of scripts/rgw.sh (scripts/test.sh starts it)"))
final class S3StorageTests {
    let work = TestSupport.makeTemporaryDirectory("s3")
    var processes: [ChildProcess] = []

    deinit {
        for process in processes { process.stop() }
        TestSupport.removeDirectory(work)
    }

    static var plugin: String { TestSupport.plugin("S3Storage") }

    /// A static GOPROXY upstream serving `tree`.
    func upstream(_ tree: String) throws -> String {
        let process = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/fake_upstream.py",
                                                        "--root", tree, "--port", "0", "--log", work + "/upstream-\(UUID().uuidString).log"])
        processes.append(process)
        guard let line = process.firstLine(), let port = line.split(whereSeparator: { !$0.isNumber }).last else {
            throw TestFailure("upstream did not start: \(process.stderr)")
        }
        return "http://127.0.0.1:\(port)"
    }

    /// athens on S3Storage (config `storage`) with a ProxyFetcher to `upstream`.
    func athens(storage: [String: Any], upstream: String, extra: String = "") throws -> AthensServer {
        let manifest = """
        {"storage": {"plugin": "S3Storage", "config": \(RGW.json(storage))},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstream)", "timeoutSeconds": 30}}]\(extra)}
        """
        return try AthensServer(manifest: manifest, directory: work)
    }

    func makeTree(big: (module: String, mib: Int)? = nil) throws -> String {
        let tree = work + "/tree-\(UUID().uuidString)"
        try TestSupport.makeFixtureProxy(tree)
        if let big {
            let result = try TestSupport.run("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/make_big_module.py",
                                                              tree, big.module, "v1.0.0", String(big.mib)])
            guard result.status == 0 else { throw TestFailure("big module: \(result.stderr)") }
        }
        return tree
    }

    static func rss(_ pid: Int32, _ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1 // kB
    }

    // MARK: - plugin-check and start-up

    /// Also the save side of the size bound: plugin-check saves and reads back a 300 MiB zip through S3Storage,
    /// and the athens process doing it stays under 64 MiB (its peak RSS, from the kernel's rusage of the child).
    @Test("athens plugin-check: every storage check passes against RGW, a 300 MiB zip within 64 MiB of RSS")
    func pluginCheck() throws {
        let bucket = try RGW.makeBucket("check")
        let config = RGW.json(RGW.config(bucket: bucket, ["prefix": "check", "timeoutSeconds": 10]))
        let script = "import resource, subprocess, sys\n"
            + "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            + "sys.stdout.write(r.stdout + 'MAXRSS_KB %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            + "sys.exit(r.returncode)\n"
        let result = try TestSupport.run("/usr/bin/env", ["python3", "-c", script, TestSupport.athens, "plugin-check", Self.plugin,
                                                          "--config", config, "--large-zip-mib", "300", "--catalog-versions", "100"], timeout: 240)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("(20 pass, 0 fail, 0 skip)"), "\(result.stdout)")
        #expect(result.stdout.contains("GET on 127.0.0.1 gave open's 70000 bytes"), "its presigned url serves the bytes")
        #expect(result.stdout.contains("300 MiB streamed in"), "\(result.stdout)")
        let peak = Int(result.stdout.split(separator: "\n").last { $0.hasPrefix("MAXRSS_KB ") }?.split(separator: " ").last ?? "") ?? -1
        #expect(peak > 0 && peak < 64 * 1024, "plugin-check's peak RSS \(peak) kB")
        print("S3Storage plugin-check: 300 MiB zip saved and read back, peak RSS \(peak / 1024) MiB")
        // plugin-check removes what it saved; its run's locks and uploads are gone too.
        #expect(try RGW.keys(bucket).isEmpty)
        #expect(try RGW.uploadsInProgress(bucket).isEmpty)
    }

    @Test("a missing bucket or wrong keys stop start-up with one clear line that leaks no key")
    func startupFailures() throws {
        let library = try PluginLibrary(path: Self.plugin)
        let missing = #expect(throws: PluginError.self) {
            _ = try StoragePlugin(library: library, configJSON: RGW.json(RGW.config(bucket: "athens-no-such-bucket")))
        }
        #expect(missing?.message.contains("bucket athens-no-such-bucket at \(RGW.endpoint) does not exist") == true, "\(String(describing: missing))")
        let bucket = try RGW.makeBucket("keys")
        let wrong = #expect(throws: PluginError.self) {
            _ = try StoragePlugin(library: library, configJSON: RGW.json(RGW.config(bucket: bucket, ["secretAccessKey": "wrong-secret-123"])))
        }
        #expect(wrong?.message.contains("denied") == true, "\(String(describing: wrong))")
        let unknownKey = #expect(throws: PluginError.self) {
            _ = try StoragePlugin(library: library, configJSON: RGW.json(RGW.config(bucket: bucket, ["accessKeyID": "AKIAIOSFODNN7EXAMPLE"])))
        }
        #expect(unknownKey?.message.contains("config.accessKeyID: unknown key") == true)
        let unreachable = #expect(throws: PluginError.self) {
            _ = try StoragePlugin(library: library, configJSON: RGW.json(RGW.config(bucket: bucket, endpoint: "http://127.0.0.1:1", ["retries": 0])))
        }
        #expect(unreachable?.code == .unavailable && unreachable?.message.contains("cannot reach bucket \(bucket) at http://127.0.0.1:1") == true,
                "\(String(describing: unreachable))")
        for failure in [missing, wrong, unknownKey, unreachable] {
            let text = "\(String(describing: failure))"
            #expect(!text.contains(RGW.secretKey) && !text.contains("wrong-secret-123") && !text.contains(RGW.accessKey), "\(text)")
        }
        // Refused before any request: bad values name the key.
        let bad: [(String, [String: Any])] = [
            ("config.partSizeBytes", ["partSizeBytes": 1024]), ("config.timeoutSeconds", ["timeoutSeconds": 0]),
            ("config.addressing", ["addressing": "dns"]), ("endpoint must", ["endpoint": "ftp://127.0.0.1"]),
            ("endpoint must", ["endpoint": "http://user:pw@127.0.0.1"]), ("config.prefix", ["prefix": "a/../b"]),
            ("config.region", ["region": "Not A Region"]), ("config.retries", ["retries": 2.5]),
        ]
        for (expected, extra) in bad {
            let error = #expect(throws: PluginError.self) { _ = try StoragePlugin(library: library, configJSON: RGW.json(RGW.config(bucket: bucket, extra))) }
            #expect(error?.code == .invalid && error?.message.contains(expected.replacingOccurrences(of: "config.prefix", with: "prefix")) == true,
                    "\(extra): \(String(describing: error))")
        }
        // Keys from the environment when the config has none: the child process sees only AWS_*.
        let env = ["AWS_ACCESS_KEY_ID": RGW.accessKey, "AWS_SECRET_ACCESS_KEY": RGW.secretKey, "PATH": "/usr/bin:/bin"]
        let config = RGW.json(["endpoint": RGW.endpoint, "bucket": bucket, "prefix": "env"])
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", Self.plugin, "--config", config, "--large-zip-mib", "1",
                                                              "--catalog-versions", "10"], environment: env, timeout: 120)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    }

    // MARK: - Through athens

    @Test("the go command through athens on S3Storage: hashes equal the upstream's; the bucket is a GOPROXY tree")
    func goCommand() throws {
        let tree = try makeTree()
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("go")
        let server = try athens(storage: RGW.config(bucket: bucket, ["prefix": "proxy/"]), upstream: upstreamURL)
        processes.append(server.process)
        let modules = ["example.com/hello@v1.0.0", "example.com/Upper/Case@v0.1.0", "example.com/legacy@v2.0.0+incompatible"]
        let direct = try GoCommand.sums(modules, proxy: upstreamURL)
        let through = try GoCommand.sums(modules, proxy: server.url)
        #expect(direct.count == modules.count && direct.values.allSatisfy { !$0.isEmpty }, "\(direct)")
        #expect(through == direct)
        // A second, cold go command is served from the bucket.
        #expect(try GoCommand.sums(modules, proxy: server.url) == direct)
        let keys = Set(try RGW.keys(bucket))
        for key in ["proxy/example.com/hello/@v/v1.0.0.info", "proxy/example.com/hello/@v/v1.0.0.mod", "proxy/example.com/hello/@v/v1.0.0.zip",
                    "proxy/example.com/!upper/!case/@v/v0.1.0.zip", "proxy/example.com/legacy/@v/v2.0.0+incompatible.info"] {
            #expect(keys.contains(key), "missing \(key) in \(keys.sorted())")
        }
        #expect(!keys.contains { $0.hasSuffix(".lock") }, "a save lock was left behind: \(keys.sorted())")
        // The bucket's bytes are the GOPROXY files themselves.
        let zip = try RGW.send(.get, bucket: bucket, key: "proxy/example.com/hello/@v/v1.0.0.zip")
        #expect(zip.body == Array(try Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/hello/@v/v1.0.0.zip"))))
    }

    @Test("two athens on one bucket saving one version at once: one .info written, both answer 200 with identical bytes")
    func twoInstances() throws {
        let tree = try makeTree(big: (module: "example.com/shared", mib: 12))
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("two")
        defer { try? RGW.removeBucket(bucket) }
        let config = RGW.config(bucket: bucket, ["partSizeBytes": 5 << 20])
        nonisolated(unsafe) let servers = try (0..<2).map { _ in try athens(storage: config, upstream: upstreamURL) }
        processes += servers.map(\.process)
        nonisolated(unsafe) var answers: [(status: Int, body: [UInt8])] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let answer = try? servers[i % 2].get("/example.com/shared/@v/v1.0.0.zip", timeout: 60)
            lock.withLock { answers.append((answer?.status ?? -1, answer?.body ?? [])) }
        }
        let expected = Array(try Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/shared/@v/v1.0.0.zip")))
        #expect(answers.count == 4 && answers.allSatisfy { $0.status == 200 && $0.body == expected }, "\(answers.map(\.status))")
        let keys = try RGW.keys(bucket)
        #expect(keys.filter { $0.hasSuffix(".info") } == ["example.com/shared/@v/v1.0.0.info"])
        #expect(Set(keys) == ["example.com/shared/@v/v1.0.0.info", "example.com/shared/@v/v1.0.0.mod", "example.com/shared/@v/v1.0.0.zip"])
        #expect(try RGW.uploadsInProgress(bucket).isEmpty)
        for server in servers {
            #expect(try server.get("/example.com/shared/@v/v1.0.0.info").status == 200)
        }
    }

    @Test("kill -9 of athens in the middle of a multipart upload: no visible version; a later save succeeds")
    func killMidUpload() throws {
        let tree = try makeTree(big: (module: "example.com/killed", mib: 64))
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("kill")
        defer { try? RGW.removeBucket(bucket) }
        // timeoutSeconds 3 makes the lock's lease 10 s: the later save takes the dead saver's lock over after that.
        let config = RGW.config(bucket: bucket, ["partSizeBytes": 5 << 20, "timeoutSeconds": 3])
        let first = try athens(storage: config, upstream: upstreamURL)
        let client = try RawClient(port: first.port)
        client.send("GET /example.com/killed/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n")
        let uploading = try waitUntil(timeout: 60) { try !RGW.uploadsInProgress(bucket).isEmpty }
        try #require(uploading, "no multipart upload seen")
        kill(first.process.process.processIdentifier, SIGKILL)
        first.process.process.waitUntilExit()
        let keys = try RGW.keys(bucket)
        #expect(!keys.contains { $0.hasSuffix(".info") || $0.hasSuffix(".zip") }, "\(keys)")
        let second = try athens(storage: config, upstream: upstreamURL)
        processes.append(second.process)
        // Not visible: the leftovers (.mod, the lock, the unfinished upload) are no version. Readiness stays fine.
        #expect(try second.get("/readyz").status == 200)
        let zip = try second.get("/example.com/killed/@v/v1.0.0.zip", timeout: 90)
        #expect(zip.status == 200)
        #expect(zip.body == Array(try Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/killed/@v/v1.0.0.zip"))))
        #expect(try second.get("/example.com/killed/@v/list").body == Array("v1.0.0\n".utf8))
        #expect(!(try RGW.keys(bucket)).contains { $0.hasSuffix(".lock") })
        // The dead saver's unfinished upload was aborted when its lock was taken over.
        #expect(try RGW.uploadsInProgress(bucket).isEmpty)
    }

    @Test("the S3 endpoint unreachable: 502/504 and /readyz fails; both recover when it is back")
    func outage() throws {
        let tree = try makeTree()
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("outage")
        let port = try TestSupport.freePort()
        let endpoint = "http://127.0.0.1:\(port)"
        // The endpoint athens knows is a pass-through proxy in front of the shared RGW, stopped and started again on
        // its port. Not a second radosgw: one stopped leaves its cache watch on the cluster behind, and every bucket
        // creation then waits 20-30 s for it to answer (RGWSI_Notify::robust_notify in RGW's log), so other tests'
        // set-ups ran out of time while this one ran.
        func startGateway() throws -> ChildProcess {
            let gateway = try RGW.faultProxy("[]", work: work, port: port).process
            let up = waitUntil(timeout: 30) { (try? RGW.send(.head, bucket: bucket, endpoint: endpoint))?.status == 200 }
            guard up else { throw TestFailure("proxy on \(port) did not answer: \(gateway.stderr)") }
            return gateway
        }
        var gateway = try startGateway()
        // The memory cache off: every request reaches the storage.
        let server = try athens(storage: RGW.config(bucket: bucket, endpoint: endpoint, ["timeoutSeconds": 2, "retries": 1]), upstream: upstreamURL,
                                extra: #", "cache": {"maxBytes": 0}"#)
        processes.append(server.process)
        #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 200)
        #expect(try server.get("/readyz").status == 200)

        gateway.stop()
        let stored = try server.get("/example.com/hello/@v/v1.0.0.info")
        #expect([502, 504].contains(stored.status), "stored version while RGW is down: \(stored.status)")
        let fresh = try server.get("/example.com/hello/@v/v1.1.0.zip")
        #expect([502, 504].contains(fresh.status), "new version while RGW is down: \(fresh.status)")
        #expect(try server.get("/readyz").status == 503)
        #expect(!String(decoding: stored.body, as: UTF8.self).contains(RGW.secretKey))

        gateway = try startGateway()
        processes.append(gateway)
        #expect(waitUntil(timeout: 30) { (try? server.get("/readyz").status) == 200 })
        #expect(try server.get("/example.com/hello/@v/v1.0.0.info").status == 200)
        let zip = try server.get("/example.com/hello/@v/v1.1.0.zip")
        let expected = Array(try Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/hello/@v/v1.1.0.zip")))
        #expect(zip.status == 200 && zip.body == expected)
    }

    /// Both sides of the size bound through athens (plugin-check's own save is in `pluginCheck`): the athens that
    /// fetches the zip (upstream → spool → multipart upload, then served from the spool) and a fresh one serving it
    /// from the bucket (1 MiB ranged GETs) each peak under 64 MiB (VmHWM, the kernel's own peak, read at the end).
    @Test("a 300 MiB zip fetched and saved through athens, then served from the bucket, athens' RSS under 64 MiB both times")
    func largeZip() throws {
        let tree = try makeTree(big: (module: "example.com/huge", mib: 300))
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("large")
        defer { try? RGW.removeBucket(bucket) }
        let source = tree + "/example.com/huge/@v/v1.0.0.zip"
        func download(_ server: AthensServer, _ round: String) throws {
            let out = work + "/huge-\(UUID().uuidString).zip"
            let result = try TestSupport.run("/usr/bin/curl", ["-sS", "-o", out, "-w", "%{http_code}", server.url + "/example.com/huge/@v/v1.0.0.zip"], timeout: 180)
            #expect(result.stdout == "200", "\(round): \(result.stdout) \(result.stderr)")
            let cmp = try TestSupport.run("/usr/bin/cmp", [source, out])
            #expect(cmp.status == 0, "\(round): bytes differ: \(cmp.stdout)")
            unlink(out)
        }
        let saver = try athens(storage: RGW.config(bucket: bucket), upstream: upstreamURL)
        try download(saver, "fetched, saved and served")
        let saverPeak = Self.rss(saver.process.process.processIdentifier, "VmHWM")
        saver.stop()
        #expect(saverPeak > 0 && saverPeak < 64 * 1024, "fetching and saving athens' peak RSS \(saverPeak) kB")
        let server = try athens(storage: RGW.config(bucket: bucket), upstream: upstreamURL)
        processes.append(server.process)
        try download(server, "served from the bucket")
        let peak = Self.rss(server.process.process.processIdentifier, "VmHWM")
        #expect(peak > 0 && peak < 64 * 1024, "serving athens' peak RSS \(peak) kB")
        print("S3Storage large zip: peak RSS \(peak / 1024) MiB serving a 300 MiB zip from the bucket (\(saverPeak / 1024) MiB in the athens that fetched it)")
    }

    @Test("catalog tokens S3Storage did not issue are refused as invalid; an issued one resumes after its version")
    func catalogTokens() throws {
        let bucket = try RGW.makeBucket("tokens")
        let storage = try StoragePlugin(library: PluginLibrary(path: Self.plugin), configJSON: RGW.json(RGW.config(bucket: bucket, ["prefix": "p"])))
        for version in ["v1.0.0", "v1.1.0"] { try StorageConformanceTests.save(storage, "example.com/t", version, zip: [1]) }
        func token(_ key: String) -> String {
            "s3." + Data(key.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let first = try storage.catalog(token: "", pageSize: 1)
        #expect(first.entries.map { "\($0.module)@\($0.version)" } == ["example.com/t@v1.0.0"])
        #expect(first.next == token("example.com/t/@v/v1.0.0.info"))
        #expect(try storage.catalog(token: first.next, pageSize: 10).entries.map(\.version) == ["v1.1.0"])
        for bad in ["s3.", "s3.!!!", "fs1.ZXhhbXBsZQ", token("example.com/t/@v/v1.0.0.mod"), token("../t/@v/v1.0.0.info"),
                    token("example.com/T/@v/v1.0.0.info"), token("example.com/t/@v/v1.0.0.info") + "==", "s3." + String(repeating: "A", count: 1100)] {
            let error = #expect(throws: PluginError.self) { _ = try storage.catalog(token: bad, pageSize: 10) }
            #expect(error?.code == .invalid, "\(bad.prefix(40))")
        }
    }

    // MARK: - Faults (a forwarding proxy in front of RGW injects them)

    /// A proxy to RGW with `rules` (Tests/Fixtures/s3_fault_proxy.py); returns its endpoint and log path.
    func faultProxy(_ rules: String) throws -> (endpoint: String, log: String) {
        let proxy = try RGW.faultProxy(rules, work: work)
        processes.append(proxy.process)
        return (proxy.endpoint, proxy.log)
    }

    static func logLines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test("5xx and 503 SlowDown on idempotent calls are retried with backoff: the save and the reads succeed")
    func retries() throws {
        let bucket = try RGW.makeBucket("retry")
        let proxy = try faultProxy(#"""
            [{"method": "PUT", "contains": ".mod", "status": 503, "code": "SlowDown", "times": 2},
             {"method": "HEAD", "contains": ".info", "status": 502, "times": 1},
             {"method": "GET", "contains": ".zip", "status": 500, "times": 1}]
            """#)
        let storage = try StoragePlugin(library: PluginLibrary(path: Self.plugin), configJSON: RGW.json(RGW.config(bucket: bucket, endpoint: proxy.endpoint)))
        let zip = StorageConformanceTests.randomBytes(100_000, seed: 5)
        try StorageConformanceTests.save(storage, "example.com/retried", "v1.0.0", zip: zip)
        #expect(try StorageConformanceTests.read(storage, "example.com/retried", "v1.0.0", .zip) == zip)
        let log = Self.logLines(proxy.log)
        let modPuts = log.filter { $0.hasPrefix("PUT /\(bucket)/example.com/retried/%40v/v1.0.0.mod ") }
        #expect(modPuts == ["PUT /\(bucket)/example.com/retried/%40v/v1.0.0.mod 503 injected",
                            "PUT /\(bucket)/example.com/retried/%40v/v1.0.0.mod 503 injected",
                            "PUT /\(bucket)/example.com/retried/%40v/v1.0.0.mod 200"], "\(log)")
        #expect(log.contains { $0.hasSuffix(".zip 500 injected") } && log.contains { $0.hasPrefix("GET") && $0.hasSuffix(".zip 206") })
    }

    @Test("the commit (.info with If-None-Match) is not retried: a failure there stores nothing and names the key")
    func commitNotRetried() throws {
        let bucket = try RGW.makeBucket("commit")
        let proxy = try faultProxy(#"[{"method": "PUT", "contains": "v1.0.0.info", "status": 503, "code": "SlowDown", "times": 1}]"#)
        let storage = try StoragePlugin(library: PluginLibrary(path: Self.plugin), configJSON: RGW.json(RGW.config(bucket: bucket, endpoint: proxy.endpoint)))
        let error = #expect(throws: PluginError.self) { try StorageConformanceTests.save(storage, "example.com/commit", "v1.0.0", zip: [1, 2, 3]) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("PUT example.com/commit/@v/v1.0.0.info: HTTP 503 SlowDown") == true, "\(String(describing: error))")
        #expect(error.map { !$0.message.contains(RGW.secretKey) && !$0.message.contains(RGW.accessKey) } == true)
        #expect(Self.logLines(proxy.log).filter { $0.hasPrefix("PUT") && $0.contains("v1.0.0.info") }.count == 1)
        // Nothing visible, nothing left; the next save stores the version.
        #expect(try storage.exists(module: "example.com/commit", version: "v1.0.0") == false)
        #expect(try RGW.keys(bucket).isEmpty)
        try StorageConformanceTests.save(storage, "example.com/commit", "v1.0.0", zip: [4, 5])
        #expect(try StorageConformanceTests.read(storage, "example.com/commit", "v1.0.0", .zip) == [4, 5])
    }

    @Test("retries used up: UNAVAILABLE naming the key; a server that does not answer: TIMEOUT")
    func exhaustedAndTimeout() throws {
        let bucket = try RGW.makeBucket("exhaust")
        try RGW.send(.put, bucket: bucket, key: "example.com/x/@v/v1.0.0.info", body: Array("{}".utf8))
        let proxy = try faultProxy(#"""
            [{"method": "GET", "contains": "v1.0.0.info", "status": 500, "times": 3},
             {"method": "HEAD", "contains": "v2.0.0.info", "stall": 20, "times": 5}]
            """#)
        let config = RGW.config(bucket: bucket, endpoint: proxy.endpoint, ["retries": 2, "timeoutSeconds": 1])
        let storage = try StoragePlugin(library: PluginLibrary(path: Self.plugin), configJSON: RGW.json(config))
        let exhausted = #expect(throws: PluginError.self) { _ = try storage.open(module: "example.com/x", version: "v1.0.0", artifact: .info) }
        #expect(exhausted?.code == .unavailable && exhausted?.message.contains("GET example.com/x/@v/v1.0.0.info: HTTP 500") == true,
                "\(String(describing: exhausted))")
        #expect(Self.logLines(proxy.log).filter { $0.contains("v1.0.0.info 500") }.count == 3)
        let timedOut = #expect(throws: PluginError.self) { _ = try storage.exists(module: "example.com/x", version: "v2.0.0") }
        #expect(timedOut?.code == .timeout && timedOut?.message.contains("HEAD example.com/x/@v/v2.0.0.info") == true, "\(String(describing: timedOut))")
    }
}

/// S3Storage's pure parts: key layout, endpoint addressing and presigned URLs (no server needed).
@Suite("S3Storage layout and URLs", .blockingBodies)
struct S3LayoutTests {
    @Test("keys are the GOPROXY tree under the prefix, with Go's case escaping")
    func keys() throws {
        let layout = try S3Layout(prefix: "/a/b/")
        #expect(layout.prefix == "a/b/")
        let keys = try layout.keys(module: "github.com/BurntSushi/toml", version: "v1.2.3+incompatible")
        #expect(keys.info == "a/b/github.com/!burnt!sushi/toml/@v/v1.2.3+incompatible.info")
        #expect(keys.zip == "a/b/github.com/!burnt!sushi/toml/@v/v1.2.3+incompatible.zip")
        #expect(keys.directory == "a/b/github.com/!burnt!sushi/toml/@v/")
        #expect(layout.version(ofInfoKey: keys.info, in: keys.directory) == "v1.2.3+incompatible")
        #expect(layout.version(ofInfoKey: keys.zip, in: keys.directory) == nil)
        #expect(layout.version(ofInfoKey: keys.directory + "sub/v1.0.0.info", in: keys.directory) == nil)
        #expect(layout.moduleVersion(ofInfoKey: keys.info)! == ("github.com/BurntSushi/toml", "v1.2.3+incompatible"))
        #expect(layout.moduleVersion(ofInfoKey: "a/b/github.com/Bad/@v/v1.0.0.info") == nil) // not an escaped path
        #expect(layout.moduleVersion(ofInfoKey: "elsewhere/example.com/@v/v1.0.0.info") == nil)
        #expect(try S3Layout(prefix: "").keys(module: "example.com/m", version: "v1.0.0").mod == "example.com/m/@v/v1.0.0.mod")
        for bad in ["a//b", "a/./b", "../b"] { #expect(throws: LayoutError.self) { _ = try S3Layout(prefix: bad) } }
        #expect(throws: LayoutError.self) { _ = try layout.keys(module: "../../etc", version: "v1.0.0") }
        #expect(throws: LayoutError.self) { _ = try layout.keys(module: "example.com/m", version: "v1.0.0/../x") }
        #expect(throws: LayoutError.self) { _ = try layout.keys(module: "example.com/" + String(repeating: "a", count: 700), version: "v1.0.0") }
    }

    @Test("path-style and virtual-host requests")
    func addressing() throws {
        let path = try S3Endpoint(endpoint: "http://127.0.0.1:7480/", bucket: "my-bucket", addressing: .path)
        #expect(path.host == "127.0.0.1:7480")
        #expect(path.url(encodedPath: path.encodedPath(key: "p/example.com/@v/v1.0.0+x.zip"), query: [("b", "2"), ("a", "1 2")])
            == "http://127.0.0.1:7480/my-bucket/p/example.com/%40v/v1.0.0%2Bx.zip?a=1%202&b=2")
        let virtual = try S3Endpoint(endpoint: "https://s3.eu-west-3.amazonaws.com", bucket: "my-bucket", addressing: .virtualHost)
        #expect(virtual.host == "my-bucket.s3.eu-west-3.amazonaws.com")
        #expect(virtual.encodedPath(key: nil) == "/" && virtual.encodedPath(key: "k") == "/k")
        #expect(throws: LayoutError.self) { _ = try S3Endpoint(endpoint: "https://h", bucket: "Upper_Case", addressing: .virtualHost) }
        #expect(throws: LayoutError.self) { _ = try S3Endpoint(endpoint: "https://h/path", bucket: "b", addressing: .path) }
        #expect(throws: LayoutError.self) { _ = try S3Endpoint(endpoint: "h:80", bucket: "bucket", addressing: .path) }
    }

    /// The presigned URL that ABI 1.1's storage `url` entry will hand out: S3's published example, built from parts.
    @Test("presigned GET URL: S3's example, and virtual-host form")
    func presign() throws {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                 region: "us-east-1")
        let endpoint = try S3Endpoint(endpoint: "https://s3.amazonaws.com", bucket: "examplebucket", addressing: .virtualHost)
        let url = endpoint.presignedGetURL(key: "test.txt", signer: signer, expires: 86400, date: SigV4Date(secondsSince1970: 1_369_353_600))
        #expect(url == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
            + "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        // Expiry is clamped to what S3 accepts.
        #expect(endpoint.presignedGetURL(key: "k", signer: signer, expires: 10_000_000, date: .now()).contains("X-Amz-Expires=604800"))
    }

    @Test("a presigned URL works against RGW; tampered, it is refused", .enabled(if: RGW.isAvailable))
    func presignedAgainstRGW() throws {
        let bucket = try RGW.makeBucket("presign")
        try RGW.send(.put, bucket: bucket, key: "example.com/@v/v1.0.0.zip", body: [1, 2, 3])
        let endpoint = try S3Endpoint(endpoint: RGW.endpoint, bucket: bucket, addressing: .path)
        let url = endpoint.presignedGetURL(key: "example.com/@v/v1.0.0.zip", signer: RGW.signer, expires: 60, date: .now())
        let ok = try TestSupport.run("/usr/bin/curl", ["-sS", "-w", " %{http_code}", url])
        #expect(ok.stdout == "\u{1}\u{2}\u{3} 200")
        let tampered = try TestSupport.run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", url.replacingOccurrences(of: "v1.0.0.zip", with: "v1.0.1.zip")])
        #expect(tampered.stdout == "403")
    }
}
