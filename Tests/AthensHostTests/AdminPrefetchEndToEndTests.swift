// `athens admin prefetch` against the built athens over FileStorage: a go.sum the real go command wrote (go mod tidy
// against the fixture upstream) leaves exactly its module versions stored, and the go command then builds from athens
// alone; a go.mod body, a list with a query, an excluded module, the token, the CLI's lines and exit codes, and a
// 100 MB body refused from its head.
import Foundation
import Testing

@Suite("admin prefetch end to end over FileStorage and the real go command", .blockingBodies, .serialized)
final class AdminPrefetchEndToEndTests {
    static let token = "e2e-prefetch-token-0123456789"
    let work = TestSupport.makeTemporaryDirectory("prefetch")
    let upstream: FakeUpstream

    init() throws {
        try TestSupport.makeFixtureProxy(work + "/tree")
        upstream = try FakeUpstream(root: work + "/tree", logPath: work + "/upstream.log")
    }

    deinit {
        upstream.stop()
        TestSupport.removeDirectory(work)
    }

    func athens(_ extra: String = "") throws -> AthensServer {
        try AthensServer(manifest: """
        {"admin": {"token": "\(Self.token)"}, "spoolDirectory": "\(work)", "accessLog": false\(extra),
         "storage": {"plugin": "FileStorage", "config": {"root": "\(work)/store-\(UUID().uuidString)"}},
         "fetchers": [{"name": "u", "plugin": "ProxyFetcher", "config": {"url": "\(upstream.url)", "timeoutSeconds": 5}}]}
        """, directory: work)
    }

    /// `athens admin … ARGS` with stderr a pipe (not a TTY: the plain-line output).
    func cli(_ server: AthensServer?, _ arguments: [String], token: String = AdminPrefetchEndToEndTests.token, url: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestSupport.run(TestSupport.athens, ["admin", "--url", url ?? server?.url ?? "", "--token", token] + arguments,
                            environment: ["PATH": "/usr/bin:/bin"])
    }

    /// What /catalog lists, as module@version.
    static func stored(_ server: AthensServer) throws -> Set<String> {
        let response = try server.get("/catalog?pagesize=10000")
        guard response.status == 200, let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let modules = object["modules"] as? [[String: String]] else { throw TestFailure("catalog: \(response.status)") }
        return Set(modules.map { "\($0["module"] ?? "")@\($0["version"] ?? "")" })
    }

    /// A main module requiring three fixture modules (one of which requires a fourth), tidied by the go command.
    func tidiedModule() throws -> (directory: String, goSum: String) {
        try Self.tidiedModule(in: work, upstream: upstream.url)
    }

