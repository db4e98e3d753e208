import Basics
import Foundation
import Synchronization
import Testing

/// Basics replaces what the host and plugins used from libFoundation.so; the tests may still link Foundation, so
/// each helper is compared with the Foundation call it replaced, on inputs that include the awkward cases.
@Suite("Basics: the Foundation replacements give Foundation's answers", .blockingBodies)
struct BasicsTests {
    static let texts = ["", " ", "\t", "plain", "  both ends \t", "\u{00A0}nbsp\u{2003}", "\r\nline\r\n", "\n\u{2028}x\u{85}\u{0B}",
                        "a\r\nb", "&amp;&lt;&gt;&quot;&#39;", "\\\"\n", "++//==", "---___", "///", "a/b/c/", "日本語 ",
                        "/@v/x/@v/y", "https://u:p@h/x https://h2"]

    @Test("trimmingWhitespace and trimmingNewlines equal trimmingCharacters(in: .whitespaces / .newlines)")
    func trimming() {
        for text in Self.texts {
            #expect(text.trimmingWhitespace == text.trimmingCharacters(in: .whitespaces), "\(text.debugDescription)")
            #expect(text.trimmingNewlines == text.trimmingCharacters(in: .newlines), "\(text.debugDescription)")
            #expect(text.trimming { $0 == "/" } == text.trimmingCharacters(in: CharacterSet(charactersIn: "/")), "\(text.debugDescription)")
        }
    }

