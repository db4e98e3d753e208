import HostSupport
import PluginHost
import Glibc

/// One line per finished request (logfmt or JSON), plus the request metrics. Runs on the event loops.
package final class AccessLog: RequestObserver {
    package enum Format: String { case logfmt, json }

    package let format: Format
    /// Whether request lines are written at all (metrics are counted either way).
    package let enabled: Bool
    package let metrics: Metrics

    package init(format: Format, enabled: Bool, metrics: Metrics = .shared) {
        self.format = format
        self.enabled = enabled
        self.metrics = metrics
    }

    package func completed(_ record: RequestRecord, log: inout [UInt8]) {
        metrics.request(endpoint: record.endpoint, status: record.status, seconds: record.seconds,
                        bytes: record.completed ? record.bytes : 0, cacheResult: record.cacheResult)
        guard enabled else { return }
        let method = record.method == .head ? "HEAD" : record.method == .get ? "GET" : record.method == .post ? "POST" : "-"
        let milliseconds = (record.seconds * 1e6).rounded() / 1e3
        let fields: [(String, String, Bool)] = [
            ("ts", Log.timestamp(), true), ("level", "info", true), ("msg", "request", true),
            ("request_id", record.requestID.description, true), ("method", method, true), ("path", record.target, true),
            ("status", String(record.status), false), ("bytes", String(record.bytes), false),
            ("duration_ms", String(milliseconds), false), ("endpoint", record.endpoint, true),
            ("cache", record.cacheResult ?? "-", true), ("completed", record.completed ? "true" : "false", false),
        ]
        log += Array(Log.line(fields, json: format == .json).utf8)
    }
}
