// The RESP2 client and lease lock (Plugins/RedisLock/Client) against real and scripted Redis servers. Longer than
// ~400 lines on purpose: four suites sharing the scripted-server (FakeRedis) helpers.
import Foundation
import RedisClient
import Testing

/// Open file descriptors of this process.
private func openFileDescriptors() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Resident set size of this process, bytes.
private func residentBytes() -> Int {
    let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
    let pages = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Runs `body` on a new thread; `wait()` joins it.
private final class Worker: @unchecked Sendable {
    private let group = DispatchGroup()
    init(_ body: @escaping @Sendable () -> Void) {
        group.enter()
        Thread.detachNewThread { [group] in body(); group.leave() }
    }
    func wait(timeout: Double = 60) -> Bool { group.wait(timeout: .now() + timeout) == .success }
}

/// A value shared between threads.
private final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
    var get: T { lock.withLock { value } }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite("RESP reader", .blockingBodies)
struct RESPReaderTests {
    static func parseAll(_ input: [UInt8], limits: RESPLimits = RESPLimits(), chunk: Int = Int.max) -> (values: [RedisValue], error: RedisError?) {
        var reader = RESPReader(limits: limits)
        var values: [RedisValue] = []
        var offset = 0
        repeat {
            let end = min(input.count, offset + chunk)
            reader.feed(input[offset..<end])
            offset = end
            do {
                while let value = try reader.next() { values.append(value) }
            } catch {
                return (values, error)
            }
        } while offset < input.count
        return (values, nil)
    }

    @Test func everyReplyTypeWholeAndByteByByte() {
        let wire = "+OK\r\n-ERR bad thing\r\n:0\r\n:-9223372036854775808\r\n:9223372036854775807\r\n$0\r\n\r\n$-1\r\n"
            + "$5\r\na\r\nb\0\r\n*-1\r\n*0\r\n*3\r\n:1\r\n*2\r\n$1\r\nx\r\n-E nested\r\n+s\r\n"
        let expected: [RedisValue] = [
            .simple("OK"), .error("ERR bad thing"), .integer(0), .integer(.min), .integer(.max), .bulk([]), .bulk(nil),
            .bulk(bytes("a\r\nb\0")), .array(nil), .array([]),
            .array([.integer(1), .array([.bulk(bytes("x")), .error("E nested")]), .simple("s")]),
        ]
        for chunk in [Int.max, 1, 2, 3, 7] {
            let result = Self.parseAll(bytes(wire), chunk: chunk)
            #expect(result.error == nil, "chunk \(chunk)")
            #expect(result.values == expected, "chunk \(chunk)")
        }
        // Canonical: what was parsed encodes back to the same bytes.
        #expect(expected.flatMap(\.encoded) == bytes(wire))
    }

    @Test func incompleteReplyWaitsForMore() throws {
        var reader = RESPReader()
        reader.feed(bytes("*2\r\n$3\r\nab"))
        #expect(try reader.next() == nil)
        reader.feed(bytes("c\r\n:7\r"))
        #expect(try reader.next() == nil)
        reader.feed(bytes("\n"))
        #expect(try reader.next() == .array([.bulk(bytes("abc")), .integer(7)]))
        #expect(reader.bufferedCount == 0)
    }

    @Test(arguments: [
        ("?what\r\n", "unknown reply type"), ("+OK\n", "LF without CR"), ("+O\rK\r\n", "CR not followed by LF"),
        ("\r\n", "unknown reply type"), ("x", "unknown reply type"), (":01\r\n", "malformed integer"), (":-0\r\n", "malformed integer"), (":+1\r\n", "malformed integer"),
        (":9223372036854775808\r\n", "malformed integer"), (":\r\n", "malformed integer"), (":1x\r\n", "malformed integer"),
        ("$-2\r\n", "malformed bulk"), ("$01\r\nx\r\n", "malformed bulk"), ("$ 1\r\n", "malformed bulk"),
        ("$99999999999\r\n", "malformed bulk"), ("$3\r\nabcde\r\n", "not followed by CRLF"), ("*-2\r\n", "malformed array"),
        ("*1x\r\n", "malformed array"),
    ])
    func malformedRepliesAreProtocolErrors(input: String, message: String) {
        let result = Self.parseAll(bytes(input))
        guard case .protocolError(let text)? = result.error else {
            Issue.record("\(input.debugDescription) gave \(result)")
            return
        }
        #expect(text.contains(message), "\(input.debugDescription): \(text)")
    }

    @Test func limitsAreCheckedBeforeAllocating() {
        let limits = RESPLimits(maxBulkLength: 100, maxArrayLength: 10, maxDepth: 3, maxLineLength: 20, maxReplyBytes: 1000)
        let cases: [(String, String)] = [
            ("$101\r\n", "exceeds the limit of 100"), ("$2147483647\r\n", "exceeds the limit"), ("*11\r\n", "exceeds the limit of 10"),
            ("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "nested deeper than 3"), ("+" + String(repeating: "a", count: 21) + "\r\n", "longer than 20"),
            // A line that never ends is refused once it is past the limit, not buffered forever.
            ("-" + String(repeating: "a", count: 30), "longer than 20"),
            ("*10\r\n" + String(repeating: "$99\r\n" + String(repeating: "x", count: 99) + "\r\n", count: 10), "reply longer than 1000"),
        ]
        for (input, message) in cases {
            for chunk in [Int.max, 1] {
                let result = Self.parseAll(bytes(input), limits: limits, chunk: chunk)
                guard case .protocolError(let text)? = result.error else {
                    Issue.record("\(input.prefix(40).debugDescription) chunk \(chunk) gave \(result.values.count) values, \(String(describing: result.error))")
                    continue
                }
                #expect(text.contains(message), "\(text)")
            }
        }
        // Exactly at the limits is fine.
        let ok = Self.parseAll(bytes("$100\r\n" + String(repeating: "y", count: 100) + "\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), limits: limits)
        #expect(ok.error == nil && ok.values.count == 2)
    }

    @Test func deepNestingAndHugeCountsDoNotCrash() {
        // 100,000 nested arrays: refused at the depth limit, iteratively (no recursion to overflow the stack).
        let deep = Self.parseAll(Array(repeating: bytes("*1\r\n"), count: 100_000).flatMap { $0 })
        #expect(deep.error == .protocolError("arrays nested deeper than 16"))
        // An array announcing a million elements reserves nothing up front.
        var reader = RESPReader()
        let before = residentBytes()
        reader.feed(bytes("*1048576\r\n"))
        #expect((try? reader.next()) == .some(nil))
        #expect(residentBytes() - before < 16 << 20)
    }

    /// Fuzz finding (resp target): an empty array `*0` inside arrays already at the depth limit was accepted,
    /// giving a value one level deeper than `maxDepth`.
    @Test func emptyArrayPastTheDepthLimitIsRefused() {
        let limits = RESPLimits(maxDepth: 2)
        #expect(Self.parseAll(bytes("*1\r\n*0\r\n"), limits: limits).values == [.array([.array([])])])
        #expect(Self.parseAll(bytes("*1\r\n*1\r\n*0\r\n"), limits: limits).error == .protocolError("arrays nested deeper than 2"))
        // A null array is no array: allowed where a value is.
        #expect(Self.parseAll(bytes("*1\r\n*1\r\n*-1\r\n"), limits: limits).values == [.array([.array([.array(nil)])])])
    }

    @Test func aFailedReaderStaysFailed() {
        var reader = RESPReader()
        reader.feed(bytes("!x\r\n+OK\r\n"))
        #expect(throws: RedisError.self) { try reader.next() }
        #expect(throws: RedisError.self) { try reader.next() }
    }
}

@Suite("Redis configuration", .blockingBodies)
struct RedisConfigurationTests {
    @Test func parsesURLs() throws {
        var c = try RedisConfiguration(url: "redis://127.0.0.1:6380/3")
        #expect(c.endpoint == .tcp(host: "127.0.0.1", port: 6380) && c.database == 3 && c.password == nil)
        c = try RedisConfiguration(url: "redis://:p%40ss%3Aw@localhost")
        #expect(c.endpoint == .tcp(host: "localhost", port: 6379) && c.database == 0 && c.password == "p@ss:w" && c.username == nil)
        c = try RedisConfiguration(url: "redis://alice:pw@[::1]:7000/")
        #expect(c.endpoint == .tcp(host: "::1", port: 7000) && c.username == "alice" && c.password == "pw")
        c = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=5&password=s%26cret")
        #expect(c.endpoint == .unix(path: "/run/redis/redis.sock") && c.database == 5 && c.password == "s&cret")
        #expect(c.description == "unix:///run/redis/redis.sock?db=5")
    }

    @Test(arguments: ["http://h", "rediss://h", "redis://", "redis://:hunter2@", "redis://h:0", "redis://h:65536", "redis://h:x",
                      "redis://h/-1", "redis://h/x", "redis://hunter2@h", "redis://:%zzhunter2@h", "redis://h?db=1",
                      "redis://[::1", "unix://relative.sock", "unix:///s?db=x", "unix:///s?bogus=1&password=hunter2",
                      "unix:///" + String(repeating: "a", count: 120)])
    func refusesBadURLsWithoutEchoingThem(url: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("\(url) accepted")
        } catch {
            guard case .invalidArgument(let message) = error else { Issue.record("\(url): \(error)"); return }
            #expect(!message.contains("hunter2"))
        }
    }

    @Test func descriptionHidesThePassword() throws {
        let c = try RedisConfiguration(url: "redis://:hunter2@127.0.0.1:1/2")
        #expect(c.description == "redis://127.0.0.1:1/2")
    }
}

@Suite("Redis client against redis-server", .blockingBodies, .serialized)
struct RedisClientTests {
    @Test func commandsAndReplyTypes() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        #expect(try client.command(["PING"]) == .simple("PONG"))
        #expect(try client.command(["SET", "k", "v"]) == .simple("OK"))
        #expect(try client.command(["GET", "k"]) == .bulk(bytes("v")))
        #expect(try client.command(["GET", "missing"]) == .bulk(nil))
        #expect(try client.command(["INCR", "n"]) == .integer(1))
        #expect(try client.command(["INCRBY", "n", "-5"]) == .integer(-4))
        let binary: [UInt8] = [0, 13, 10, 255, 36, 42] + bytes("\r\n$-1\r\n")
        #expect(try client.command([bytes("SET"), bytes("bin"), binary]) == .simple("OK"))
        #expect(try client.command(["GET", "bin"]) == .bulk(binary))
        #expect(try client.command(["SET", "empty", ""]) == .simple("OK"))
        #expect(try client.command(["GET", "empty"]) == .bulk([]))
        #expect(try client.command(["RPUSH", "list", "a", "b", "c"]) == .integer(3))
        #expect(try client.command(["LRANGE", "list", "0", "-1"]) == .array([.bulk(bytes("a")), .bulk(bytes("b")), .bulk(bytes("c"))]))
        #expect(try client.command(["LRANGE", "nolist", "0", "-1"]) == .array([]))
        #expect(try client.command(["EVAL", "return {1, {2, 'x'}, redis.status_reply('fine'), redis.error_reply('E nested')}", "0"])
                == .array([.integer(1), .array([.integer(2), .bulk(bytes("x"))]), .simple("fine"), .error("E nested")]))
        #expect(try client.command(["BLPOP", "nolist", "0.01"]) == .array(nil))
        let big = [UInt8](repeating: 0x61, count: 3 << 20)
        #expect(try client.command([bytes("SET"), bytes("big"), big]) == .simple("OK"))
        #expect(try client.command(["GET", "big"]) == .bulk(big))
        #expect(throws: RedisError.server("ERR value is not an integer or out of range")) { try client.command(["INCR", "k"]) }
        #expect(throws: RedisError.self) { try client.command(["NOSUCHCOMMAND"]) }
        // The connection that carried an error reply is still good.
        let replies = try client.pipeline([[bytes("SET"), bytes("p"), bytes("1")], [bytes("INCR"), bytes("k")], [bytes("GET"), bytes("p")]])
        #expect(replies.count == 3 && replies[0] == .simple("OK") && replies[2] == .bulk(bytes("1")))
        guard case .error = replies[1] else { Issue.record("INCR of a string: \(replies[1])"); return }
        #expect(client.connectionCounts.open == 1)
    }

    @Test func authenticationRightWrongAndMissing() throws {
        let password = "s3cr#t pass"
        let server = try RedisServer(password: password)
        defer { server.stop() }
        #expect(server.url().contains("%23"))
        let good = try RedisClient(url: server.url())
        #expect(try good.command(["PING"]) == .simple("PONG"))
        let escaped = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        #expect(try RedisClient(url: "redis://default:\(escaped)@127.0.0.1:\(server.port)").command(["PING"]) == .simple("PONG"))

        let wrong = try RedisClient(url: "redis://:wrong-\(escaped)@127.0.0.1:\(server.port)")
        do {
            try wrong.command(["PING"])
            Issue.record("wrong password accepted")
        } catch {
            guard case .server(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("AUTH failed") && text.contains("WRONGPASS"), "\(text)")
            #expect(!"\(error)".contains(password) && !"\(error)".contains("s3cr"))
        }
        #expect(wrong.connectionCounts.open == 0)

        let none = try RedisClient(url: "redis://127.0.0.1:\(server.port)")
        #expect(throws: RedisError.self) { try none.command(["GET", "x"]) }
        do { try none.command(["GET", "x"]) } catch { #expect("\(error)".contains("NOAUTH")) }
    }

    @Test func serverEchoingThePasswordIsRedacted() throws {
        let fake = try FakeRedis(.reply(bytes("-ERR you said hunter2, did you not\r\n")))
        defer { fake.stop() }
        let client = try RedisClient(url: "redis://:hunter2@127.0.0.1:\(fake.port)")
        do {
            try client.command(["PING"])
            Issue.record("fake accepted")
        } catch {
            #expect("\(error)".contains("***") && !"\(error)".contains("hunter2"), "\(error)")
        }
    }

    @Test func selectIsolatesDatabases() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let one = try server.client(db: 1), two = try server.client(db: 2)
        try one.command(["SET", "shared-name", "in-1"])
        #expect(try two.command(["GET", "shared-name"]) == .bulk(nil))
        try two.command(["SET", "shared-name", "in-2"])
        #expect(try one.command(["GET", "shared-name"]) == .bulk(bytes("in-1")))
        #expect(try server.client(db: 0).command(["DBSIZE"]) == .integer(0))
        let outOfRange = try server.client(db: 99)
        do {
            try outOfRange.command(["PING"])
            Issue.record("db 99 accepted")
        } catch {
            #expect("\(error)".contains("SELECT 99 failed"), "\(error)")
        }
    }

    @Test func unixSocket() throws {
        let server = try RedisServer(password: "pw")
        defer { server.stop() }
        let overUnix = try RedisClient(url: "unix://\(server.socketPath)?db=3&password=pw")
        try overUnix.command(["SET", "via", "unix"])
        #expect(try server.client(db: 3).command(["GET", "via"]) == .bulk(bytes("unix")))
        let info = try overUnix.command(["CLIENT", "INFO"]).string ?? ""
        #expect(info.contains("db=3"))
        #expect(throws: RedisError.self) { try RedisClient(url: "unix://\(server.directory)/missing.sock").command(["PING"]) }
    }

    @Test func serverKilledMidCallThenBack() throws {
        var server = try RedisServer()
        let fdsBefore = openFileDescriptors()
        let client = try server.client(poolSize: 4)
        try client.command(["SET", "before", "1"])
        let observer = try server.client()
        let outcome = Shared<RedisError?>(nil)
        let started = Date()
        let blocked = Worker { [client] in
            do { _ = try client.command(["BLPOP", "never", "30"], timeoutMs: 40_000) } catch { outcome.with { $0 = error as? RedisError } }
        }
        #expect(waitUntil { clientsIn("blpop", observer) == 1 })
        server.kill9()
        #expect(blocked.wait())
        #expect(Date().timeIntervalSince(started) < 20)
        guard case .unavailable(let message)? = outcome.get else { Issue.record("mid-call: \(String(describing: outcome.get))"); return }
        #expect(message.contains("closed"), "\(message)")

        // While down: a clear error, no connection left open.
        do { try client.command(["GET", "before"]); Issue.record("answered while down") } catch {
            guard case .unavailable(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("refused"), "\(text)")
        }
        #expect(client.connectionCounts.open == 0)

        server = try server.restart()
        defer { server.stop() }
        #expect(try client.command(["SET", "after", "1"]) == .simple("OK"))
        #expect(try client.command(["GET", "before"]) == .bulk(nil))  // no persistence
        observer.close()
        client.close()
        #expect(client.connectionCounts.open == 0)
        #expect(waitUntil { openFileDescriptors() <= fdsBefore })
    }

    @Test func idleConnectionsSurviveARestartWithoutAFailedCall() throws {
        var server = try RedisServer()
        let client = try server.client(poolSize: 2)
        try client.command(["PING"])
        #expect(client.connectionCounts == (1, 1))
        server = try server.restart()
        defer { server.stop() }
        // The pooled connection is dead; it is noticed before use and replaced.
        #expect(try client.command(["PING"]) == .simple("PONG"))
        #expect(client.connectionCounts.open == 1)
    }

    @Test func poolIsBoundedAndWaitsWithinTheDeadline() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client(poolSize: 2)
        let workers = (0..<2).map { i in Worker { [client] in _ = try? client.command(["BLPOP", "wake\(i)", "20"], timeoutMs: 30_000) } }
        let observer = try server.client()
        #expect(waitUntil { clientsIn("blpop", observer) == 2 })
        let started = Date()
        #expect(throws: RedisError.timeout("all 2 connections to \(client.configuration) busy")) { try client.command(["PING"], timeoutMs: 300) }
        #expect(Date().timeIntervalSince(started) >= 0.29)
        #expect(client.connectionCounts.open == 2)
        // A connection coming back is handed to the waiting caller.
        let waiter = Worker { [client] in _ = try? client.command(["SET", "served", "1"], timeoutMs: 20_000) }
        try observer.command(["RPUSH", "wake0", "x"])
        #expect(waiter.wait())
        #expect(try observer.command(["GET", "served"]) == .bulk(bytes("1")))
        try observer.command(["RPUSH", "wake1", "x"])
        for worker in workers { #expect(worker.wait()) }
        #expect(client.connectionCounts.open == 2)
    }

    /// Connections go to callers in the order they asked: a caller that returns one and asks again at once queues
    /// behind those already waiting (before, it usually won again, and a RedisLock release could wait out its
    /// timeout behind waiters polling in a loop).
    @Test func callersAreServedInTheOrderTheyAsked() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client(poolSize: 1)
        let observer = try server.client()
        // The holder takes the only connection; when its BLPOP ends it gives it back and asks again at once.
        let holder = Worker { [client] in
            _ = try? client.command(["BLPOP", "hold", "20"], timeoutMs: 30_000)
            _ = try? client.command(["RPUSH", "order", "holder"], timeoutMs: 20_000)
        }
        #expect(waitUntil { clientsIn("blpop", observer) == 1 })
        let waiters = ["first", "second"].enumerated().map { index, name in
            let waiter = Worker { [client] in _ = try? client.command(["RPUSH", "order", name], timeoutMs: 20_000) }
            #expect(waitUntil { client.waitingCount == index + 1 }, "\(name) is waiting")
            return waiter
        }
        try observer.command(["RPUSH", "hold", "x"])
        for worker in [holder] + waiters { #expect(worker.wait()) }
        #expect(try observer.command(["LRANGE", "order", "0", "-1"]) == .array(["first", "second", "holder"].map { .bulk(bytes($0)) }))
        #expect(client.waitingCount == 0)
    }

    @Test func deadlineOnAServerThatNeverAnswers() throws {
        let fake = try FakeRedis(.silent)
        defer { fake.stop() }
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(fake.port)")
        configuration.commandTimeoutMs = 300
        let client = try RedisClient(configuration)
        let started = Date()
        do { try client.command(["PING"]); Issue.record("silent server answered") } catch {
            guard case .timeout(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("waiting for a reply"), "\(message)")
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.29 && elapsed < 5, "\(elapsed)")
        #expect(client.connectionCounts.open == 0)  // the timed-out connection is not reused
        // A server that does not even answer AUTH: the connect timeout applies.
        configuration.password = "pw"
        configuration.connectTimeoutMs = 200
        configuration.commandTimeoutMs = 5000
        let authClient = try RedisClient(configuration)
        let t0 = Date()
        #expect(throws: RedisError.self) { try authClient.command(["PING"]) }
        #expect(Date().timeIntervalSince(t0) < 3)
    }

    /// A listener on 127.0.0.1 that never accepts (backlog `backlog`); its address.
    static func nonAcceptingListener(backlog: Int32) throws -> (fd: Int32, address: sockaddr_in) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, backlog) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard ok else { close(listener); throw TestFailure("listener: errno \(errno)") }
        return (listener, address)
    }

    @Test func writeTimeoutOnAServerThatNeverReads() throws {
        // The connection completes in the kernel's accept queue, but nobody reads: a 64 MiB command fills the
        // socket buffers and the write must give up at the deadline.
        let (listener, address) = try Self.nonAcceptingListener(backlog: 4)
        defer { close(listener) }
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
        configuration.commandTimeoutMs = 300
        let client = try RedisClient(configuration)
        let t0 = Date()
        do { try client.command([bytes("SET"), bytes("k"), [UInt8](repeating: 0x78, count: 64 << 20)]); Issue.record("written") } catch {
            guard case .timeout(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("writing to"), "\(text)")
        }
        let elapsed = Date().timeIntervalSince(t0)
        #expect(elapsed >= 0.29 && elapsed < 3, "\(elapsed)")
        #expect(client.connectionCounts.open == 0)
    }

    @Test func connectTimeoutOnAServerThatNeverAccepts() throws {
        // A listener that never accepts, its backlog filled: further SYNs are dropped, so connect() hangs.
        var (listener, address) = try Self.nonAcceptingListener(backlog: 0)
        defer { close(listener) }
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var fillers: [Int32] = []
        defer { for fd in fillers { close(fd) } }
        var hung = false
        for _ in 0..<16 where !hung {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            fillers.append(fd)
            let started = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
            if started == 0 { continue }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            hung = poll(&pfd, 1, 200) == 0
        }
        try #require(hung, "could not fill the listen backlog")
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
        configuration.connectTimeoutMs = 300
        let client = try RedisClient(configuration)
        let t0 = Date()
        do { try client.command(["PING"]); Issue.record("connected") } catch {
            guard case .timeout(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("connecting to"), "\(text)")
        }
        let elapsed = Date().timeIntervalSince(t0)
        #expect(elapsed >= 0.29 && elapsed < 3, "\(elapsed)")
        #expect(client.connectionCounts.open == 0)
    }

    @Test func unreachableServers() throws {
        let port = try TestSupport.freePort()  // nothing listens there
        do { try RedisClient(url: "redis://127.0.0.1:\(port)").command(["PING"]); Issue.record("connected to nothing") } catch {
            guard case .unavailable(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("refused") && text.contains("127.0.0.1:\(port)"), "\(text)")
        }
        do { try RedisClient(url: "redis://no-such-host.invalid:1").command(["PING"]); Issue.record("resolved .invalid") } catch {
            guard case .unavailable(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("cannot resolve"), "\(text)")
        }
        // localhost goes through getaddrinfo to a real server.
        let server = try RedisServer()
        defer { server.stop() }
        #expect(try RedisClient(url: "redis://localhost:\(server.port)").command(["PING"]) == .simple("PONG"))
    }

    @Test(arguments: [
        ("$9999999999\r\n", "malformed bulk"), ("$2000000\r\n", "exceeds the limit"), ("*2000\r\n", "exceeds the limit"),
        ("garbage\r\n", "unknown reply type"), ("+OK\n", "LF without CR"), (":12345678901234567890\r\n", "malformed integer"),
    ])
    func hostileRepliesAreProtocolErrors(reply: String, message: String) throws {
        let fake = try FakeRedis(.reply(bytes(reply)))
        defer { fake.stop() }
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(fake.port)")
        configuration.limits = RESPLimits(maxBulkLength: 1 << 20, maxArrayLength: 1000, maxDepth: 8, maxLineLength: 1024, maxReplyBytes: 1 << 20)
        let client = try RedisClient(configuration)
        for _ in 0..<2 {  // and the broken connection is not reused: the second call fails the same way, afresh
            do { try client.command(["PING"]); Issue.record("accepted \(reply.debugDescription)") } catch {
                guard case .protocolError(let text) = error else { Issue.record("\(error)"); return }
                #expect(text.contains(message), "\(text)")
            }
            #expect(client.connectionCounts.open == 0)
        }
    }

    @Test func hostileStreamsAreCutOffWithBoundedMemory() throws {
        let limits = RESPLimits(maxBulkLength: 1 << 20, maxArrayLength: 1 << 20, maxDepth: 8, maxLineLength: 1024, maxReplyBytes: 4 << 20)
        let streams: [(FakeRedis.Behaviour, String)] = [
            // Deep nesting, sent forever.
            (.stream(head: [], chunk: Array(repeating: bytes("*1\r\n"), count: 1000).flatMap { $0 }, total: 256 << 20), "nested deeper than 8"),
            // A million-element array of small integers, then more and more: the reply-size limit stops it.
            (.stream(head: bytes("*1048576\r\n"), chunk: Array(repeating: bytes(":1\r\n"), count: 4096).flatMap { $0 }, total: 256 << 20), "reply longer than"),
            // A status line that never ends.
            (.stream(head: bytes("+"), chunk: [UInt8](repeating: 0x61, count: 65536), total: 256 << 20), "reply line longer than 1024"),
        ]
        for (behaviour, message) in streams {
            let fake = try FakeRedis(behaviour)
            var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(fake.port)")
            configuration.limits = limits
            configuration.commandTimeoutMs = 20_000
            let client = try RedisClient(configuration)
            let before = residentBytes()
            do { try client.command(["PING"]); Issue.record("accepted a hostile stream") } catch {
                guard case .protocolError(let text) = error else { Issue.record("\(error)"); fake.stop(); continue }
                #expect(text.contains(message), "\(text)")
            }
            let grown = residentBytes() - before
            #expect(grown < 64 << 20, "RSS grew by \(grown) bytes")
            fake.stop()
            // The server could write what the socket buffers hold, not the 256 MiB it meant to.
            #expect(fake.sent < 64 << 20, "\(fake.sent) bytes sent")
        }
    }
}

