import Foundation
import HTTPClient
import Testing

/// Tests/Fixtures/http_test_server.py on a loopback port chosen by the OS (optionally over TLS).
final class HTTPTestServer {
    let process: ChildProcess
    let base: String

    init(tls: (cert: String, key: String)? = nil) throws {
        var arguments = ["python3", TestSupport.packageRoot + "/Tests/Fixtures/http_test_server.py", "--port", "0"]
        if let tls { arguments += ["--cert", tls.cert, "--key", tls.key] }
        process = try ChildProcess("/usr/bin/env", arguments)
        guard let line = process.firstLine(), line.hasPrefix("port "), let port = UInt16(line.dropFirst(5)) else {
            throw TestFailure("http_test_server did not start: \(process.stderr)")
        }
        base = (tls == nil ? "http" : "https") + "://127.0.0.1:\(port)"
    }

    func stop() { process.stop() }
    deinit { stop() }
}

/// Generous limits: each test tightens the one it is about.
private func limits(maxBody: Int64 = 1 << 20, timeout: Duration = .seconds(30), idle: Duration = .seconds(10),
                    isCancelled: (@Sendable () -> Bool)? = nil) -> HTTPLimits {
    HTTPLimits(maxBodyBytes: maxBody, timeout: timeout, idleTimeout: idle, connectTimeout: .seconds(10), isCancelled: isCancelled)
}

/// Runs `body`, expecting it to throw an HTTPClientError, and returns that error and the time it took.
private func expectFailure(_ body: () throws(HTTPClientError) -> Void) -> (error: HTTPClientError?, seconds: Double) {
    let start = ContinuousClock.now
    do {
        try body()
        return (nil, (ContinuousClock.now - start).asSeconds)
    } catch {
        return (error, (ContinuousClock.now - start).asSeconds)
    }
}

private extension Duration {
    var asSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Current number of TCP connections the test server has accepted.
private func connections(_ client: HTTPClient, _ server: HTTPTestServer) throws -> Int {
    let response = try client.fetch(HTTPRequest(url: server.base + "/connections"), limits: limits())
    return Int(String(decoding: response.body, as: UTF8.self)) ?? -1
}

@Suite("HTTPClient against a local test server", .blockingBodies, .serialized)
struct HTTPClientTests {
    let server: HTTPTestServer
    let client = HTTPClient()

    init() throws { server = try HTTPTestServer() }

    @Test("header names match in any ASCII case; only letters fold, other bytes must be equal")
    func headerNames() {
        var headers = HTTPHeaders([("Content-Type", "a"), ("X-[b]", "b"), ("ÉTag", "c"), ("Set-Cookie", "1"), ("set-cookie", "2")])
        #expect(headers["content-type"] == "a" && headers["CONTENT-TYPE"] == "a" && headers["Content-Typ"] == nil)
        #expect(headers["x-[B]"] == "b")
        // "[" and "{" differ by 0x20 like a letter's cases, but are not letters.
        #expect(headers["X-{b}"] == nil && headers["X-[b}"] == nil)
        #expect(headers["ÉTag"] == "c" && headers["éTag"] == nil)  // names are tokens: non-ASCII compares exactly
        #expect(headers.values("SET-COOKIE") == ["1", "2"])
        headers.remove("Set-cookie")
        #expect(headers.values("set-cookie") == [] && headers.fields.count == 3)
    }

    @Test("a GET returns status, headers (looked up in any case) and body")
    func simpleGet() throws {
        let response = try client.fetch(HTTPRequest(url: server.base + "/hello"), limits: limits())
        #expect(response.status == 200)
        #expect(response.body == Array("hello".utf8))
        #expect(response.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(response.headers["CONTENT-LENGTH"] == "5")
        #expect(response.head.contentLength == 5)
        let missing = try client.fetch(HTTPRequest(url: server.base + "/status/404"), limits: limits())
        #expect(missing.status == 404)
        #expect(missing.body == Array("status body\n".utf8))
    }