    @Test("replacingAll equals replacingOccurrences(of:with:) for the targets the project replaces, \\r inside \\r\\n included")
    func replacing() {
        let targets = ["\r", "\n", "\\", "\"", " ", "&quot;", "&#39;", "&lt;", "&gt;", "&amp;", "+", "/", "=", "-", "_", "/@v/"]
        for text in Self.texts {
            for target in targets {
                for replacement in ["", " | ", "\\\\", "-", "xyz"] {
                    #expect(text.replacingAll(target, with: replacement) == text.replacingOccurrences(of: target, with: replacement),
                            "\(text.debugDescription) \(target.debugDescription)")
                }
            }
        }
        #expect("aaa".replacingAll("aa", with: "b") == "ba")
    }

    /// NSString matched whole composed sequences, so an ASCII target followed by a combining mark was not found:
    /// a `"` before U+0301 stayed unescaped in a quoted label. Bytes do not skip it, on purpose.
    @Test("an ASCII target followed by a combining mark is still found (NSString skipped it)")
    func combiningMarks() {
        let text = "a\"\u{301}b/\u{301}c"
        #expect(text.replacingAll("\"", with: "\\\"") == "a\\\"\u{301}b/\u{301}c")
        #expect(text.firstByteRange(of: "/").map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) } == 5)
        #expect(text.lastByteRange(of: "\"").map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) } == 1)
    }

    @Test("percentEncoded equals addingPercentEncoding for ASCII allowed sets, non-ASCII bytes encoded")
    func percentEncoding() {
        let pathAllowed: (UInt8) -> Bool = { $0.isASCIIAlphanumeric || "!$&'()*+,-./:=@_~".utf8.contains($0) }
        // With a leading "/", as RepoFinder's paths have: Foundation also encodes a ":" in a relative first segment.
        for text in (Self.texts + ["a b?c#d%e", "example.com/x y", "ü"]).map({ "/" + $0 }) {
            #expect(text.percentEncoded(allowing: pathAllowed) == text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed),
                    "\(text.debugDescription)")
        }
        #expect("v1.0.0+incompatible/é".percentEncoded { $0.isASCIIAlphanumeric || "-._~/".utf8.contains($0) } == "v1.0.0%2Bincompatible/%C3%A9")
    }

    @Test("fixed(n) equals String(format: \"%.nf\"), rounding and signs included")
    func fixedDecimals() {
        for value in [0, 0.05, 0.15, 0.25, 1.0005, 2.5, -0.04, -1.25, 123456.789, 1e20, 0.0004999, .infinity, -.infinity, .nan] {
            #expect(value.fixed(1) == String(format: "%.1f", value))
            #expect(value.fixed(3) == String(format: "%.3f", value))
        }
        #expect(1e300.fixed(3) == String(format: "%.3f", 1e300), "longer than the first buffer")
    }

    @Test("firstByteRange and lastByteRange find what range(of:) and range(of:options: .backwards) find")
    func byteRanges() {
        for text in Self.texts {
            for target in ["://", "/@v/", "/", "\n", "x"] {
                let first = text.range(of: target), last = text.range(of: target, options: .backwards)
                #expect(text.firstByteRange(of: target).map { text[$0] } == first.map { text[$0] }, "\(text.debugDescription) \(target)")
                #expect(text.firstByteRange(of: target).map { text.distance(from: text.startIndex, to: $0.lowerBound) }
                        == first.map { text.distance(from: text.startIndex, to: $0.lowerBound) })
                #expect(text.lastByteRange(of: target).map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }
                        == last.map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }, "\(text.debugDescription) \(target)")
            }
        }
        #expect("ab".firstByteRange(of: "") == nil && "a".lastByteRange(of: "abc") == nil)
    }

    @Test("deletingLastPathComponent and temporaryDirectory equal NSString's and NSTemporaryDirectory's")
    func paths() {
        // Not "a" or "a/": NSString traps on a relative path of one component (swift-corelibs-foundation 6.3.1).
        for path in ["/a/b/c", "/a/b/", "/a", "/", "a/b", "", "/a//", "/proc/self/exe"] {
            #expect(path.deletingLastPathComponent == (path as NSString).deletingLastPathComponent, "\(path.debugDescription)")
        }
        #expect("a".deletingLastPathComponent == "" && "a/".deletingLastPathComponent == "")
        #expect(temporaryDirectory() == NSTemporaryDirectory())
    }

    @Test("systemDescription gives the errno text of a FileManager failure")
    func errorText() {
        #expect(throws: Error.self) { try FileManager.default.createDirectory(atPath: "/proc/none/x", withIntermediateDirectories: true) }
        do {
            _ = try FileManager.default.contentsOfDirectory(atPath: "/no/such/directory")
            Issue.record("listing a missing directory succeeded")
        } catch {
            #expect(error.systemDescription == String(cString: strerror(ENOENT)))
        }
    }

    @Test("PosixCondition: a timed wait times out, a signal wakes a waiter, the lock excludes")
    func condition() {
        let condition = PosixCondition()
        condition.lock()
        let start = ContinuousClock.now
        #expect(!condition.wait(seconds: 0.05))
        #expect(ContinuousClock.now - start >= .milliseconds(45))
        condition.unlock()

        nonisolated(unsafe) var ready = false
        let woke = Atomic<Bool>(false)
        PosixThread.start(name: "test-waiter") {
            condition.lock()
            while !ready { condition.wait() }
            condition.unlock()
            woke.store(true, ordering: .releasing)
        }
        condition.withLock { ready = true; condition.broadcast() }
        #expect(waitUntil { woke.load(ordering: .acquiring) })

        let lock = PosixLock()
        nonisolated(unsafe) var counter = 0
        let finished = Atomic<Int>(0)
        for index in 0..<4 {
            PosixThread.start(name: "test-counter-\(index)") {
                for _ in 0..<10_000 { lock.withLock { counter += 1 } }
                finished.add(1, ordering: .releasing)
            }
        }
        #expect(waitUntil { finished.load(ordering: .acquiring) == 4 })
        #expect(lock.withLock { counter } == 40_000)
    }

    @Test("PosixThread names its thread (15 bytes kept) and sleep waits about as long as asked")
    func threadName() throws {
        let name = Mutex<String?>(nil)
        PosixThread.start(name: "athens-test-thread-long") {
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            let comm = fd < 0 ? nil : FileDescriptor.readToEnd(fd)
            if fd >= 0 { close(fd) }
            name.withLock { $0 = comm.map { String(decoding: $0, as: UTF8.self) } ?? "" }
        }
        #expect(waitUntil { name.withLock { $0 } != nil })
        #expect(name.withLock { $0 } == "athens-test-thr\n")
        let start = ContinuousClock.now
        PosixThread.sleep(seconds: 0.05)
        #expect(ContinuousClock.now - start >= .milliseconds(45))
    }
}
