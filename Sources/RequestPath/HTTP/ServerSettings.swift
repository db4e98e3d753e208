import HostSupport

/// Server settings, from the manifest.
package struct ServerSettings: Sendable {
    /// e.g. "127.0.0.1:3000", ":3000", "[::1]:3000"; port 0 picks a free port.
    package var listen = "127.0.0.1:3000"
    /// Event-loop threads; 0 means one per CPU in the affinity mask.
    package var threads = 0
    package var limits = RequestLimits()
    /// Seconds allowed from a request's first byte to the end of its head.
    package var headerTimeout: Double = 10
    /// Seconds a keep-alive connection may sit idle between requests.
    package var idleTimeout: Double = 60
    /// Seconds a response may make no write progress (slow readers, or a stream blob whose storage
    /// gives no bytes) before the connection is closed.
    package var writeTimeout: Double = 60
    /// Open connections allowed in all; near it idle ones are evicted, past it new ones get 503.
    package var maxConnections = 10_000
    /// Open connections allowed from one client address (IPv6: one /64); nil: a tenth of `maxConnections`.
    package var maxConnectionsPerClient: Int?
    /// Threads that pull the bytes of stream blobs (`read`-shaped) off the event loops (not a manifest key).
    package var streamReaders = 4

    /// The per-client cap in force.
    package var perClientCap: Int { min(maxConnections, maxConnectionsPerClient ?? max(1, maxConnections / 10)) }
}

/// Why the server could not start.
package struct ServerError: Error, CustomStringConvertible {
    package var description: String
}