@Suite("LeaseLock against redis-server", .blockingBodies, .serialized)
struct LeaseLockTests {
    @Test func mutualExclusionAcrossThreads() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let threads = 8, rounds = 25
        // Separate clients and lock objects per thread, as separate instances would have.
        let locks = try (0..<threads).map { _ in LeaseLock(client: try server.client(poolSize: 2), pollIntervalMs: 100) }
        let holders = Shared(0), maxHolders = Shared(0), acquired = Shared(0), failures = Shared<[String]>([])
        let workers = locks.map { lock in
            Worker {
                for _ in 0..<rounds {
                    do {
                        guard let handle = try lock.acquire(key: "module@v1.0.0", leaseMs: 10_000, waitMs: 30_000) else {
                            failures.with { $0.append("acquire timed out") }; continue
                        }
                        let now = holders.with { $0 += 1; return $0 }
                        maxHolders.with { $0 = max($0, now) }
                        acquired.with { $0 += 1 }
                        usleep(200)   // holds the lock a moment, so an overlapping holder would be seen; not synchronisation
                        holders.with { $0 -= 1 }
                        if try !lock.release(handle) { failures.with { $0.append("release lost the lock") } }
                    } catch {
                        failures.with { $0.append("\(error)") }
                    }
                }
            }
        }
        for worker in workers { #expect(worker.wait(timeout: 120)) }
        #expect(failures.get == [])
        #expect(acquired.get == threads * rounds)
        #expect(maxHolders.get == 1)
    }

