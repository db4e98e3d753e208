import HostSupport

/// What the request path needs of the storage: the seam between the download protocol or the stash and
/// whatever keeps modules. `StoragePlugin` (a loaded plugin's C table) is the production implementation;
/// tests use in-memory fakes, so routing, modes and the stash are tested without `dlopen`.
///
/// Every method may be called from any thread, concurrently; all but `open` may block.
package protocol Storage: AnyObject, Sendable {
    /// The name the manifest uses for it (clients may see it in error messages).
    var name: String { get }
    /// Where its code lives (a plugin's library path), for server logs only; "" when in-process.
    var origin: String { get }
    /// One stored file; throws `.notFound` when the version is not stored. Quick: called on the event loop.
    func open(module: String, version: String, artifact: Artifact) throws(PluginError) -> Blob
    /// Saves a version atomically; the zip is `zipSize` bytes of `zipFD` from offset 0. A version already
    /// stored is a success (it is there either way).
    /// `call` is the request's context (deadline, cancellation, request id), as for every blocking method.
    func save(module: String, version: String, info: [UInt8], mod: [UInt8], zipFD: Int32, zipSize: UInt64, call: CallContext) throws(PluginError)
    /// Whether the version is completely stored.
    func exists(module: String, version: String, call: CallContext) throws(PluginError) -> Bool
    /// Every stored version of `module`, unsorted.
    func list(module: String, call: CallContext) throws(PluginError) -> [String]
    /// Deletes a version.
    func remove(module: String, version: String, call: CallContext) throws(PluginError)
    /// Whether `catalog` is implemented.
    var hasCatalog: Bool { get }
    /// One catalog page; `next` is "" on the last page.
    func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginError) -> (entries: [(module: String, version: String)], next: String)
    /// A time-limited URL clients can GET the stored file from instead of the host serving it (ABI 1.1 `url`,
    /// for `"serve": "redirect"`), or nil to serve the bytes: declined, not stored, or failed (the storage logs
    /// why). Quick: called on the event loop.
    func url(module: String, version: String, artifact: Artifact) -> (url: String, validSeconds: Int)?
}

extension Storage {
    /// No URLs: every file is served as bytes (storages without the ABI 1.1 `url` entry).
    package func url(module: String, version: String, artifact: Artifact) -> (url: String, validSeconds: Int)? { nil }
}

/// The blocking methods without a context of the caller's: the thread's request id, no deadline, cancelled only
/// at shutdown. Call sites with a deadline or a flight to cancel pass a `CallContext`.
extension Storage {
    package func save(module: String, version: String, info: [UInt8], mod: [UInt8], zipFD: Int32, zipSize: UInt64) throws(PluginError) {
        try save(module: module, version: version, info: info, mod: mod, zipFD: zipFD, zipSize: zipSize, call: CallContext())
    }
    package func exists(module: String, version: String) throws(PluginError) -> Bool { try exists(module: module, version: version, call: CallContext()) }
    package func list(module: String) throws(PluginError) -> [String] { try list(module: module, call: CallContext()) }
    package func remove(module: String, version: String) throws(PluginError) { try remove(module: module, version: version, call: CallContext()) }
    package func catalog(token: String, pageSize: Int) throws(PluginError) -> (entries: [(module: String, version: String)], next: String) {
        try catalog(token: token, pageSize: pageSize, call: CallContext())
    }
}

/// What the stash and the download protocol need of a fetcher: the seam in front of upstreams.
/// `FetcherPlugin` is the production implementation; tests use in-memory fakes.
///
/// Every method may be called from any thread, concurrently, and may block for long: never on the event loop.
package protocol Fetcher: AnyObject, Sendable {
    /// The name the manifest uses for it.
    var name: String { get }
    /// Where its code lives (a plugin's library path), for server logs only; "" when in-process.
    var origin: String { get }
    /// Fetches module@version (canonical) into the three sinks; a sink answering false refuses more bytes.
    /// `call` is the request's context (deadline, cancellation, request id), as for every method.
    func fetch(module: String, version: String, info: FetchSink, mod: FetchSink, zip: FetchSink, call: CallContext) throws(PluginError)
    /// The versions the source knows (unsorted, may include junk: the caller filters).
    func list(module: String, call: CallContext) throws(PluginError) -> [String]
    /// Resolves a query ("latest", branch, commit, version) to the .info JSON of a canonical version,
    /// at most `limit` bytes.
    func resolve(module: String, query: String, limit: Int, call: CallContext) throws(PluginError) -> [UInt8]
}

/// Receives fetched bytes; returns false to refuse more (the fetcher must then fail).
package typealias FetchSink = (UnsafeRawBufferPointer) -> Bool

/// The methods without a context of the caller's (see the `Storage` extension).
extension Fetcher {
    package func fetch(module: String, version: String, info: FetchSink, mod: FetchSink, zip: FetchSink) throws(PluginError) {
        try fetch(module: module, version: version, info: info, mod: mod, zip: zip, call: CallContext())
    }
    package func list(module: String) throws(PluginError) -> [String] { try list(module: module, call: CallContext()) }
    package func resolve(module: String, query: String, limit: Int) throws(PluginError) -> [UInt8] {
        try resolve(module: module, query: query, limit: limit, call: CallContext())
    }
    /// `resolve` with the host's bound for an .info (64 KiB).
    package func resolve(module: String, query: String, call: CallContext = CallContext()) throws(PluginError) -> [UInt8] {
        try resolve(module: module, query: query, limit: 1 << 16, call: call)
    }
}
