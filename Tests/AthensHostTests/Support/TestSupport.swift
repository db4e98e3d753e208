import Basics
import Foundation
import Testing

/// Paths and helpers shared by the tests.
enum TestSupport {
    /// A port the kernel just handed out for 127.0.0.1 (then released for a server the test starts to bind).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// The package root (tests read fixtures from it).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The folder holding the built products (athens, lib*.so): the test runner sits beside them.
    static let productsDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["ATHENS_PRODUCTS_DIR"] { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The runner may be inside a bundle directory (…/athensPackageTests.xctest/…).
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("libMemoryStorage.so").path), url.path != "/" {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    /// Path of a built plugin, e.g. "MemoryStorage" → …/libMemoryStorage.so.
    static func plugin(_ name: String) -> String { productsDirectory + "/lib" + name + ".so" }

    /// The built athens executable.
    static var athens: String { productsDirectory + "/athens" }

    /// A fresh temporary directory, removed by the caller via `removeDirectory`.
    static func makeTemporaryDirectory(_ label: String = "athens-test") -> String {
        let path = NSTemporaryDirectory() + "/\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes the fixture GOPROXY tree of Tests/Fixtures/make_fixture_proxy.py at `tree` (`flags`: e.g. `--private`,
    /// `--second`); throws with the script's stderr when it fails.
    static func makeFixtureProxy(_ tree: String, _ flags: String...) throws {
        let made = try run("/usr/bin/env", ["python3", packageRoot + "/Tests/Fixtures/make_fixture_proxy.py", tree] + flags)
        guard made.status == 0 else { throw TestFailure("make_fixture_proxy.py \(tree): \(made.stderr)") }
    }

    /// Runs a program to completion; returns exit status, stdout and stderr.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    directory: String? = nil, timeout: Double = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        // Both pipes are drained while the child runs, so a chatty child never blocks on a full pipe.
        let out = try PipeDrain(), err = try PipeDrain()
        process.standardOutput = out.writeEnd
        process.standardError = err.writeEnd
        process.standardInput = FileHandle.nullDevice
        try process.run()
        out.closeWriteEnd()
        err.closeWriteEnd()
        if !waitUntil(timeout: timeout, { !process.isRunning }) {
            process.terminate()
            Issue.record("\(executable) \(arguments) timed out after \(timeout)s")
        }
        process.waitUntilExit()
        // A grandchild that kept the pipes open (a daemon the child started) must not hang the test.
        _ = out.waitForEnd(timeout: 30)
        _ = err.waitForEnd(timeout: 30)
        return (process.terminationStatus, out.text, err.text)
    }

    /// Compiles a C plugin fixture from Tests/Fixtures/CPlugins into `directory`; returns the .so path. The library
    /// appears whole or not at all (compiled beside it, then renamed): a test that finds it never loads half a file.
    static func compileCPlugin(_ source: String, defines: [String] = [], into directory: String, name: String) throws -> String {
        let output = directory + "/" + name
        let partial = directory + "/." + name + "-" + UUID().uuidString
        let result = try run("/usr/bin/cc", ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
                                             "-shared", "-fPIC", "-I", packageRoot + "/Sources/PluginABI/include"]
                             + defines.map { "-D" + $0 } + [packageRoot + "/Tests/Fixtures/CPlugins/" + source, "-o", partial, "-lpthread"])
        guard result.status == 0 else { unlink(partial); throw TestFailure("cc failed: \(result.stderr)") }
        guard rename(partial, output) == 0 else { unlink(partial); throw TestFailure("rename \(partial): errno \(errno)") }
        return output
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass; true when it held. Tests synchronise on
/// conditions through this, never on fixed sleeps: a loaded machine makes the wait longer, never the test wrong.
func waitUntil(timeout: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (athens' /metrics), or nil when there is
/// none. Name and labels must match a line's whole name and label set (`labels` as written between the braces,
/// e.g. `pool="download"`), so `athens_http_connections` never matches `athens_http_connections_evicted_total`
/// and a value is read in full (10 is not 100).
func metric(_ body: String, _ name: String, labels: String = "") -> Double? {
    for line in body.split(separator: "\n") where !line.hasPrefix("#") {
        let chars = Array(line.utf8)
        guard let nameEnd = chars.firstIndex(where: { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: " ") }),
              String(decoding: chars[..<nameEnd], as: UTF8.self) == name else { continue }
        var labelText = "", valueStart = nameEnd
        if chars[nameEnd] == UInt8(ascii: "{") {
            // The closing brace outside a quoted label value (values may hold braces and escaped quotes).
            var i = nameEnd + 1, quoted = false
            while i < chars.count, quoted || chars[i] != UInt8(ascii: "}") {
                if chars[i] == UInt8(ascii: "\\"), quoted { i += 1 } else if chars[i] == UInt8(ascii: "\"") { quoted.toggle() }
                i += 1
            }
            guard i < chars.count else { continue }
            labelText = String(decoding: chars[(nameEnd + 1)..<i], as: UTF8.self)
            valueStart = i + 1
        }
        guard labelText == labels else { continue }
        // `value [timestamp]` after one space.
        let rest = String(decoding: chars[valueStart...], as: UTF8.self)
        guard rest.hasPrefix(" "), let value = rest.dropFirst().split(separator: " ").first else { return nil }
        return Double(value)
    }
    return nil
}

/// A test-setup failure with a message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A pipe whose read end a thread of its own reads to the end (and then closes); the write end goes to a child.
///
/// Not FileHandle's readabilityHandler: its dispatch source could still be registered with libdispatch's epoll
/// when the handle closed the descriptor, and with many tests at once another test's descriptor took the number:
/// libdispatch's event loop crashed the test process (`_dispatch_event_loop_drain`, SIGSEGV). Nor blocking reads
/// on Dispatch's global queue, whose threads the tests' own async work needs.
final class PipeDrain: @unchecked Sendable {   // state guarded by `lock`
    /// For the child's stdout or stderr; close it in the parent once the child runs (`closeWriteEnd`).
    let writeEnd: FileHandle
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe: \(String(cString: strerror(errno)))") }
        // Other tests' children must not inherit either end (an inherited write end would delay the end of file).
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        writeEnd = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
        let readEnd = fds[0]
        let started = PosixThread.start(name: "test-pipe-drain") { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(readEnd, &buffer, buffer.count)
                if count > 0 {
                    lock.lock(); data.append(contentsOf: buffer[0..<count]); lock.unlock()
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(readEnd)
            lock.lock(); ended = true; lock.unlock()
        }
        guard started else { close(readEnd); throw TestFailure("cannot start a pipe-drain thread") }
    }

    func closeWriteEnd() { try? writeEnd.close() }

    /// What was read so far.
    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the end of file (every writer closed); false when `timeout` passed first.
    func waitForEnd(timeout: Double) -> Bool {
        waitUntil(timeout: timeout) { lock.lock(); defer { lock.unlock() }; return ended }
    }
}

/// A child process started by a test and stopped by it (by pid, never by name).
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrDrain: PipeDrain

    /// Starts `executable` and waits for its first stdout line (servers print their address there).
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil) throws {
        stderrDrain = try PipeDrain()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = stdoutPipe
        process.standardError = stderrDrain.writeEnd
        process.standardInput = FileHandle.nullDevice
        try process.run()
        stderrDrain.closeWriteEnd()
    }

    /// Reads stdout until a newline (or EOF / timeout).
    func firstLine(timeout: Double = 30) -> String? {
        let handle = stdoutPipe.fileHandleForReading
        var line = Data()
        let deadline = Date().addingTimeInterval(timeout)
        let fd = handle.fileDescriptor
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                var byte: UInt8 = 0
                let n = read(fd, &byte, 1)
                if n <= 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
                if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            }
        }
        return nil
    }

    /// What the child wrote to stderr so far.
    var stderr: String { stderrDrain.text }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            if !waitUntil(timeout: 5, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        // The last lines the child wrote before it exited (a grandchild holding the pipe must not hang the test).
        _ = stderrDrain.waitForEnd(timeout: 5)
    }

    deinit { stop() }
}

