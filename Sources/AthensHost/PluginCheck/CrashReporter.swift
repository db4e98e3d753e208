import Glibc

/// Turns a crash inside the plugin into a FAIL row naming the check that was running.
///
/// plugin-check shares its process with the plugin, so a plugin that dereferences a bad pointer or calls
/// abort() ends the run. Before each check, `arm` prepares the row that check would print if the process
/// dies; the signal handler only write()s those prepared bytes (nothing else is async-signal-safe), puts
/// back the handler it replaced (Swift's backtracer, or the default) and lets the signal take its course.
enum CrashReporter {
    /// The fatal signals a plugin bug raises.
    static let signals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT]
    private static let capacity = 4096
    // Written only by the thread that runs the checks, between checks; read by the handler.
    private nonisolated(unsafe) static var row = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    private nonisolated(unsafe) static var rowLength = 0
    private nonisolated(unsafe) static var names = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 65)
    private nonisolated(unsafe) static var previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)

    /// Installs the handler for every signal in `signals`, remembering the ones it replaces.
    static func install() {
        for signal in signals {
            let name = "\(signalName(signal)) in the plugin: the process died (rows above ran; later checks did not)\n"
            names[Int(signal)] = strdup(name)
            var action = sigaction()
            action.__sigaction_handler = .init(sa_handler: { signal in
                if CrashReporter.rowLength > 0 { _ = write(1, CrashReporter.row, CrashReporter.rowLength) }
                if let name = CrashReporter.names[Int(signal)] { _ = write(1, name, strlen(name)) }
                _ = sigaction(signal, CrashReporter.previous + Int(signal), nil)
                // A fault re-runs its instruction on return and meets the old handler; abort() must be re-raised.
                if signal == SIGABRT { _ = raise(signal) }
            })
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            _ = sigaction(signal, &action, previous + Int(signal))
        }
    }

    /// Prepares the row printed if the process dies during the check `name`.
    static func arm(_ name: String) {
        let prefix = Array(CheckReport.format(name: name, outcome: "FAIL", detail: "CRASH").dropLast("CRASH\n".count).utf8)
        let count = min(prefix.count, capacity)
        rowLength = 0
        prefix.withUnsafeBufferPointer { row.update(from: $0.baseAddress!, count: count) }
        rowLength = count
    }

    /// No check is running: a crash now prints no row.
    static func disarm() { rowLength = 0 }

    private static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGSEGV: "SIGSEGV (bad memory access)"
        case SIGBUS: "SIGBUS (bad memory access)"
        case SIGILL: "SIGILL (illegal instruction, e.g. a trap)"
        case SIGFPE: "SIGFPE (arithmetic fault)"
        case SIGABRT: "SIGABRT (abort)"
        default: "signal \(signal)"
        }
    }
}
