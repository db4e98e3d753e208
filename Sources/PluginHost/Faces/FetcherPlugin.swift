import HostSupport
import PluginABI

/// A fetcher plugin instance, called through its C table.
///
/// - Important: every method may be called from any thread, concurrently, and may block for long:
///   never call it from the event loop.
package final class FetcherPlugin: Fetcher, @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_fetcher_methods
    /// The plugin's instance pointer, passed first to every call.
    private var instance: UnsafeMutableRawPointer? { created.pointer }
    /// The name the manifest uses for it.
    package var name: String { created.name }
    package var library: PluginLibrary { created.library }
    package var origin: String { created.library.path }

    /// How a crash names each entry (see `CrashReporter`).
    private let labels: (fetch: CallLabel, list: CallLabel, resolve: CallLabel)

    package init(library: PluginLibrary, configJSON: String, name: String? = nil) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: name, expected: .fetcher)
        methods = library.fetcherMethods!
        let plugin = created.name
        labels = (CallLabel(kind: "fetcher", plugin: plugin, entry: "fetch"), CallLabel(kind: "fetcher", plugin: plugin, entry: "list"),
                  CallLabel(kind: "fetcher", plugin: plugin, entry: "resolve"))
    }

    private func failure(_ status: ath_status, _ operation: String, _ error: ath_error) -> PluginError {
        PluginError(code: .init(status), plugin: name, operation: "fetcher." + operation, message: error.text, library: library.path)
    }

    /// Fetches module@version (canonical) into the three sinks: through `fetch_ctx` when the plugin has it, else
    /// 1.0's `fetch`. Either way the sinks refuse more bytes once `call` is cancelled, so a 1.0 fetcher stops at its
    /// next write.
    package func fetch(module: String, version: String, info: FetchSink, mod: FetchSink, zip: FetchSink, call: CallContext) throws(PluginError) {
        var error = ath_error.empty()
        let status = withSink({ !call.isCancelled && info($0) }) { i in
            withSink({ !call.isCancelled && mod($0) }) { m in
                withSink({ !call.isCancelled && zip($0) }) { z in
                    module.withCString { mp in
                        version.withCString { vp in
                            CrashReporter.during(labels.fetch, module: mp, version: vp) {
                                if let twin = methods.fetch_ctx { return call.withCCall { twin(instance, $0, mp, vp, i, m, z, &error) } }
                                return methods.fetch!(instance, mp, vp, i, m, z, &error)
                            }
                        }
                    }
                }
            }
        }
        guard status == ATH_OK else { throw failure(status, "fetch", error) }
    }

    /// The versions the source knows (unsorted, may include junk: the caller filters).
    package func list(module: String, call: CallContext) throws(PluginError) -> [String] {
        var error = ath_error.empty()
        let collector = VersionCollector()
        let status = module.withCString { m in
            CrashReporter.during(labels.list, module: m) {
                if let twin = methods.list_ctx { return call.withCCall { twin(instance, $0, m, VersionCollector.emit, collector.context, &error) } }
                return methods.list!(instance, m, VersionCollector.emit, collector.context, &error)
            }
        }
        guard status == ATH_OK else { throw failure(status, "list", error) }
        return collector.versions
    }

    /// Resolves a query ("latest", branch, commit, version) to the .info JSON of a canonical version.
    package func resolve(module: String, query: String, limit: Int, call: CallContext) throws(PluginError) -> [UInt8] {
        var error = ath_error.empty()
        var info: [UInt8] = []
        var overflow = false
        let status = withSink({ bytes in
            guard info.count + bytes.count <= limit else { overflow = true; return false }
            guard !call.isCancelled else { return false }
            info += bytes
            return true
        }) { sink in
            module.withCString { m in
                query.withCString { q in
                    CrashReporter.during(labels.resolve, module: m, version: q) {
                        if let twin = methods.resolve_ctx { return call.withCCall { twin(instance, $0, m, q, sink, &error) } }
                        return methods.resolve!(instance, m, q, sink, &error)
                    }
                }
            }
        }
        if overflow { throw PluginError(code: .invalid, plugin: name, operation: "fetcher.resolve", message: "info larger than \(limit) bytes") }
        guard status == ATH_OK else { throw failure(status, "resolve", error) }
        return info
    }
}

/// Calls `body` with an `ath_sink` that forwards to `sink`; the sink is valid only during `body`.
package func withSink<R>(_ sink: FetchSink, _ body: (UnsafePointer<ath_sink>) -> R) -> R {
    withoutActuallyEscaping(sink) { escapable in
        var closure = escapable
        return withUnsafeMutablePointer(to: &closure) { context in
            var cSink = ath_sink(write: { ctx, data, length in
                let forward = ctx!.assumingMemoryBound(to: FetchSink.self).pointee
                return forward(UnsafeRawBufferPointer(start: data, count: Int(length))) ? 0 : 1
            }, ctx: UnsafeMutableRawPointer(context))
            return withUnsafePointer(to: &cSink) { body($0) }
        }
    }
}
