import Foundation

/// The process's metrics, served at /metrics in the Prometheus text format (version 0.0.4).
///
/// Counters and histograms live behind one lock: an increment is a few nanoseconds uncontended, and
/// the event loops touch it once per request. Gauges (pool queues, open connections) are read from
/// their owners at scrape time through `gauges`.
final class Metrics: @unchecked Sendable {
    /// The process-wide registry (Prometheus registries are process-wide by convention).
    static let shared = Metrics()

    /// Upper bounds of the latency histograms, in seconds.
    static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    private struct Histogram {
        var counts = [UInt64](repeating: 0, count: Metrics.buckets.count)
        var sum = 0.0
        var count: UInt64 = 0

        mutating func observe(_ seconds: Double) {
            if let index = Metrics.buckets.firstIndex(where: { seconds <= $0 }) { counts[index] += 1 }
            sum += seconds
            count += 1
        }
    }

    /// Key of the per-request counters: a struct, so counting a request builds no string.
    private struct RequestKey: Hashable {
        var endpoint: String
        var code: Int
    }

    private struct CacheKey: Hashable {
        var artifact: String
        var result: String
    }

    private let lock = NSLock()
    private var requests: [RequestKey: UInt64] = [:]
    private var requestSeconds: [String: Histogram] = [:]  // endpoint
    private var responseBytes: UInt64 = 0
    private var cache: [CacheKey: UInt64] = [:]
    private var fetches: [String: UInt64] = [:]           // "fetcher\tresult"
    private var fetchSeconds: [String: Histogram] = [:]   // fetcher
    private var pluginErrors: [String: UInt64] = [:]      // "plugin\toperation\tcode"
    private var gaugeSources: [@Sendable () -> [(name: String, labels: String, value: Double)]] = []

    /// Adds a source of gauges read at every scrape.
    func addGauges(_ source: @escaping @Sendable () -> [(name: String, labels: String, value: Double)]) {
        lock.withLock { gaugeSources.append(source) }
    }

    func request(endpoint: String, status: Int, seconds: Double, bytes: UInt64, cacheResult: String?) {
        lock.lock()
        requests[RequestKey(endpoint: endpoint, code: status), default: 0] += 1
        requestSeconds[endpoint, default: Histogram()].observe(seconds)
        responseBytes += bytes
        if let cacheResult { cache[CacheKey(artifact: endpoint, result: cacheResult), default: 0] += 1 }
        lock.unlock()
    }

    func fetch(fetcher: String, result: String, seconds: Double) {
        lock.lock()
        fetches[fetcher + "\t" + result, default: 0] += 1
        fetchSeconds[fetcher, default: Histogram()].observe(seconds)
        lock.unlock()
    }

    func pluginError(plugin: String, operation: String, code: String) {
        lock.lock()
        pluginErrors[plugin + "\t" + operation + "\t" + code, default: 0] += 1
        lock.unlock()
    }

    /// The exposition text.
    func render() -> String {
        lock.lock()
        let (requests, requestSeconds, responseBytes, cache, fetches, fetchSeconds, pluginErrors, gaugeSources) =
            (self.requests, self.requestSeconds, self.responseBytes, self.cache, self.fetches, self.fetchSeconds, self.pluginErrors, self.gaugeSources)
        lock.unlock()
        var out = ""
        func counter(_ name: String, _ help: String, _ values: [String: UInt64], _ labels: [String]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for key in values.keys.sorted() {
                let parts = key.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                out += name + "{" + zip(labels, parts).map { "\($0)=\"\(Self.escape($1))\"" }.joined(separator: ",") + "} \(values[key]!)\n"
            }
        }
        func histogram(_ name: String, _ help: String, _ values: [String: Histogram], _ label: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for key in values.keys.sorted() {
                let h = values[key]!
                let l = "\(label)=\"\(Self.escape(key))\""
                var cumulative: UInt64 = 0
                for (bound, count) in zip(Self.buckets, h.counts) {
                    cumulative += count
                    out += "\(name)_bucket{\(l),le=\"\(bound)\"} \(cumulative)\n"
                }
                out += "\(name)_bucket{\(l),le=\"+Inf\"} \(h.count)\n\(name)_sum{\(l)} \(h.sum)\n\(name)_count{\(l)} \(h.count)\n"
            }
        }
        counter("athens_http_requests_total", "HTTP requests by endpoint and status code.",
                Dictionary(uniqueKeysWithValues: requests.map { ($0.key.endpoint + "\t" + String($0.key.code), $0.value) }), ["endpoint", "code"])
        histogram("athens_http_request_duration_seconds", "Time from a request's head to its last byte written.", requestSeconds, "endpoint")
        out += "# HELP athens_http_response_bytes_total Body bytes sent.\n# TYPE athens_http_response_bytes_total counter\nathens_http_response_bytes_total \(responseBytes)\n"
        counter("athens_cache_requests_total", "Stored-file requests by artifact and result (hit: served from storage or memory; miss: fetched).",
                Dictionary(uniqueKeysWithValues: cache.map { ($0.key.artifact + "\t" + $0.key.result, $0.value) }), ["artifact", "result"])
        counter("athens_fetches_total", "Fetches (fetch, validate, save) by fetcher and result.", fetches, ["fetcher", "result"])
        histogram("athens_fetch_duration_seconds", "Duration of fetch, validate and save.", fetchSeconds, "fetcher")
        counter("athens_plugin_errors_total", "Plugin calls that failed, by plugin, operation and code.", pluginErrors, ["plugin", "operation", "code"])
        var gauges: [String: [(labels: String, value: Double)]] = [:]
        for source in gaugeSources { for g in source() { gauges[g.name, default: []].append((g.labels, g.value)) } }
        for name in gauges.keys.sorted() {
            let type = name.hasSuffix("_total") ? "counter" : "gauge"
            out += "# TYPE \(name) \(type)\n"
            for g in gauges[name]! {
                let value = g.value == g.value.rounded() && abs(g.value) < 1e15 ? String(Int64(g.value)) : String(g.value)
                out += name + (g.labels.isEmpty ? "" : "{\(g.labels)}") + " " + value + "\n"
            }
        }
        return out
    }

    /// Label values escaped as the text format wants.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
