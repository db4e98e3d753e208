import Foundation
import Testing

/// The scale-out deployment of scripts/deploy.sh, as a whole: nginx → 3 athens processes on one RGW bucket whose
/// single-flight coordinates through a real redis-server (RedisLock), fetching from a logging upstream. Each test gets
/// a deployment of its own (a fresh bucket, cold caches). Overlaps are made with the upstream's `hold` mode, never slept for.
@Suite("deployment: nginx → 3 athens on one RGW bucket, RedisLock single-flight", .blockingChain, .serialized,
       .enabled(if: RGW.isAvailable, "needs the RGW of scripts/rgw.sh (scripts/test.sh starts it)"))
final class DeploymentTests {
    static let script = TestSupport.packageRoot + "/scripts/deploy.sh"
    /// Small modules for the distinct-modules stampede: example.com/many/mNN v1.0.0.
    /// RedisLock's lease: a killed holder's lock outlives it by this much.
    static let lease = 4
    static let many = (0..<50).map { String(format: "example.com/many/m%02d", $0) }

    let work = TestSupport.makeTemporaryDirectory("deploy")
    let tree: String
    let settings: [String: String]
    var hold: String { tree + "/.hold" }
    var balancer: UInt16 { UInt16(settings["DEPLOY_URL"]!.split(separator: ":").last!)! }
    var instances: [UInt16] { settings["DEPLOY_INSTANCE_PORTS"]!.split(separator: " ").map { UInt16($0)! } }

    convenience init() throws { try self.init(extra: [:]) }

    /// A deployment started with `extra` in scripts/deploy.sh's environment (its knobs).
    init(extra: [String: String]) throws {
        tree = work + "/tree"
        let fixtures = TestSupport.packageRoot + "/Tests/Fixtures"
        guard try TestSupport.run("/usr/bin/env", ["python3", fixtures + "/make_fixture_proxy.py", tree]).status == 0,
              try TestSupport.run("/usr/bin/env", ["python3", "-c", """
              import sys; sys.path.insert(0, sys.argv[1]); from make_fixture_proxy import add_version
              for i in range(50): add_version(sys.argv[2], "example.com/many/m%02d" % i, "v1.0.0", {"m.go": "package m\\n"})
              add_version(sys.argv[2], "example.com/broken", "v1.0.0", {"b.go": "package b\\n"})
              open(sys.argv[2] + "/example.com/broken/@v/v1.0.0.zip", "wb").write(b"not a zip")  # the origin's bug
              """, fixtures, tree]).status == 0 else { throw TestFailure("fixture tree") }
        let result = try Self.deploy(["start", work + "/run"], extra: [
            "ATHENS_BIN": TestSupport.athens, "ATHENS_PLUGINS": TestSupport.productsDirectory,
            "DEPLOY_UPSTREAM_ROOT": tree, "DEPLOY_UPSTREAM_PATH": "/_fault/hold:.zip", "DEPLOY_LEASE_SECONDS": String(Self.lease),
        ].merging(extra) { $1 })
        guard result.status == 0 else { throw TestFailure("deploy.sh start: \(result.stderr)") }
        var settings: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            settings[String(pair[0])] = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        self.settings = settings
    }

    deinit {
        _ = try? Self.deploy(["stop", work + "/run"])
        TestSupport.removeDirectory(work)
    }

    @discardableResult
    static func deploy(_ arguments: [String], extra: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestSupport.run("/bin/bash", [script] + arguments, environment: ProcessInfo.processInfo.environment.merging(extra) { $1 })
    }

    func zipFetches(_ module: String) -> Int {
        let requests = ((try? String(contentsOfFile: settings["DEPLOY_UPSTREAM_LOG"]!, encoding: .utf8)) ?? "").split(separator: "\n")
        return requests.filter { $0.contains(module + "/@v/") && $0.hasSuffix(".zip") }.count
    }

