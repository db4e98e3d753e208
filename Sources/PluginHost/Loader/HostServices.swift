import Basics
import FoundationEssentials
import Glibc
import HostSupport
import PluginABI

/// The host services of ABI 1.1 (`ath_host`), handed to `create_with_host`.
///
/// One `ath_host` per plugin name, built at the first instance and never freed: the ABI lets a plugin keep the
/// pointer until every instance created with it is destroyed, and plugin code stays mapped for the process anyway
/// (never unloaded), so a few hundred bytes per distinct plugin is the whole cost. Its `host_ctx` is the plugin's
/// name, so a line logged from a plugin's own thread still says which plugin wrote it.
package enum HostServices {
    /// The host's version text (`ath_host.version`); set by the composition root before any plugin is created.
    package nonisolated(unsafe) static var version = "0.0.0"
    /// Longest message kept from one `log` call, in bytes; longer ones are cut (a plugin may log anything).
    package static let messageLimit = 4096

    private static let lock = PosixLock()
    private nonisolated(unsafe) static var hosts: [String: UnsafeMutablePointer<ath_host>] = [:]

    /// The `ath_host` for plugin `name`, the same pointer for every instance of it.
    package static func host(for name: String) -> UnsafePointer<ath_host> {
        lock.withLock {
            if let host = hosts[name] { return UnsafePointer(host) }
            let host = UnsafeMutablePointer<ath_host>.allocate(capacity: 1)
            host.initialize(to: ath_host(
                struct_size: UInt32(MemoryLayout<ath_host>.size), abi_minor: ATH_ABI_MINOR,
                name: UnsafePointer(strdup("athens")!), version: UnsafePointer(strdup(version)!),
                host_ctx: UnsafeMutableRawPointer(strdup(name)!), log: logEntry,
                reader_size: UInt32(MemoryLayout<ath_reader>.size), sink_size: UInt32(MemoryLayout<ath_sink>.size),
                error_size: UInt32(MemoryLayout<ath_error>.size), reserved: 0))
            hosts[name] = host
            return UnsafePointer(host)
        }
    }

    /// `ath_host.log`: one line in the host's log (its format), tagged with the plugin and, on a thread that works
    /// for a request, that request's id. Any thread; never fails.
    private static let logEntry: @convention(c) (UnsafeMutableRawPointer?, ath_log_level, UnsafePointer<CChar>) -> Void = { context, level, message in
        let plugin = context.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? ""
        var fields = [("plugin", plugin)]
        let request = CrashReporter.currentRequest()
        if !request.isEmpty { fields.append(("request_id", request)) }
        Log.at(HostServices.level(level), HostServices.bounded(message), fields)
    }

    /// The plugin's level as the host's; levels the ABI does not know read as debug.
    package static func level(_ level: ath_log_level) -> Log.Level {
        switch level {
        case ATH_LOG_ERROR: .error
        case ATH_LOG_WARNING: .warning
        case ATH_LOG_INFO: .info
        default: .debug
        }
    }

    /// At most `messageLimit` bytes of `message` (cut at a character, marked with "…"), invalid UTF-8 repaired.
    /// Newlines and control bytes are escaped by `Log`, so a line stays one line.
    package static func bounded(_ message: UnsafePointer<CChar>) -> String {
        let length = strnlen(message, messageLimit + 1)
        let bytes = UnsafeRawBufferPointer(start: message, count: min(length, messageLimit))
        let text = String(decoding: bytes, as: UTF8.self)
        guard length > messageLimit else { return text }
        // The cut may split a character: drop the replacement character it leaves.
        return String(text.unicodeScalars.last == "\u{FFFD}" ? text.dropLast() : Substring(text)) + "…"
    }
}
