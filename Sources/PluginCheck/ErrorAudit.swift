import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// Hands each call an `ath_error` laid out to catch the ways a plugin can get error reporting wrong.
///
/// The buffer is filled with a non-NUL byte (so a message without its terminator is seen, not hidden by a
/// zeroed buffer) and followed by a guard zone (so a write past the 512 bytes is seen, and lands in memory
/// the checker owns instead of corrupting the host).
package final class ErrorAudit: @unchecked Sendable {
    /// The fill byte: not NUL, not ASCII.
    package static let fill: UInt8 = 0xA7
    /// Bytes of guard zone after the message buffer.
    package static let guardBytes = 256

    /// Every violation seen, across threads.
    package let problems = ProblemLog()
    private let lock = PosixLock()
    private var audited = 0

    /// Failing calls whose message was inspected.
    package var auditedCalls: Int { lock.withLock { audited } }

    /// Calls `body` with an audited error buffer; returns the status and, on failure, the message text.
    /// `ATH_ALREADY_EXISTS` is a success for the host, so its message is not required.
    package func call(_ operation: String, _ body: (UnsafeMutablePointer<ath_error>) -> ath_status) -> (status: ath_status, message: String) {
        let capacity = Int(ATH_ERROR_MESSAGE_CAPACITY)
        let total = capacity + Self.guardBytes
        let raw = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 16)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: Self.fill, count: total)
        // The operation names the entry and its module@version: a crash line on stderr says which call died.
        let status = CrashReporter.during(CallLabel(plugin: operation)) { body(raw.bindMemory(to: ath_error.self, capacity: 1)) }
        let bytes = UnsafeRawBufferPointer(start: raw, count: total)
        if status == ATH_OK { return (status, "") }
        let terminator = bytes[0..<capacity].firstIndex(of: 0)
        let message = String(decoding: bytes[0..<(terminator ?? capacity)], as: UTF8.self)
        // Answers, not failures: their message is optional.
        if status == ATH_ALREADY_EXISTS || status == ATH_DECLINED { return (status, message) }
        lock.withLock { audited += 1 }
        if bytes[capacity...].contains(where: { $0 != Self.fill }) {
            problems.add("\(operation): wrote past the \(capacity)-byte ath_error message buffer")
        }
        if terminator == nil {
            problems.add("\(operation): \(PluginCallError.name(of: status)) with a message that is not NUL-terminated within \(capacity) bytes")
        } else if terminator == 0 {
            problems.add("\(operation): \(PluginCallError.name(of: status)) with an empty error message")
        }
        return (status, message)
    }
}