    func expectedZip(_ module: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: tree + "/\(module)/@v/v1.0.0.zip")))
    }

    /// The instance ports nginx sent `path` to, one per answered request (from its access log).
    func instancesServing(_ path: String) -> [String] {
        let log = (try? String(contentsOfFile: work + "/run/nginx/access.log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains(" \(path) ") }.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("upstream=") }.map { String($0.dropFirst("upstream=".count)) }
        }
    }

    /// Requests nginx's access log says the instance on `port` answered 200 at the first try.
    func answeredBy(_ port: UInt16) -> Int {
        let log = (try? String(contentsOfFile: work + "/run/nginx/access.log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.hasPrefix("200 ") && $0.contains(" upstream=127.0.0.1:\(port) status=200 ") }.count
    }

    func stashRunning(_ port: UInt16) -> Double {
        (try? AthensServer.metrics(port: port)).flatMap { metric($0, "athens_pool_running", labels: #"pool="stash""#) } ?? 0
    }

    /// athens_lock_fallback_total over all its label sets.
    func fallbacks(_ port: UInt16) -> Double {
        guard let text = try? AthensServer.metrics(port: port) else { return -1 }
        return text.split(separator: "\n").filter { $0.hasPrefix("athens_lock_fallback_total{") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    func pid(_ name: String) throws -> Int32 {
        let lines = try String(contentsOfFile: work + "/run/pids", encoding: .utf8).split(separator: "\n")
        guard let line = lines.last(where: { $0.hasPrefix(name + " ") }), let pid = Int32(line.split(separator: " ")[1]) else {
            throw TestFailure("no pid for \(name)")
        }
        return pid
    }

    /// `count` concurrent cold GETs of one .zip through nginx, held upstream until all three instances are busy with it.
    func stampede(_ module: String, clients count: Int) throws -> [(status: Int, body: [UInt8])?] {
        FileManager.default.createFile(atPath: hold, contents: nil)
        let clients = LockedStashEndToEndTests.Clients(count, path: "/\(module)/@v/v1.0.0.zip") { _ in balancer }
        // One instance fetches (held upstream) while the others' flights wait for the lock on a stash worker.
        let overlapped = waitUntil(timeout: 60) { zipFetches(module) >= 1 && instances.allSatisfy { stashRunning($0) >= 1 } }
        try? FileManager.default.removeItem(atPath: hold)
        #expect(overlapped, "the three instances never waited on one fetch at once")
        return try #require(clients.wait())
    }

    @Test("300 concurrent cold requests for one .zip through nginx, spread over 3 instances: exactly 1 upstream fetch, 300 identical bodies")
    func oneModuleStampede() throws {
        let module = "example.com/m"
        let expected = try expectedZip(module)
        let answers = try stampede(module, clients: 300)
        #expect(answers.count == 300)
        #expect(answers.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answers.map { $0?.status ?? 0 })")
        #expect(zipFetches(module) == 1)
        // nginx logs a request after its answer went out.
        #expect(waitUntil(timeout: 20) { instancesServing("/\(module)/@v/v1.0.0.zip").count == 300 })
        let served = instancesServing("/\(module)/@v/v1.0.0.zip")
        #expect(Set(served) == Set(instances.map { "127.0.0.1:\($0)" }), "\(Dictionary(grouping: served) { $0 }.mapValues(\.count))")
        for port in instances { #expect(fallbacks(port) == 0) }
    }

    @Test("50 distinct cold modules at once, 6 clients each, through nginx: exactly 50 upstream .zip fetches")
    func distinctModulesStampede() throws {
        let paths = Self.many.flatMap { module in Array(repeating: "/\(module)/@v/v1.0.0.zip", count: 6) }
        let clients = MixedClients(paths.shuffled(), port: balancer)
        let answers = try #require(clients.wait())
        #expect(answers.count == 300)
        for (path, answer) in answers {
            let module = String(path.dropFirst().prefix { $0 != "@" }.dropLast())
            let expected = try expectedZip(module)
            #expect(answer?.status == 200 && answer?.body == expected, "\(path): \(answer?.status ?? 0)")
        }
        #expect(Self.many.map(zipFetches).reduce(0, +) == 50)
        #expect(Self.many.allSatisfy { zipFetches($0) == 1 })
        #expect(Set(answers.map(\.path).flatMap(instancesServing)).count == 3)
        let bucket = try expectBucketWhole()
        #expect(bucket.committed.count == 50 && bucket.uncommitted.isEmpty && bucket.locks.isEmpty && bucket.uploads.isEmpty, "\(bucket)")
    }

    @Test("go mod download through the balancer: go.sum hashes equal the upstream's")
    func goCommandThroughTheBalancer() throws {
        let modules = ["example.com/m@v1.0.0", "example.com/dep@v1.0.0", Self.many[0] + "@v1.0.0"]
        let viaBalancer = try GoCommand.sums(modules, proxy: settings["DEPLOY_URL"]!)
        let direct = try GoCommand.sums(modules, proxy: settings["DEPLOY_UPSTREAM"]!)
        #expect(viaBalancer.count == 3 && viaBalancer.values.allSatisfy { $0.hasPrefix("h1:") }, "\(viaBalancer)")
        #expect(viaBalancer == direct)
    }

    @Test("Redis killed mid-run: requests still succeed and the instances count fallbacks; Redis back: one fetch per stampede again")
    func redisOutage() throws {
        try Self.deploy(["stop-redis", work + "/run"])
        // Round robin: six cold modules in a row reach every instance twice.
        for module in Self.many.prefix(6) {
            let answer = try RawClient.get(port: balancer, "/\(module)/@v/v1.0.0.zip")
            let expected = try expectedZip(module)
            #expect(answer?.status == 200 && answer?.body == expected, "\(module): \(answer?.status ?? 0)")
        }
        for port in instances { #expect(fallbacks(port) >= 1, "instance \(port)") }
        // /readyz stays 200 while Redis is gone (the instances serve, with local single-flight) and says the lock is
        // degraded: an orchestrator must not pull every instance at once for a lock outage.
        for port in instances {
            let ready = try RawClient.get(port: port, "/readyz")
            let body = String(decoding: ready?.body ?? [], as: UTF8.self)
            #expect(ready?.status == 200 && body.contains("lock RedisLock: unavailable (local single-flight)"), "\(port): \(body)")
        }

        let restarted = try Self.deploy(["start-redis", work + "/run"])
        #expect(restarted.status == 0, "\(restarted.stderr)")
        // Coordination has resumed once a round of cold modules over every instance adds no fallback.
        var next = Self.many.dropFirst(6).makeIterator()
        let resumed = waitUntil(timeout: 30) {
            let before = instances.map(fallbacks)
            for _ in instances {
                guard let module = next.next() else { return false }
                _ = try? RawClient.get(port: balancer, "/\(module)/@v/v1.0.0.zip")
            }
            return instances.map(fallbacks) == before
        }
        #expect(resumed)
        let ready = try RawClient.get(port: instances[0], "/readyz")
        #expect(ready?.status == 200 && ready?.body == Array("ready\n".utf8))
        let module = "example.com/dep"
        let answers = try stampede(module, clients: 60)
        let expected = try expectedZip(module)
        #expect(answers.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answers.map { $0?.status ?? 0 })")
        #expect(zipFetches(module) == 1)
    }

    @Test("kill -9 of the instance holding the lock mid-fetch: another completes within lease + margin, no partial zip")
    func holderKilled() throws {
        let module = "example.com/m"
        let expected = try expectedZip(module)
        FileManager.default.createFile(atPath: hold, contents: nil)
        // Instance 1 asks first, so it holds the lock while the upstream holds its answer.
        let first = LockedStashEndToEndTests.Clients(1, path: "/\(module)/@v/v1.0.0.zip") { _ in instances[0] }
        #expect(waitUntil(timeout: 60) { zipFetches(module) == 1 })
        let clients = LockedStashEndToEndTests.Clients(30, path: "/\(module)/@v/v1.0.0.zip") { _ in balancer }
        #expect(waitUntil(timeout: 60) { stashRunning(instances[1]) >= 1 && stashRunning(instances[2]) >= 1 })
        let killed = Date()
        kill(try pid("athens-1"), SIGKILL)
        try FileManager.default.removeItem(atPath: hold)
        let answers = try #require(clients.wait())
        let elapsed = Date().timeIntervalSince(killed)
        // nginx retries the requests instance 1 dropped on another instance (nothing was sent to the client yet).
        #expect(answers.count == 30 && answers.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answers.map { $0?.status ?? 0 })")
        // A dead holder's Redis lock expires after the lease; the margin is a loaded machine's.
        #expect(elapsed < Double(Self.lease + 25), "took \(elapsed) s")
        #expect(zipFetches(module) == 2)
        #expect((try #require(first.wait())).allSatisfy { $0 == nil || $0?.status != 200 || $0?.body == expected })
        // Stored complete: asked again, the survivors serve it without the upstream.
        for _ in 0..<4 {
            #expect(try RawClient.get(port: balancer, "/\(module)/@v/v1.0.0.zip")?.body == expected)
        }
        #expect(zipFetches(module) == 2)
        // Killed before its save began, the holder left nothing in the bucket: one whole version, no leftovers.
        let bucket = try expectBucketWhole()
        #expect(bucket.committed == ["example.com/m/@v/v1.0.0"], "\(bucket.keys)")
        #expect(bucket.uncommitted.isEmpty && bucket.locks.isEmpty && bucket.uploads.isEmpty, "\(bucket)")
    }

    @Test("an origin failure for one module (an invalid zip) is answered 502 once: not retried on the other instances, none taken out")
    func originFailureIsNotRetried() throws {
        let answer = try RawClient.get(port: balancer, "/example.com/broken/@v/v1.0.0.zip")
        #expect(answer?.status == 502, "\(answer.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer")")
        // Every instance shares the origin: retried on them (http_502 in proxy_next_upstream) the zip was fetched
        // three times and two instances were marked failed for fail_timeout, so the next requests met fewer instances
        // or none ("no live upstreams").
        #expect(zipFetches("example.com/broken") == 1)
        let errors = (try? String(contentsOfFile: work + "/run/nginx/error.log", encoding: .utf8)) ?? ""
        #expect(!errors.contains("temporarily disabled"), "\(errors.suffix(1500))")
        let path = "/example.com/m/@v/v1.0.0.info"
        for _ in 0..<9 { #expect(try RawClient.get(port: balancer, path)?.status == 200) }
        #expect(waitUntil(timeout: 20) { instancesServing(path).count == 9 })
        #expect(Set(instancesServing(path)) == Set(instances.map { "127.0.0.1:\($0)" }), "\(instancesServing(path))")
    }

    @Test("a rolling restart (SIGTERM one instance at a time) under a light load: 0 failed requests at the balancer")
    func rollingRestart() throws {
        // Stored first, so the load is warm reads of every kind.
        let paths = ["/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v1.0.0.mod", "/example.com/m/@v/v1.0.0.zip", "/example.com/m/@v/list"]
        for path in paths { #expect(try RawClient.get(port: balancer, path)?.status == 200) }
        let load = Load(paths: paths, port: balancer, workers: 4)
        #expect(waitUntil(timeout: 30) { load.counts.ok >= 20 })
        for n in 1...3 {
            let before = load.counts.ok
            let result = try Self.deploy(["restart", work + "/run", String(n)])
            #expect(result.status == 0, "\(result.stderr)")
            // Counted once the old process has exited: what it finished while draining is logged by then, and counted
            // before, it passed the wait below at once (the next restart then met this instance still out: CI's 502s).
            let served = answeredBy(instances[n - 1])
            #expect(waitUntil(timeout: 30) { load.counts.ok >= before + 20 })
            // One at a time: the next goes down once nginx sends to this one again (it retries a server it saw fail
            // only after fail_timeout), so never are two out of the balancer at once.
            #expect(waitUntil(timeout: 30) { answeredBy(instances[n - 1]) > served }, "instance \(n) never back in the balancer")
        }
        let counts = load.stop()
        let errors = (try? String(contentsOfFile: work + "/run/nginx/error.log", encoding: .utf8)) ?? ""
        let access = (try? String(contentsOfFile: work + "/run/nginx/access.log", encoding: .utf8)) ?? ""
        let failedAtNginx = access.split(separator: "\n").filter { !$0.hasPrefix("200 ") }
        #expect(counts.failed == 0, "\(counts.failures.prefix(5)); nginx failed: \(failedAtNginx.prefix(10)); nginx errors: \(errors.prefix(3000))")
        #expect(counts.ok > 60)
    }
}

extension RawClient {
    /// One GET on a fresh connection; nil when no answer came.
    static func get(port: UInt16, _ path: String, timeout: Double = 60) throws -> (status: Int, headers: [String: String], body: [UInt8])? {
        let client = try RawClient(port: port)
        client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        return client.readResponse(timeout: timeout)
    }
}

/// One concurrent GET per path (one connection each); the answers with their paths once all have ended.
final class MixedClients: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [(path: String, answer: (status: Int, body: [UInt8])?)] = []
    private let group = DispatchGroup()

    init(_ paths: [String], port: UInt16) {
        for path in paths {
            group.enter()
            Thread {
                let answer = (try? RawClient.get(port: port, path, timeout: 120)).flatMap { $0 }.map { ($0.status, $0.body) }
                self.lock.withLock { self.answers.append((path, answer)) }
                self.group.leave()
            }.start()
        }
    }

    func wait() -> [(path: String, answer: (status: Int, body: [UInt8])?)]? {
        guard group.wait(timeout: .now() + 180) == .success else { return nil }
        return lock.withLock { answers }
    }
}

/// A light, steady load: `workers` threads each GET the paths in turn, one connection per request, until stopped.
final class Load: @unchecked Sendable {
    private let lock = NSLock()
    private var ok = 0
    private var failures: [String] = []
    private var stopped = false
    private let group = DispatchGroup()

    init(paths: [String], port: UInt16, workers: Int) {
        for worker in 0..<workers {
            group.enter()
            Thread {
                var index = worker
                while !self.lock.withLock({ self.stopped }) {
                    let path = paths[index % paths.count]
                    index += 1
                    // A failure says what failed: the connection to nginx, its answer, or the status it gave.
                    let outcome: String
                    do {
                        let status = try RawClient.get(port: port, path, timeout: 30)?.status
                        outcome = status.map(String.init) ?? "no answer"
                    } catch {
                        outcome = "\(error)"
                    }
                    self.lock.withLock { outcome == "200" ? (self.ok += 1) : self.failures.append("\(path): \(outcome) at \(Date())") }
                }
                self.group.leave()
            }.start()
        }
    }

    var counts: (ok: Int, failed: Int, failures: [String]) { lock.withLock { (ok, failures.count, failures) } }

    func stop() -> (ok: Int, failed: Int, failures: [String]) {
        lock.withLock { stopped = true }
        group.wait()
        return counts
    }
}
