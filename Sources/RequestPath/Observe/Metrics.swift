import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc

/// The process's metrics, served at /metrics in the Prometheus text format (version 0.0.4).
///
/// Counters and histograms live behind one lock: an increment is a few nanoseconds uncontended, and
/// the event loops touch it once per request. Gauges (pool queues, open connections) are read from
/// their owners at scrape time through `gauges`.
package final class Metrics: @unchecked Sendable {
    /// The process-wide registry (Prometheus registries are process-wide by convention).
    package static let shared = Metrics()

    /// Upper bounds of the latency histograms, in seconds.
    package static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

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

    /// One endpoint's request figures, found with one hash lookup per request (no key string is built):
    /// an endpoint sees a handful of status codes and cache results, so those are short lists.
    private struct EndpointStats {
        var codes: [(code: Int, count: UInt64)] = []
        var seconds = Histogram()
        var cache: [(result: String, count: UInt64)] = []
    }

    private let lock = PosixLock()
    private var endpoints: [String: EndpointStats] = [:]
    private var responseBytes: UInt64 = 0
    private var fetches: [String: UInt64] = [:]           // "fetcher\tresult"
    private var fetchSeconds: [String: Histogram] = [:]   // fetcher
    private var pluginErrors: [String: UInt64] = [:]      // "plugin\toperation\tcode"
    private var lockFallbacks: [String: UInt64] = [:]     // "lock\tcause"
    private var leasesLost: [String: UInt64] = [:]        // "lock"
    private var adminRequests: [String: UInt64] = [:]     // "action\tresult"
    private var ingestVerifications: [String: UInt64] = [:]  // result
    private var retentionEvictions: [String: UInt64] = [:] // reason
    private var gaugeSources: [@Sendable () -> [(name: String, labels: String, value: Double)]] = []

    /// Adds a source of gauges read at every scrape.
    package func addGauges(_ source: @escaping @Sendable () -> [(name: String, labels: String, value: Double)]) {
        lock.withLock { gaugeSources.append(source) }
    }

    package func request(endpoint: String, status: Int, seconds: Double, bytes: UInt64, cacheResult: String?) {
        lock.lock()
        Self.count(&endpoints[endpoint, default: EndpointStats()], status: status, seconds: seconds, cacheResult: cacheResult)
        responseBytes += bytes
        lock.unlock()
    }

    private static func count(_ stats: inout EndpointStats, status: Int, seconds: Double, cacheResult: String?) {
        if let i = stats.codes.firstIndex(where: { $0.code == status }) { stats.codes[i].count += 1 } else { stats.codes.append((status, 1)) }
        stats.seconds.observe(seconds)
        if let cacheResult {
            if let i = stats.cache.firstIndex(where: { $0.result == cacheResult }) { stats.cache[i].count += 1 } else { stats.cache.append((cacheResult, 1)) }
        }
    }

    package func fetch(fetcher: String, result: String, seconds: Double) {
        lock.lock()
        fetches[fetcher + "\t" + result, default: 0] += 1
        fetchSeconds[fetcher, default: Histogram()].observe(seconds)
        lock.unlock()
    }

    package func pluginError(plugin: String, operation: String, code: String) {
        lock.lock()
        pluginErrors[plugin + "\t" + operation + "\t" + code, default: 0] += 1
        lock.unlock()
    }

    /// A stash that went on with local single-flight only because its lock backend failed (`cause`: the error code).
    package func lockFallback(lock name: String, cause: String) {
        lock.withLock { lockFallbacks[name + "\t" + cause, default: 0] += 1 }
    }

    /// A held lock lost while its fetch ran (`LeaseKeeper`): the fetch went on.
    package func lockLeaseLost(lock name: String) {
        lock.withLock { leasesLost[name, default: 0] += 1 }
    }

    /// One admin API call (`result`: ok, dry-run, unauthorized, bad-request, conflict, not-supported, error).
    package func admin(action: String, result: String) {
        lock.withLock { adminRequests[action + "\t" + result, default: 0] += 1 }
    }

    /// One ingest verification against the checksum database (`result`: see IngestVerifier).
    package func ingestVerify(result: String) {
        lock.withLock { ingestVerifications[result, default: 0] += 1 }
    }

    /// Versions retention removed (`reason`: age, lru), on demand or on its schedule.
    package func retentionEvicted(reason: String, count: Int) {
        lock.withLock { retentionEvictions[reason, default: 0] += UInt64(count) }
    }

    /// The exposition text.
    package func render() -> String {
        lock.lock()
        let (endpoints, responseBytes, fetches, fetchSeconds, pluginErrors, gaugeSources) =
            (self.endpoints, self.responseBytes, self.fetches, self.fetchSeconds, self.pluginErrors, self.gaugeSources)
        lock.unlock()
        var requests: [String: UInt64] = [:], requestSeconds: [String: Histogram] = [:], cache: [String: UInt64] = [:]
        for (endpoint, stats) in endpoints {
            for (code, count) in stats.codes { requests[endpoint + "\t" + String(code)] = count }
            requestSeconds[endpoint] = stats.seconds
            for (result, count) in stats.cache { cache[endpoint + "\t" + result] = count }
        }
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
        counter("athens_http_requests_total", "HTTP requests by endpoint and status code.", requests, ["endpoint", "code"])
        histogram("athens_http_request_duration_seconds", "Time from a request's head to its last byte written.", requestSeconds, "endpoint")
        out += "# HELP athens_http_response_bytes_total Body bytes sent.\n# TYPE athens_http_response_bytes_total counter\nathens_http_response_bytes_total \(responseBytes)\n"
        counter("athens_cache_requests_total", "Stored-file requests by artifact and result (hit: served from storage or memory; miss: fetched).", cache, ["artifact", "result"])
        counter("athens_fetches_total", "Fetches (fetch, validate, save) by fetcher and result.", fetches, ["fetcher", "result"])
        histogram("athens_fetch_duration_seconds", "Duration of fetch, validate and save.", fetchSeconds, "fetcher")
        counter("athens_lock_fallback_total", "Stashes that fell back to local single-flight because the lock backend failed, by lock and cause.",
                lock.withLock { self.lockFallbacks }, ["lock", "cause"])
        counter("athens_lock_lease_lost_total", "Held locks lost while their fetch ran (the fetch finished regardless), by lock.",
                lock.withLock { self.leasesLost }, ["lock"])
        counter("athens_admin_requests_total", "Admin API calls by action and result.", lock.withLock { self.adminRequests }, ["action", "result"])
        counter("athens_ingest_verify_total", "Fetched versions checked against the checksum database before storing, by result.",
                lock.withLock { self.ingestVerifications }, ["result"])
        counter("athens_retention_evicted_total", "Versions retention removed, by reason (age, lru).", lock.withLock { self.retentionEvictions }, ["reason"])
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
    package static func escape(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }
}
