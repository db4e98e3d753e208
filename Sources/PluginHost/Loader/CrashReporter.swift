import HostSupport
import SystemShims

/// Makes a crash say where it happened: one line on stderr naming the plugin, the entry in flight (with its
/// module@version) and the request id, then the default action (core dump or death).
///
/// The handler is C (SystemShims/crash_report.c) because only async-signal-safe calls are allowed there: it
/// write()s bytes prepared before the crash and nothing else. Every plugin call records itself in a thread-local
/// buffer around the call (`during`): a copy of a label formatted once per plugin instance, no allocation.
/// plugin-check also arms the FAIL row of the check that is running, printed on stdout.
package enum CrashReporter {
    /// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT. Idempotent.
    package static func install() { athens_crash_install() }

    /// Runs one plugin call, recorded as in flight on this thread for the crash line.
    @inline(__always)
    package static func during<R>(_ label: CallLabel, module: UnsafePointer<CChar>? = nil, version: UnsafePointer<CChar>? = nil,
                          _ call: () throws -> R) rethrows -> R {
        label.bytes.withUnsafeBufferPointer { athens_crash_enter($0.baseAddress, $0.count, module, version) }
        defer { athens_crash_leave() }
        return try call()
    }

    /// Records the request this thread now works for ("" clears it).
    package static func setRequest(_ id: String) {
        var id = id
        id.withUTF8 { $0.withMemoryRebound(to: CChar.self) { athens_crash_set_request($0.baseAddress, $0.count) } }
    }

    /// The request this thread works for, to carry it to another thread.
    package static func currentRequest() -> String {
        var buffer = [CChar](repeating: 0, count: 160)
        let length = athens_crash_request(&buffer, buffer.count)
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// plugin-check: prepares the row printed on stdout (`row` + "CRASH\n") if the process dies during a check.
    package static func arm(row: String) {
        let prefix = Array(row.utf8)
        prefix.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { athens_crash_arm_row($0.baseAddress, $0.count) } }
    }

    /// No check is running: a crash now prints no row.
    package static func disarm() { athens_crash_arm_row(nil, 0) }
}

/// How the crash line names one entry of one plugin instance, e.g. `storage "FileStorage" entry open`;
/// formatted once, when the instance is created.
package struct CallLabel: Sendable {
    package let bytes: [CChar]

    package init(kind: String, plugin: String, entry: String) {
        // Quoted and bounded: a plugin name is the manifest's text.
        bytes = Array("\(kind) \"\(plugin.prefix(200))\" entry \(entry)".utf8).map { CChar(bitPattern: $0) }
    }

    /// plugin-check's label: its operation text (e.g. "storage.open example.com/m@v1.0.0 .zip"), as is.
    package init(plugin operation: String) {
        bytes = Array("plugin-check call \(operation)".utf8).map { CChar(bitPattern: $0) }
    }
}
