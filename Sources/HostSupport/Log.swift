import Glibc
import JSON

/// Structured event logs to stderr: logfmt by default, JSON on request. One line per event.
/// Messages never carry credentials: callers pass URLs through `SumDBProxy.redacted`-style scrubbing.
package enum Log {
    package enum Level: Int, Comparable {
        case debug, info, error
        package static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    package nonisolated(unsafe) static var level = Level.info
    package nonisolated(unsafe) static var json = false

    package static var verbose: Bool {
        get { level == .debug }
        set { level = newValue ? .debug : .info }
    }

    package static func info(_ message: String, _ fields: [(String, String)] = []) { write(.info, message, fields) }
    package static func error(_ message: String, _ fields: [(String, String)] = []) { write(.error, message, fields) }
    package static func debug(_ message: String, _ fields: [(String, String)] = []) { write(.debug, message, fields) }

    private static func write(_ level: Level, _ message: String, _ fields: [(String, String)]) {
        guard level >= Self.level else { return }
        let name = level == .debug ? "debug" : level == .info ? "info" : "error"
        let line = Self.line([("ts", timestamp(), true), ("level", name, true), ("msg", message, true)] + fields.map { ($0.0, $0.1, true) }, json: json)
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    /// RFC 3339 UTC with milliseconds.
    package static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(1900 + parts.tm_year)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    /// One line of fields; `quoted` marks string values (JSON strings / logfmt values quoted when needed).
    package static func line(_ fields: [(String, String, Bool)], json: Bool) -> String {
        if json {
            return "{" + fields.map { "\"\($0.0)\":" + ($0.2 ? jsonString($0.1) : $0.1) }.joined(separator: ",") + "}\n"
        }
        return fields.map { $0.0 + "=" + logfmtValue($0.1) }.joined(separator: " ") + "\n"
    }

    private static func logfmtValue(_ value: String) -> String {
        let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: "\\") }
        return plain ? value : jsonString(value)
    }

    /// A JSON string literal; control characters escaped, so a line is always one line.
    package static func jsonString(_ value: String) -> String { JSONValue.quoted(value) }
}
