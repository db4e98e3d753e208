import HostSupport
import PluginHost

/// Delivers the response to one request back to its connection's event loop.
package struct Responder: Sendable {
    private let loop: EventLoop?
    private let fd: Int32
    private let generation: UInt64
    /// Receives the response instead of a connection (set only by `init(sink:)`).
    private let sink: (@Sendable (Response) -> Void)?
    /// Metrics label given to responses that carry none.
    package private(set) var endpoint = "other"

    init(loop: EventLoop, fd: Int32, generation: UInt64) {
        self.loop = loop
        self.fd = fd
        self.generation = generation
        sink = nil
    }

    /// A responder with no connection: the response goes to `sink` (fuzz/ drives the router with it).
    package init(sink: @escaping @Sendable (Response) -> Void) {
        loop = nil
        fd = -1
        generation = 0
        self.sink = sink
    }

    /// The same responder, labelling its response with `endpoint`.
    package func tagged(_ endpoint: String) -> Responder {
        var copy = self
        copy.endpoint = endpoint
        return copy
    }

    /// The signal that this request's client hung up, for a job that waits on its behalf off the loop; nil without
    /// a connection. - Important: call on the event loop, while handling the request (elsewhere it is nil).
    package func clientHangUp() -> ClientHangUp? { loop?.hangUpSignal(fd: fd, generation: generation) }

    /// Sends `response`. Safe from any thread; a response for a connection that has gone is dropped.
    package func respond(_ response: consuming Response) {
        // Consumed, not borrowed, down to the connection: a Response copy retains every field (callgrind).
        var response = response
        if response.endpoint == "other" { response.endpoint = endpoint }
        if let sink { return sink(response) }
        loop?.deliver(fd: fd, generation: generation, response: response)
    }
}