    @Test("a large body is streamed to the sink in pieces, every byte once")
    func streaming() throws {
        var total = 0
        var pieces = 0
        var largest = 0
        let head = try client.perform(HTTPRequest(url: server.base + "/bytes/5000000"), limits: limits(maxBody: 5_000_000)) { chunk in
            total += chunk.count
            pieces += 1
            largest = max(largest, chunk.count)
            #expect(chunk.allSatisfy { $0 == UInt8(ascii: "x") })
        }
        #expect(head.status == 200)
        #expect(total == 5_000_000)
        #expect(pieces > 10)
        // curl hands over what one read gave: never the whole body at once.
        #expect(largest <= 1 << 20)
    }

    @Test("a body over the limit fails with tooLarge as the limit is crossed, and that connection is dropped",
          arguments: ["/endless", "/endless-chunked", "/bytes/70000"])
    func bodyLimit(path: String) throws {
        let before = try connections(client, server)
        var delivered: Int64 = 0
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            try client.perform(HTTPRequest(url: server.base + path), limits: limits(maxBody: 64 << 10)) { delivered += Int64($0.count) }
        }
        guard case .tooLarge(let limit)? = error else { Issue.record("expected tooLarge, got \(String(describing: error))"); return }
        #expect(limit == 64 << 10)
        #expect(delivered <= 64 << 10)
        // The next call needs a new connection: the over-long one was closed, not drained.
        _ = try client.fetch(HTTPRequest(url: server.base + "/hello"), limits: limits())
        #expect(try connections(client, server) == before + 1)
    }

    @Test("an announced Content-Length over the limit fails before any body byte arrives")
    func announcedLengthOverLimit() throws {
        var delivered = 0
        let (error, seconds) = expectFailure { () throws(HTTPClientError) in
            try client.perform(HTTPRequest(url: server.base + "/announce/100000000"), limits: limits(maxBody: 1000, idle: .seconds(20))) { delivered += $0.count }
        }
        guard case .tooLarge? = error else { Issue.record("expected tooLarge, got \(String(describing: error))"); return }
        #expect(delivered == 0)
        #expect(seconds < 10)  // not the idle timeout: decided at the head
    }

