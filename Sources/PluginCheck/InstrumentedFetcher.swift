import Basics
import HostSupport
import PluginHost
import FoundationEssentials
import Glibc
import GoModule
import PluginABI

/// Where a fetcher's bytes go during a check: memory (small files) or an unlinked spool file (zips),
/// with a running FNV-1a hash so two fetches can be compared without keeping both.
package final class SinkRecorder: @unchecked Sendable {
    /// Bytes accepted before the sink refuses more.
    package let limit: UInt64
    /// Refuse the first non-empty write (to check that the fetcher then stops and fails).
    package let refuseFirstWrite: Bool
    private let spool: Spool?
    private let lock = PosixLock()
    private var inFlight = false
    package private(set) var bytes: [UInt8] = []
    package private(set) var size: UInt64 = 0
    package private(set) var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    package private(set) var refused = false
    /// Writes the fetcher made after the sink refused one (the ABI says it must stop).
    package private(set) var writesAfterRefusal = 0
    package private(set) var overlapped = false
    package private(set) var spoolFailed = false

    /// A sink into memory, or into a spool file when `spoolDirectory` is given.
    package init(limit: UInt64, refuseFirstWrite: Bool = false, spoolDirectory: String? = nil) throws {
        self.limit = limit
        self.refuseFirstWrite = refuseFirstWrite
        if let spoolDirectory {
            do {
                spool = try Spool(directory: spoolDirectory)
            } catch {
                throw CheckFailure("cannot create a spool file: \(error.message)")
            }
        } else {
            spool = nil
        }
    }

    /// The spool's fd (zip sinks only).
    package var fd: Int32? { spool?.fd }

    fileprivate func write(_ data: UnsafePointer<UInt8>, _ length: UInt64) -> Int32 {
        lock.lock()
        if inFlight { overlapped = true }
        inFlight = true
        lock.unlock()
        defer { lock.withLock { inFlight = false } }
        if refused {
            writesAfterRefusal += 1
            return 1
        }
        if length == 0 { return 0 }
        if refuseFirstWrite || size + length > limit {
            refused = true
            return 1
        }
        let buffer = UnsafeRawBufferPointer(start: data, count: Int(length))
        if let spool {
            guard spool.append(buffer) else { spoolFailed = true; refused = true; return 1 }
        } else {
            bytes += buffer
        }
        for byte in buffer { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        size += length
        return 0
    }

    /// Calls `body` with an `ath_sink` over this recorder, valid for the call only.
    package func withSink<R>(_ body: (UnsafePointer<ath_sink>) -> R) -> R {
        let context = Unmanaged.passRetained(self)
        defer { context.release() }
        var sink = ath_sink(write: { ctx, data, length in
            Unmanaged<SinkRecorder>.fromOpaque(ctx!).takeUnretainedValue().write(data, length)
        }, ctx: context.toOpaque())
        return withUnsafePointer(to: &sink) { body($0) }
    }
}

/// A fetcher plugin instance called through its C table directly, with error buffers audited.
package final class InstrumentedFetcher: @unchecked Sendable {
    private let created: PluginInstance
    private let methods: ath_fetcher_methods
    private var instance: UnsafeMutableRawPointer? { created.pointer }
    /// Error-buffer violations.
    package let errors = ErrorAudit()
    /// Sink misuse: writes after a refusal, overlapping writes.
    package let sinkProblems = ProblemLog()
    /// Where zips are spooled.
    package let spoolDirectory: String

    /// Creates an instance of a fetcher plugin with `configJSON`.
    package init(library: PluginLibrary, configJSON: String, spoolDirectory: String) throws(PluginError) {
        created = try PluginInstance(library: library, configJSON: configJSON, name: nil, expected: .fetcher)
        methods = library.fetcherMethods!
        self.spoolDirectory = spoolDirectory
    }

    /// The three files of one fetch.
    package struct Fetched {
        package var info: SinkRecorder
        package var mod: SinkRecorder
        package var zip: SinkRecorder
    }

    /// Fetches into fresh recorders; `refuse` names the sink that refuses its first write.
    package func fetch(_ module: String, _ version: String, refuse: Artifact? = nil) throws -> (fetched: Fetched, error: PluginCallError?) {
        let operation = "fetcher.fetch \(module)@\(version)"
        let fetched = Fetched(info: try SinkRecorder(limit: UInt64(ArtifactValidator.maxInfo), refuseFirstWrite: refuse == .info),
                              mod: try SinkRecorder(limit: ModuleZip.maxGoMod, refuseFirstWrite: refuse == .mod),
                              zip: try SinkRecorder(limit: ModuleZip.maxZipFile, refuseFirstWrite: refuse == .zip, spoolDirectory: spoolDirectory))
        let (status, message) = errors.call(operation) { error in
            fetched.info.withSink { i in
                fetched.mod.withSink { m in
                    fetched.zip.withSink { z in
                        module.withCString { mp in version.withCString { vp in methods.fetch!(instance, mp, vp, i, m, z, error) } }
                    }
                }
            }
        }
        for (name, sink) in [(".info", fetched.info), (".mod", fetched.mod), (".zip", fetched.zip)] {
            if sink.overlapped { sinkProblems.add("\(operation): two writes to the \(name) sink overlapped") }
            if sink.writesAfterRefusal > 0 {
                sinkProblems.add("\(operation): \(sink.writesAfterRefusal) writes to the \(name) sink after it refused one")
            }
        }
        return (fetched, status == ATH_OK ? nil : PluginCallError(operation: operation, status: status, message: message))
    }

    /// The versions the source lists, in its order.
    package func list(_ module: String) throws(PluginCallError) -> [String] {
        let operation = "fetcher.list \(module)"
        let collector = VersionCollector()
        let (status, message) = errors.call(operation) { error in
            module.withCString { methods.list!(instance, $0, VersionCollector.emit, collector.context, error) }
        }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        return collector.versions
    }

    /// The .info JSON a query resolves to.
    package func resolve(_ module: String, _ query: String) throws -> [UInt8] {
        let operation = "fetcher.resolve \(module) \"\(query)\""
        let info = try SinkRecorder(limit: UInt64(ArtifactValidator.maxInfo))
        let (status, message) = errors.call(operation) { error in
            info.withSink { sink in
                module.withCString { m in query.withCString { q in methods.resolve!(instance, m, q, sink, error) } }
            }
        }
        if info.overlapped { sinkProblems.add("\(operation): two writes to the info sink overlapped") }
        guard status == ATH_OK else { throw PluginCallError(operation: operation, status: status, message: message) }
        guard !info.refused else { throw CheckFailure("\(operation): ATH_OK with a .info over \(ArtifactValidator.maxInfo) bytes") }
        return info.bytes
    }
}
