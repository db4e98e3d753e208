import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import PluginABI

/// A plugin call that did not return `ATH_OK`, with the status as the plugin gave it.
package struct PluginCallError: Error, CustomStringConvertible {
    /// e.g. "storage.open example.com/m@v1.0.0 .zip".
    package var operation: String
    package var status: ath_status
    /// The plugin's message (bounded), or the checker's own words for a contract violation.
    package var message: String

    package var isNotFound: Bool { status == ATH_NOT_FOUND }
    package var isAlreadyExists: Bool { status == ATH_ALREADY_EXISTS }
    package var description: String { "\(operation) returned \(Self.name(of: status)): \(message.isEmpty ? "(no message)" : message)" }

    /// The C name of a status, or "status N" for one the ABI does not define.
    static func name(of status: ath_status) -> String {
        switch status {
        case ATH_OK: "ATH_OK"
        case ATH_NOT_FOUND: "ATH_NOT_FOUND"
        case ATH_ALREADY_EXISTS: "ATH_ALREADY_EXISTS"
        case ATH_INVALID: "ATH_INVALID"
        case ATH_UNAVAILABLE: "ATH_UNAVAILABLE"
        case ATH_TIMEOUT: "ATH_TIMEOUT"
        case ATH_INTERNAL: "ATH_INTERNAL"
        case ATH_CANCELLED: "ATH_CANCELLED"
        case ATH_DECLINED: "ATH_DECLINED"
        case ATH_BUSY: "ATH_BUSY"
        default: "status \(status.rawValue)"
        }
    }
}