    @Test("a compressed response is refused without inflating it")
    func gzipRefused() throws {
        var delivered = 0
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            try client.perform(HTTPRequest(url: server.base + "/gzip"), limits: limits(maxBody: 1 << 30)) { delivered += $0.count }
        }
        guard case .encodedBody(let encoding)? = error else { Issue.record("expected encodedBody, got \(String(describing: error))"); return }
        #expect(encoding == "gzip")
        #expect(delivered == 0)
        // And the request did not ask for compression.
        let echo = try client.fetch(HTTPRequest(url: server.base + "/echo"), limits: limits())
        let headers = try echoHeaders(echo)
        #expect(headers["accept-encoding"] == nil)
    }

    @Test("endless header lines fail with headersTooLarge")
    func headerFlood() throws {
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(url: server.base + "/headers-flood"), limits: limits())
        }
        guard case .headersTooLarge? = error else { Issue.record("expected headersTooLarge, got \(String(describing: error))"); return }
    }

    @Test("a server that never answers, or stops mid-body, fails with the idle timeout", arguments: ["/stall-head", "/stall-body"])
    func idleTimeout(path: String) throws {
        let (error, seconds) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(url: server.base + path), limits: limits(maxBody: 1 << 20, timeout: .seconds(60), idle: .seconds(1)))
        }
        #expect(error.map { if case .timedOut(.idle(.seconds(1))) = $0 { true } else { false } } == true, "got \(String(describing: error))")
        #expect(seconds >= 0.9)
        #expect(seconds < 10)
    }

    @Test("a body that keeps dripping is cut off at the deadline although it is never idle")
    func deadline() throws {
        var delivered = 0
        let (error, seconds) = expectFailure { () throws(HTTPClientError) in
            try client.perform(HTTPRequest(url: server.base + "/drip"), limits: limits(timeout: .seconds(2), idle: .seconds(30))) { delivered += $0.count }
        }
        #expect(error.map { if case .timedOut(.deadline) = $0 { true } else { false } } == true, "got \(String(describing: error))")
        #expect(delivered > 0)
        #expect(seconds >= 1.9)
        #expect(seconds < 10)
    }

    @Test("a deadline already past fails at once without sending anything")
    func deadlinePast() throws {
        let past = HTTPLimits(maxBodyBytes: 100, deadline: .now - .seconds(1), idleTimeout: .seconds(5))
        let (error, _) = expectFailure { () throws(HTTPClientError) in _ = try client.fetch(HTTPRequest(url: server.base + "/hello"), limits: past) }
        #expect(error.map { if case .timedOut(.deadline) = $0 { true } else { false } } == true)
    }

    @Test("cancellation is noticed while the server is silent")
    func cancel() throws {
        let flag = CancelFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { flag.set() }
        let (error, seconds) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(url: server.base + "/stall-head"),
                                 limits: limits(timeout: .seconds(60), idle: .seconds(60), isCancelled: { flag.isSet }))
        }
        #expect(error.map { if case .cancelled = $0 { true } else { false } } == true, "got \(String(describing: error))")
        #expect(seconds < 10)
    }

    @Test("sequential calls reuse one keep-alive connection")
    func keepAlive() throws {
        let before = try connections(client, server)
        for _ in 0..<10 {
            let response = try client.fetch(HTTPRequest(url: server.base + "/hello"), limits: limits())
            #expect(response.status == 200)
        }
        #expect(try connections(client, server) == before)
    }

    @Test("concurrent calls on one client all succeed")
    func concurrent() throws {
        let failures = Counter()
        let client = client, base = server.base
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            do {
                let response = try client.fetch(HTTPRequest(url: base + "/bytes/\(100_000 + index)"), limits: limits())
                if response.status != 200 || response.body.count != 100_000 + index { failures.add() }
            } catch {
                failures.add()
            }
        }
        #expect(failures.value == 0)
    }

    @Test("a streamed PUT upload sends exactly its bytes, pulled piece by piece")
    func streamedUpload() throws {
        let length = 3_000_017
        var offset = 0
        var pulls = 0
        var reference = [UInt8](repeating: 0, count: length)
        for index in 0..<length { reference[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        let body = HTTPRequestBody.stream(length: Int64(length)) { buffer in
            pulls += 1
            let count = min(buffer.count, length - offset)
            for index in 0..<count { buffer[index] = UInt8(truncatingIfNeeded: (offset + index) &* 31 &+ 7) }
            offset += count
            return count
        }
        var headers = HTTPHeaders()
        headers.append("X-Test", "upload")
        let response = try client.fetch(HTTPRequest(.put, url: server.base + "/echo", headers: headers, body: body), limits: limits())
        let echo = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        #expect(echo?["method"] as? String == "PUT")
        #expect(echo?["length"] as? Int == length)
        #expect(echo?["sha256"] as? String == sha256Hex(reference))
        #expect(pulls > 10)
        let sent = echo?["headers"] as? [String: String] ?? [:]
        #expect(sent["x-test"] == "upload")
        #expect(sent["expect"] == nil)
        #expect(sent["content-length"] == "\(length)")
    }

    @Test("POST and DELETE send the method and bytes asked for, and no Content-Type unless set")
    func postAndDelete() throws {
        let post = try client.fetch(HTTPRequest(.post, url: server.base + "/echo", body: .bytes(Array("abc".utf8))), limits: limits())
        let echo = try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any]
        #expect(echo?["method"] as? String == "POST")
        #expect(echo?["length"] as? Int == 3)
        #expect((echo?["headers"] as? [String: String])?["content-type"] == nil)
        let delete = try client.fetch(HTTPRequest(.delete, url: server.base + "/echo"), limits: limits())
        #expect((try JSONSerialization.jsonObject(with: Data(delete.body)) as? [String: Any])?["method"] as? String == "DELETE")
        let head = try client.fetch(HTTPRequest(.head, url: server.base + "/bytes/1234"), limits: limits(maxBody: 10))
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.head.contentLength == 1234)
    }

    @Test("an upload source that ends early or throws fails the call")
    func badUploadSource() throws {
        let short = HTTPRequestBody.stream(length: 1000) { _ in 0 }
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(.put, url: server.base + "/echo", body: short), limits: limits())
        }
        guard case .invalidRequest? = error else { Issue.record("expected invalidRequest, got \(String(describing: error))"); return }
        struct SourceBroke: Error {}
        let throwing = HTTPRequestBody.stream(length: 1000) { _ in throw SourceBroke() }
        let (second, _) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(.put, url: server.base + "/echo", body: throwing), limits: limits())
        }
        guard case .consumer(let inner)? = second else { Issue.record("expected consumer, got \(String(describing: second))"); return }
        #expect(inner is SourceBroke)
    }

    @Test("redirects are returned as they are unless following is asked for")
    func redirects() throws {
        let target = server.base + "/hello"
        let url = server.base + "/redirect/302?to=" + target.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let plain = try client.fetch(HTTPRequest(url: url), limits: limits())
        #expect(plain.status == 302)
        #expect(plain.headers["Location"] == target)
        let followed = try client.fetch(HTTPRequest(url: url, redirects: .follow(max: 5)), limits: limits())
        #expect(followed.status == 200)
        #expect(followed.body == Array("hello".utf8))
        let relative = try client.fetch(HTTPRequest(url: server.base + "/redirect/301?to=/bytes/3", redirects: .follow(max: 5)), limits: limits())
        #expect(relative.body == Array("xxx".utf8))
        let loop = server.base + "/loop"
        let (error, _) = expectFailure { () throws(HTTPClientError) in _ = try client.fetch(HTTPRequest(url: loop, redirects: .follow(max: 3)), limits: limits()) }
        guard case .redirectRefused? = error else { Issue.record("expected redirectRefused, got \(String(describing: error))"); return }
    }

    @Test("credentials are dropped when a redirect leaves the origin")
    func redirectDropsCredentials() throws {
        let other = try HTTPTestServer()
        var headers = HTTPHeaders()
        headers.append("Authorization", "Bearer secret-token")
        let away = server.base + "/redirect/302?to=" + (other.base + "/echo").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let response = try client.fetch(HTTPRequest(url: away, headers: headers, redirects: .follow(max: 2)), limits: limits())
        #expect(try echoHeaders(response)["authorization"] == nil)
        let same = try client.fetch(HTTPRequest(url: server.base + "/redirect/302?to=/echo", headers: headers, redirects: .follow(max: 2)), limits: limits())
        #expect(try echoHeaders(same)["authorization"] == "Bearer secret-token")
    }

    @Test("a streamed body is not resent by a 307")
    func streamNotReplayed() throws {
        let body = HTTPRequestBody.stream(length: 3) { buffer in
            buffer.copyBytes(from: Array("abc".utf8).prefix(buffer.count))
            return min(3, buffer.count)
        }
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(.put, url: server.base + "/redirect/307?to=/echo", body: body, redirects: .follow(max: 2)), limits: limits())
        }
        guard case .redirectRefused? = error else { Issue.record("expected redirectRefused, got \(String(describing: error))"); return }
    }

    @Test("a sink may stop quietly; a sink's own error comes back as consumer")
    func sinkStops() throws {
        var delivered = 0
        let head = try client.perform(HTTPRequest(url: server.base + "/endless"), limits: limits()) { chunk in
            delivered += chunk.count
            throw HTTPClient.Stop()
        }
        #expect(head.status == 200)
        #expect(delivered > 0)
        struct Full: Error {}
        let (error, _) = expectFailure { () throws(HTTPClientError) in
            try client.perform(HTTPRequest(url: server.base + "/endless"), limits: limits()) { _ in throw Full() }
        }
        guard case .consumer(let inner)? = error else { Issue.record("expected consumer, got \(String(describing: error))"); return }
        #expect(inner is Full)
    }

    @Test("bad requests are refused before anything is sent, and messages never repeat the URL")
    func invalidRequests() throws {
        for url in ["ftp://127.0.0.1/x", "not a url", "http://user:hunter2@127.0.0.1:1/x"] {
            let (error, _) = expectFailure { () throws(HTTPClientError) in _ = try client.fetch(HTTPRequest(url: url), limits: limits()) }
            guard case .invalidRequest(let why)? = error else { Issue.record("\(url): expected invalidRequest, got \(String(describing: error))"); continue }
            #expect(!why.contains("hunter2"))
        }
        var headers = HTTPHeaders()
        headers.append("X-Bad", "a\r\nInjected: yes")
        let (error, _) = expectFailure { () throws(HTTPClientError) in _ = try client.fetch(HTTPRequest(url: server.base + "/echo", headers: headers), limits: limits()) }
        guard case .invalidRequest? = error else { Issue.record("expected invalidRequest, got \(String(describing: error))"); return }
        // A refused connection: the message names what happened, not the URL or its query.
        let (refused, _) = expectFailure { () throws(HTTPClientError) in
            _ = try client.fetch(HTTPRequest(url: "http://127.0.0.1:1/x?token=secret"), limits: limits())
        }
        guard case .transport(let why)? = refused else { Issue.record("expected transport, got \(String(describing: refused))"); return }
        #expect(!why.contains("secret"))
        #expect(!why.contains("/x"))
    }
}

