import HostSupport
import PluginHost

/// A failed download request: the HTTP status and the one-line message the client sees.
package struct DownloadError: Error, Equatable, CustomStringConvertible {
    package var status: Int
    package var message: String

    package init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    /// The one table from plugin failures to HTTP statuses. `notFound` → 404 so `GOPROXY=a,b` falls
    /// through; transient upstream or disk trouble → 502/504; broken plugins → 500 (details logged only).
    package init(_ error: PluginError, module: String, version: String?) {
        if error.code != .notFound {
            Metrics.shared.pluginError(plugin: error.plugin, operation: error.operation, code: error.code.description)
        }
        switch error.code {
        case .notFound:
            status = 404
            message = "not found: " + error.message
        case .unavailable, .invalid:
            status = 502
            message = "\(error.plugin) unavailable: " + error.message
        case .timeout:
            status = 504
            message = "\(error.plugin) timed out: " + error.message
        case .cancelled:
            // Nobody was waiting for it any more, or the host is stopping: whoever asks next starts afresh.
            status = 503
            message = "\(error.plugin) cancelled: " + error.message
        case .contractViolation:
            // A plugin's broken answer (e.g. a blob range past its file's end) is a bad gateway, not our bug;
            // the details, with the library's path, go to the log only.
            status = 502
            message = "\(error.plugin) unavailable: it gave an invalid answer to \(error.operation) (see the server log)"
            Log.error("\(error) [\(module)\(version.map { "@" + $0 } ?? "")]")
        default:
            status = 500
            message = "internal error (see the server log)"
            Log.error("\(error) [\(module)\(version.map { "@" + $0 } ?? "")]")
        }
    }

    package var description: String { "\(status) \(message)" }

    package var response: Response { .text(status, message) }
}