    /// `tidiedModule()` in `work`, tidied against the fixture upstream at `upstream` (AdminS3EndToEndTests too).
    static func tidiedModule(in work: String, upstream: String) throws -> (directory: String, goSum: String) {
        let directory = work + "/main"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        module example.com/fixturemain

        go 1.19

        require (
        \texample.com/app v1.0.0
        \texample.com/hello v1.0.0
        \texample.com/multi/v2 v2.0.0
        )
        """.write(toFile: directory + "/go.mod", atomically: true, encoding: .utf8)
        try """
        package main

        import (
        \t"example.com/app"
        \t"example.com/hello"
        \tmulti "example.com/multi/v2"
        )

        func main() { println(app.Run(), hello.Version, multi.Major) }
        """.write(toFile: directory + "/main.go", atomically: true, encoding: .utf8)
        let tidy = try GoCommand.run(["mod", "tidy"], proxy: upstream, directory: directory)
        guard tidy.status == 0 else { throw TestFailure("go mod tidy: \(tidy.stderr)") }
        return (directory, try String(contentsOfFile: directory + "/go.sum", encoding: .utf8))
    }

    /// The module versions a go.sum names (its /go.mod lines included).
    static func versions(inGoSum text: String) -> Set<String> {
        Set(text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3 else { return nil }
            let version = fields[1].hasSuffix("/go.mod") ? fields[1].dropLast("/go.mod".count) : fields[1]
            return "\(fields[0])@\(version)"
        })
    }

    @Test("a go.sum from go mod tidy: exactly its versions are stored, and the go command then builds from athens alone")
    func realGoSum() throws {
        let (directory, goSum) = try tidiedModule()
        let expected = Self.versions(inGoSum: goSum)
        #expect(expected == ["example.com/app@v1.0.0", "example.com/dep@v1.0.0", "example.com/hello@v1.0.0", "example.com/multi/v2@v2.0.0"],
                "the fixture's go.sum: \(goSum)")
        let server = try athens()
        defer { server.stop() }
        #expect(try Self.stored(server).isEmpty)

        let first = try cli(server, ["prefetch", directory + "/go.sum"])
        #expect(first.status == 0, "\(first.stderr)")
        for module in expected { #expect(first.stderr.contains("done \(module)\n"), "one plain line per finished item: \(first.stderr)") }
        #expect(first.stderr.contains(": 4 items: 4 fetched, 0 already stored, 0 failed"))
        #expect(!first.stderr.contains("\r"), "no progress bar when stderr is not a terminal")
        #expect(try Self.stored(server) == expected, "exactly the go.sum's versions")

        let again = try cli(server, ["prefetch", directory + "/go.sum"])
        #expect(again.status == 0 && again.stderr.contains(": 4 items: 0 fetched, 4 already stored, 0 failed"), "\(again.stderr)")

        // The cache is warm: with the upstream gone, the go command downloads and builds through athens.
        upstream.stop()
        let build = try GoCommand.run(["build", "-o", work + "/fixturemain", "."], proxy: server.url, directory: directory)
        #expect(build.status == 0, "go build from the prefetched cache: \(build.stderr)")
        #expect(try Self.stored(server) == expected, "and nothing else was stored")
    }

    @Test("a go.mod body, a list with a query, an excluded module: per-item results, exit 1 naming the failure")
    func goModListAndExclude() throws {
        let server = try athens(#", "rules": [{"match": "example.com/legacy", "action": "exclude"}]"#)
        defer { server.stop() }
        try "module example.com/x\n\ngo 1.19\n\nrequire example.com/dep v1.0.0 // indirect\nreplace example.com/dep => ./dep\n"
            .write(toFile: work + "/go.mod", atomically: true, encoding: .utf8)
        let mod = try cli(server, ["prefetch", work + "/go.mod"])
        #expect(mod.status == 0, "\(mod.stderr)")
        #expect(mod.stderr.contains("note: go.mod: 1 replace directive ignored"))
        #expect(mod.stderr.contains("done example.com/dep@v1.0.0"))

        try "example.com/hello@latest\nexample.com/legacy@v2.0.0+incompatible\nexample.com/nosuch@v1.0.0\n"
            .write(toFile: work + "/list.txt", atomically: true, encoding: .utf8)
        let list = try cli(server, ["prefetch", work + "/list.txt"])
        #expect(list.status == 1, "a failed item fails the command: \(list.stderr)")
        #expect(list.stderr.contains("done example.com/hello@v1.1.0"), "@latest resolved to the highest release")
        #expect(list.stderr.contains("failed example.com/legacy@v2.0.0+incompatible: example.com/legacy is excluded by this proxy's policy"))
        #expect(list.stderr.contains("failed example.com/nosuch@v1.0.0: not found"))
        #expect(list.stderr.contains(": 3 items: 1 fetched, 0 already stored, 2 failed"))
        #expect(try Self.stored(server) == ["example.com/dep@v1.0.0", "example.com/hello@v1.1.0"])

        // `athens admin job ID` prints the job; exit 1 as it has failures.
        let id = try #require(list.stderr.split(separator: "\n").last { $0.hasPrefix("prefetch ") }?.split(separator: " ")[1].dropLast())
        let job = try cli(server, ["job", String(id)])
        #expect(job.status == 1 && job.stdout.contains(#""state":"done""#) && job.stdout.contains(#""failed":2"#), "\(job.stdout) \(job.stderr)")
        #expect(try cli(server, ["job", "0123456789abcdef"]).status == 1)
    }

    @Test("wrong token: 401 and nothing started; a garbage body: 400 with the line; usage and connection errors exit 2")
    func refusals() throws {
        let server = try athens()
        defer { server.stop() }
        try "example.com/hello@v1.0.0\n".write(toFile: work + "/one.txt", atomically: true, encoding: .utf8)
        let wrong = try cli(server, ["prefetch", work + "/one.txt"], token: "wrong-token-wrong-token-00")
        #expect(wrong.status == 1 && wrong.stderr.contains("HTTP 401"), "\(wrong.stderr)")
        try "example.com/hello@v1.0.0\nthis is not a module\n".write(toFile: work + "/bad.txt", atomically: true, encoding: .utf8)
        let bad = try cli(server, ["prefetch", work + "/bad.txt"])
        #expect(bad.status == 1 && bad.stderr.contains("HTTP 400") && bad.stderr.contains("line 2"), "\(bad.stderr)")
        #expect(try Self.stored(server).isEmpty, "nothing started")
        #expect(!upstream.requests.contains { $0.contains("hello") }, "the upstream was never asked")

        #expect(try cli(server, ["prefetch"]).status == 2)
        #expect(try cli(server, ["prefetch", work + "/missing-file"]).status == 2)
        #expect(try cli(server, ["prefetch", "--format", "yaml", work + "/one.txt"]).status == 2)
        let port = server.port
        server.stop()
        let gone = try cli(nil, ["prefetch", work + "/one.txt"], url: "http://127.0.0.1:\(port)")
        #expect(gone.status == 2, "no server: \(gone.stderr)")
    }

    @Test("on a terminal the CLI redraws one progress line with \\r, then prints the summary")
    func progressBarOnATTY() throws {
        let server = try athens()
        defer { server.stop() }
        try "example.com/hello@v1.0.0\nexample.com/dep@v1.0.0\n".write(toFile: work + "/two.txt", atomically: true, encoding: .utf8)
        // script(1) gives the command a pseudo-terminal; its output is the terminal's.
        let command = [TestSupport.athens, "admin", "--url", server.url, "--token", Self.token, "prefetch", work + "/two.txt"].joined(separator: " ")
        let result = try TestSupport.run("/usr/bin/script", ["-qec", command, "/dev/null"], environment: ["PATH": "/usr/bin:/bin", "TERM": "dumb"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("\r\u{1B}[K[") && result.stdout.contains("] 2/2"), "\(result.stdout.debugDescription)")
        #expect(result.stdout.contains(": 2 items: 2 fetched, 0 already stored, 0 failed"))
        #expect(!result.stdout.contains("done example.com/hello"), "no per-item lines on a terminal")
    }

    @Test("a 100 MB go.sum is refused with 413 from its head, before any of it is read")
    func hugeBody() throws {
        let server = try athens()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.send("POST /admin/prefetch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 100000000\r\n\r\n"
            + String(repeating: "example.com/a v1.0.0 h1:x=\n", count: 100))
        let response = try #require(client.readResponse(timeout: 10))
        #expect(response.status == 413)
        #expect(client.isClosed())
        #expect(try server.get("/healthz").status == 200)
    }
}
