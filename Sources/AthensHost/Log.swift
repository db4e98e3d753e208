import Glibc

/// Minimal line logger to stderr (structured request logs come with the operations work).
enum Log {
    nonisolated(unsafe) static var verbose = false

    static func info(_ message: String) { write("info", message) }
    static func error(_ message: String) { write("error", message) }
    static func debug(_ message: String) { if verbose { write("debug", message) } }

    private static func write(_ level: String, _ message: String) {
        // One line per event, whatever the message holds.
        let line = "level=\(level) msg=\"\(message.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\"", with: "'"))\"\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }
}