@Suite("HTTPClient over TLS", .blockingBodies)
struct HTTPClientTLSTests {
    @Test("https works with a trusted CA, fails without it, and a redirect to http is refused")
    func tls() throws {
        let directory = TestSupport.makeTemporaryDirectory("httpclient-tls")
        defer { TestSupport.removeDirectory(directory) }
        let cert = directory + "/cert.pem", key = directory + "/key.pem"
        let made = try TestSupport.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                                             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let secure = try HTTPTestServer(tls: (cert, key))
        let plain = try HTTPTestServer()
        let trusting = HTTPClient(configuration: .init(caFile: cert))
        let response = try trusting.fetch(HTTPRequest(url: secure.base + "/hello"), limits: limits())
        #expect(response.body == Array("hello".utf8))

        let untrusting = HTTPClient()
        let (error, _) = expectFailure { () throws(HTTPClientError) in _ = try untrusting.fetch(HTTPRequest(url: secure.base + "/hello"), limits: limits()) }
        guard case .transport(let why)? = error else { Issue.record("expected transport, got \(String(describing: error))"); return }
        #expect(why.hasPrefix("TLS failed"))

        let down = secure.base + "/redirect/302?to=" + (plain.base + "/hello").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let (refused, _) = expectFailure { () throws(HTTPClientError) in
            _ = try trusting.fetch(HTTPRequest(url: down, redirects: .follow(max: 5)), limits: limits())
        }
        guard case .redirectRefused(let reason)? = refused else { Issue.record("expected redirectRefused, got \(String(describing: refused))"); return }
        #expect(reason.contains("https to http"))
    }
}

/// Request headers as the echo endpoint saw them (names lower-cased).
private func echoHeaders(_ response: HTTPResponse) throws -> [String: String] {
    let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
    return object?["headers"] as? [String: String] ?? [:]
}

private func sha256Hex(_ bytes: [UInt8]) -> String {
    let directory = TestSupport.makeTemporaryDirectory("sha")
    defer { TestSupport.removeDirectory(directory) }
    let path = directory + "/data"
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    let result = try? TestSupport.run("/usr/bin/sha256sum", [path])
    return String(result?.stdout.split(separator: " ").first ?? "")
}

private final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
