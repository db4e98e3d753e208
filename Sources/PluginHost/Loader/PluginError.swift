import HostSupport
import PluginABI

/// A failure reported by a plugin call, or a plugin breaking the contract.
package struct PluginError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Broad class of failure; `DownloadError.init(_:module:version:)` maps it to an HTTP status in one table.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let raw: UInt32
        /// Not in this backend / upstream. C: `ATH_NOT_FOUND`.
        package static let notFound = Code(raw: ATH_NOT_FOUND.rawValue)
        /// The version was already stored. C: `ATH_ALREADY_EXISTS`.
        package static let alreadyExists = Code(raw: ATH_ALREADY_EXISTS.rawValue)
        /// Malformed arguments, config or data. C: `ATH_INVALID`.
        package static let invalid = Code(raw: ATH_INVALID.rawValue)
        /// Transient failure of an upstream or a disk. C: `ATH_UNAVAILABLE`.
        package static let unavailable = Code(raw: ATH_UNAVAILABLE.rawValue)
        /// A deadline passed. C: `ATH_TIMEOUT`.
        package static let timeout = Code(raw: ATH_TIMEOUT.rawValue)
        /// The call's context was cancelled (waiters gone, shutdown). C: `ATH_CANCELLED` (1.1).
        package static let cancelled = Code(raw: ATH_CANCELLED.rawValue)
        /// Anything else, including status codes the host does not know. C: `ATH_INTERNAL`.
        package static let `internal` = Code(raw: ATH_INTERNAL.rawValue)
        /// The plugin broke the ABI contract (e.g. returned OK without filling its result).
        package static let contractViolation = Code(raw: .max)

        /// Reads a C status; unknown codes are `internal`.
        package init(_ status: ath_status) {
            switch status {
            case ATH_NOT_FOUND, ATH_ALREADY_EXISTS, ATH_INVALID, ATH_UNAVAILABLE, ATH_TIMEOUT, ATH_CANCELLED: raw = status.rawValue
            default: raw = ATH_INTERNAL.rawValue
            }
        }

        private init(raw: UInt32) { self.raw = raw }

        package var description: String {
            switch self {
            case .notFound: "not found"
            case .alreadyExists: "already exists"
            case .invalid: "invalid"
            case .unavailable: "unavailable"
            case .timeout: "timeout"
            case .cancelled: "cancelled"
            case .contractViolation: "contract violation"
            default: "internal"
            }
        }
    }

    package var code: Code
    /// The plugin as named in the manifest, or by its descriptor when the manifest gives a file path: the name
    /// clients may see.
    package var plugin: String
    /// e.g. "storage.open".
    package var operation: String
    /// Copied out of `ath_error` before the call returned.
    package var message: String
    /// The shared library's path: for the server log only, never for a client (it tells them the file layout).
    package var library: String = ""

    package init(code: Code, plugin: String, operation: String, message: String, library: String = "") {
        (self.code, self.plugin, self.operation, self.message, self.library) = (code, plugin, operation, message, library)
    }

    /// For logs: names the library file too, when known.
    package var description: String { "\(plugin) \(operation): \(code): \(message)" + (library.isEmpty ? "" : " (\(library))") }
}

extension ath_error {
    /// An empty error buffer.
    package static func empty() -> ath_error {
        var error = ath_error()
        error.message.0 = 0
        return error
    }

    /// The message the plugin wrote, bounded even if it forgot the terminating NUL.
    package var text: String {
        withUnsafeBytes(of: message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