    @Test func refreshExtendsTheLease() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let lock = LeaseLock(client: client)
        let handle = try #require(try lock.acquire(key: "k", leaseMs: 2000, waitMs: 0))
        let ttl = try #require(try client.command(["PTTL", "athens:lock:k"]).integer)
        #expect(ttl > 0 && ttl <= 2000)
        #expect(try lock.refresh(handle, leaseMs: 60_000))
        let extended = try #require(try client.command(["PTTL", "athens:lock:k"]).integer)
        #expect(extended > 50_000)
        #expect(try lock.acquire(key: "k", leaseMs: 1000, waitMs: 0) == nil)
        #expect(try lock.release(handle))
        #expect(try client.command(["EXISTS", "athens:lock:k"]) == .integer(0))
        #expect(try lock.release(handle) == false)  // twice: nothing left to release
    }

    @Test func aDeadHoldersLockExpiresAndTheLostHandleIsPowerless() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let lock = LeaseLock(client: client, pollIntervalMs: 5000)
        // The "dead" holder: takes a short lease and never refreshes it.
        let dead = try #require(try lock.acquire(key: "mod", leaseMs: 300, waitMs: 0))
        #expect(try lock.acquire(key: "mod", leaseMs: 10_000, waitMs: 0) == nil)
        let started = Date()
        // The waiter's BLPOP is bounded by the holder's PTTL, so it notices the expiry without a release.
        let next = try #require(try lock.acquire(key: "mod", leaseMs: 10_000, waitMs: 10_000))
        let waited = Date().timeIntervalSince(started)
        #expect(waited < 3, "took \(waited)s to notice the expiry")
        #expect(next.token != dead.token)
        // The lost handle can neither extend nor delete the new holder's lock.
        #expect(try lock.refresh(dead, leaseMs: 60_000) == false)
        #expect(try lock.release(dead) == false)
        #expect(try client.command(["GET", "athens:lock:mod"]) == .bulk(bytes(next.token)))
        let ttl = try #require(try client.command(["PTTL", "athens:lock:mod"]).integer)
        #expect(ttl <= 10_000)
        #expect(try lock.release(next))
    }

    @Test func waitersWakeOnRelease() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let observer = try server.client()
        // A 10 s poll interval and 60 s lease: only the release's wake-up can end the wait within the bound.
        let lock = LeaseLock(client: try server.client(), pollIntervalMs: 10_000)
        var latencies: [Double] = []
        for round in 0..<5 {
            let holder = try #require(try lock.acquire(key: "wake", leaseMs: 60_000, waitMs: 0))
            let woke = Shared<Date?>(nil)
            let waiter = Worker {
                if let handle = try? lock.acquire(key: "wake", leaseMs: 60_000, waitMs: 30_000) {
                    woke.with { $0 = Date() }
                    _ = try? lock.release(handle)
                }
            }
            #expect(waitUntil { clientsIn("blpop", observer) == 1 }, "round \(round)")
            let released = Date()
            #expect(try lock.release(holder))
            #expect(waiter.wait())
            let at = try #require(woke.get)
            latencies.append(at.timeIntervalSince(released))
        }
        print("LeaseLock wake-up latency after release (ms): \(latencies.map { Double(Int($0 * 10_000)) / 10 })")
        #expect(latencies.allSatisfy { $0 < 1.0 }, "\(latencies)")
    }

    @Test func aReleaseBeforeTheWaiterBlocksIsNotLost() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let lock = LeaseLock(client: client, pollIntervalMs: 10_000)
        let holder = try #require(try lock.acquire(key: "race", leaseMs: 60_000, waitMs: 0))
        #expect(try lock.release(holder))
        // The wake-up token stays in the list for whoever blocks next.
        #expect(try client.command(["LLEN", "athens:wake:race"]) == .integer(1))
        let other = try #require(try lock.acquire(key: "race", leaseMs: 60_000, waitMs: 0))
        let started = Date()
        let acquired = Shared<Result<Bool, any Error>>(.success(false))
        let waiter = Worker {
            let outcome = Result { try lock.acquire(key: "race", leaseMs: 1000, waitMs: 20_000) != nil }
            acquired.with { $0 = outcome }
        }
        // The stale token wakes the waiter once; it finds the lock held and blocks again (no spin).
        #expect(waitUntil { clientsIn("blpop", client) == 1 })
        #expect(try client.command(["LLEN", "athens:wake:race"]) == .integer(0))
        #expect(try lock.release(other))
        #expect(waiter.wait())
        #expect(Date().timeIntervalSince(started) < 8)
        #expect(try acquired.get.get(), "the waiter got the lock once it was released")
    }

    @Test func waitZeroTriesOnceAndWaitIsBounded() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let lock = LeaseLock(client: client, pollIntervalMs: 50)
        let holder = try #require(try lock.acquire(key: "busy", leaseMs: 60_000, waitMs: 0))
        func blpopCalls() throws -> Int {
            let info = try client.command(["INFO", "commandstats"]).string ?? ""
            guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_blpop:") }),
                  let calls = line.split(separator: ",").first?.split(separator: "=").last else { return 0 }
            return Int(calls) ?? 0
        }
        let blpopsBefore = try blpopCalls()
        let t0 = Date()
        #expect(try lock.acquire(key: "busy", leaseMs: 1000, waitMs: 0) == nil)
        #expect(Date().timeIntervalSince(t0) < 1)
        #expect(try blpopCalls() == blpopsBefore)  // no waiting at all
        let t1 = Date()
        #expect(try lock.acquire(key: "busy", leaseMs: 1000, waitMs: 400) == nil)
        let waited = Date().timeIntervalSince(t1)
        #expect(waited >= 0.39 && waited < 1.4, "\(waited)")
        #expect(try lock.release(holder))
        #expect(try lock.acquire(key: "busy", leaseMs: 1000, waitMs: 0) != nil)
    }

    @Test func scriptsSurviveAScriptFlush() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let lock = LeaseLock(client: client)
        let handle = try #require(try lock.acquire(key: "s", leaseMs: 5000, waitMs: 0))
        #expect(try lock.refresh(handle, leaseMs: 5000))  // loads the script, EVALSHA
        try client.command(["SCRIPT", "FLUSH"])
        #expect(try lock.refresh(handle, leaseMs: 5000))  // NOSCRIPT → EVAL
        #expect(try lock.release(handle))
    }

    @Test func namespacesDoNotBlockEachOther() throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try server.client()
        let a = LeaseLock(client: client, prefix: "athens:a:"), b = LeaseLock(client: client, prefix: "athens:b:")
        let held = try #require(try a.acquire(key: "m", leaseMs: 5000, waitMs: 0))
        let other = try #require(try b.acquire(key: "m", leaseMs: 5000, waitMs: 0))
        #expect(try b.release(held) == false)  // a's handle means nothing in b's namespace
        #expect(try a.release(held) && b.release(other))
    }

    @Test func badArgumentsAndRedisDown() throws {
        let server = try RedisServer()
        let lock = LeaseLock(client: try server.client())
        for (key, lease, wait) in [("", 1000, 0), ("k", 0, 0), ("k", -5, 0), ("k", 1000, -1), ("k", 100_000_000, 0)] {
            #expect(throws: RedisError.self) { try lock.acquire(key: key, leaseMs: lease, waitMs: wait) }
        }
        server.stop()
        do { _ = try lock.acquire(key: "k", leaseMs: 1000, waitMs: 1000); Issue.record("acquired without redis") } catch {
            guard case .unavailable = error else { Issue.record("\(error)"); return }
        }
    }
}
