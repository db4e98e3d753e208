import HostSupport
import PluginHost

/// Answers requests. Called on an event-loop thread: it must not block (hand slow work to a pool).
package protocol RequestHandler: AnyObject, Sendable {
    /// Answer through `responder` exactly once, now or later, from any thread.
    func handle(_ request: Request, responder: Responder)
}

/// Sees every finished request, on its event loop's thread; appends any log line to `log` (the loop
/// writes the buffer out once per wake-up, not once per request).
package protocol RequestObserver: AnyObject, Sendable {
    func completed(_ record: RequestRecord, log: inout [UInt8])
}

/// What the server knows of a finished request, for logs and metrics.
package struct RequestRecord {
    package var method: Request.Method?
    package var target: String
    package var status: Int
    package var bytes: UInt64
    package var seconds: Double
    package var endpoint: String
    package var cacheResult: String?
    package var requestID: RequestID
    /// False when the connection failed before the response was completely written.
    package var completed: Bool
}
