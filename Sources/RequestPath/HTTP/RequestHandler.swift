import HostSupport
import PluginHost

/// Answers requests. Called on an event-loop thread: it must not block (hand slow work to a pool).
package protocol RequestHandler: AnyObject, Sendable {
    /// Answer through `responder` exactly once, now or later, from any thread.
    func handle(_ request: Request, responder: Responder)
    /// What to do with the body of a request whose head has just been read, before any body byte is: called on the
    /// event loop for every request with a body, so refusals (401, 404, 405, 413) never buffer a byte of it.
    func plan(_ request: Request) -> BodyPlan
}

extension RequestHandler {
    /// Read it into memory (within `RequestLimits.maxBodyBytes`, or 413).
    package func plan(_ request: Request) -> BodyPlan { .buffer }
}

/// What the connection does with a request body (`RequestHandler.plan`).
package enum BodyPlan {
    /// Read it whole into memory, at most `RequestLimits.maxBodyBytes` (413 past it), then `handle`.
    case buffer
    /// Answer this now, read none of the body, and close the connection after the answer.
    case refuse(Response)
    /// Hand the bytes to the sink as they arrive (the request's `bodySink`), then `handle` once all have arrived.
    case stream(any BodySink)
}

/// Takes a streamed body piece by piece on the event loop; only bounded, non-blocking-ish work there (a file write).
package protocol BodySink: AnyObject, Sendable {
    /// Takes the next bytes; false refuses the rest, and the request is answered with `refusal` (and closed).
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The answer after `write` returned false.
    var refusal: Response { get }
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