/// The helpers above decide whether other tests pass, so they are checked themselves.
@Suite("test support: metric() and waitUntil")
struct TestSupportTests {
    static let exposition = #"""
    # HELP athens_http_connections Open connections.
    # TYPE athens_http_connections gauge
    athens_http_connections 100
    athens_http_connections_evicted_total 3
    athens_http_connections_refused_total{reason="full"} 7
    athens_pool_running{pool="download"} 4
    athens_pool_running{pool="background"} 0
    athens_odd_total{path="a}b\"c",code="200"} 2.5 1700000000
    athens_http_request_duration_seconds_bucket{endpoint="zip",le="+Inf"} 12

    """#

    @Test("a sample is matched by its whole name and label set and read in full")
    func metricMatchesWholeSamples() {
        let body = Self.exposition
        #expect(metric(body, "athens_http_connections") == 100)
        #expect(metric(body, "athens_http_connections") != 10)
        #expect(metric(body, "athens_http_connections_evicted_total") == 3)
        #expect(metric(body, "athens_http_connections_refused_total") == nil, "labels must match too")
        #expect(metric(body, "athens_http_connections_refused_total", labels: #"reason="full""#) == 7)
        #expect(metric(body, "athens_pool_running", labels: #"pool="download""#) == 4)
        #expect(metric(body, "athens_pool_running", labels: #"pool="background""#) == 0)
        #expect(metric(body, "athens_pool_running", labels: #"pool="down""#) == nil)
        #expect(metric(body, "athens_odd_total", labels: #"path="a}b\"c",code="200""#) == 2.5, "braces and quotes inside a value; a timestamp after")
        #expect(metric(body, "athens_http_request_duration_seconds_bucket", labels: #"endpoint="zip",le="+Inf""#) == 12)
        #expect(metric(body, "athens_http") == nil)
        #expect(metric(body, "HELP") == nil, "comment lines are not samples")
    }

    @Test("waitUntil returns as soon as the condition holds, and false when it never does")
    func waitUntilPolls() {
        var calls = 0
        #expect(waitUntil { calls += 1; return calls == 3 })
        #expect(calls == 3)
        #expect(!waitUntil(timeout: 0.05) { false })
    }
}
