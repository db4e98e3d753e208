// athens: a Go module proxy whose storage and fetchers are plugins loaded with dlopen.
//
// Composition root. A request's path through the layers, outer to inner:
//   HTTPServer (epoll loops, limits, timeouts, keep-alive)
//   → Router (/healthz, /readyz, /version, else a DownloadRequest: the one URL parser)
//   → DownloadProtocol: storage.open on the loop — a hit is served at once (sendfile for fd blobs)
//   → on a miss: WorkerPool (bounded; full → 503) → FetchingStasher (fetchers in order → spool →
//     validate with the go command's rules → storage.save) → storage.open → response.
import Foundation
import Glibc
import PluginABI

let athensVersion = "0.1.0"

/// Prints one line and exits non-zero: every start-up failure ends here.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("athens: " + message + "\n").utf8))
    exit(1)
}

let usage = """
usage: athens [--config FILE] [--listen ADDR] [--version]
  --config FILE   JSON manifest (see README.md); without it a working default is used
  --listen ADDR   overrides the manifest's listen address, e.g. 127.0.0.1:3000
"""

var configPath: String?
var listenOverride: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--config", "-config_file":
        guard let value = arguments.popFirst() else { fail("--config needs a file") }
        configPath = value
    case "--listen":
        guard let value = arguments.popFirst() else { fail("--listen needs an address") }
        listenOverride = value
    case "--version", "-version":
        print("athens \(athensVersion) (plugin ABI \(ATH_ABI_MAJOR).\(ATH_ABI_MINOR))")
        exit(0)
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        fail("unknown argument \(argument)\n\(usage)")
    }
}

// Plugins are found beside the executable unless the manifest says otherwise.
let executableDirectory = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    .map { ($0 as NSString).deletingLastPathComponent } ?? FileManager.default.currentDirectoryPath

var manifest: Manifest
do {
    if let configPath {
        guard let data = FileManager.default.contents(atPath: configPath) else { fail("\(configPath): cannot read the manifest") }
        manifest = try Manifest.parse(Array(data), pluginDirectory: executableDirectory)
    } else {
        manifest = Manifest.defaultManifest(pluginDirectory: executableDirectory)
    }
    try manifest.applyEnvironment(ProcessInfo.processInfo.environment)
} catch {
    fail(error.description)
}
if let listenOverride { manifest.listen = listenOverride }
let listenHost: String
do {
    listenHost = try HTTPServer.parseListen(manifest.listen).host
} catch {
    fail(error.description)
}
Log.verbose = manifest.logLevel == "debug"

// Plugins: load, check, create. Any failure names the file or the key and stops start-up.
func load(_ use: Manifest.PluginUse, key: String, from manifest: Manifest) -> PluginLibrary {
    do {
        return try PluginLibrary(path: manifest.libraryPath(for: use.plugin))
    } catch {
        fail("\(key): \(error.description)")
    }
}

let storage: StoragePlugin
do {
    let library = load(manifest.storage, key: "storage.plugin", from: manifest)
    guard library.kind == .storage else { fail("storage.plugin: \(library.path) is a \(library.kind) plugin") }
    storage = try StoragePlugin(library: library, configJSON: manifest.storage.configJSON, name: manifest.storage.plugin)
} catch {
    fail("storage.config: \(error.message)")
}

var fetchers: [FetcherPlugin] = []
for (index, fetcher) in manifest.fetchers.enumerated() {
    let library = load(fetcher.use, key: "fetchers[\(index)].plugin", from: manifest)
    guard library.kind == .fetcher else { fail("fetchers[\(index)].plugin: \(library.path) is a \(library.kind) plugin") }
    do {
        fetchers.append(try FetcherPlugin(library: library, configJSON: fetcher.use.configJSON, name: fetcher.name))
    } catch {
        fail("fetchers[\(index)].config: \(error.message)")
    }
}

// SIGPIPE would kill the process when a client goes away mid-response; errors are handled instead.
signal(SIGPIPE, SIG_IGN)
// SIGTERM and SIGINT are taken by the main thread with sigwait (below); blocked here so that every
// thread started from now on (event loops, workers, plugin threads) inherits the mask. The dispositions
// are reset too, since a parent may have started us with them ignored.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
signal(SIGTERM, SIG_DFL)
signal(SIGINT, SIG_DFL)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

// Routing: rules name fetchers by their manifest names (checked when the manifest was read).
var policy = DownloadPolicy(rules: manifest.rules, mode: manifest.downloadMode, downloadURL: manifest.downloadURL,
                            networkMode: manifest.networkMode, noSumPatterns: manifest.noSumPatterns)
for fetcher in fetchers { policy.fetchersByName[fetcher.name] = fetcher }
policy.defaultFetchers = manifest.defaultFetcher.map { [policy.fetchersByName[$0]!] } ?? fetchers

// The stasher chain: the manifest's wrappers in order (the first is the outermost), then the deadline,
// then fetch → validate → save.
var stasher: Stasher = DeadlineStasher(wrapping: FetchingStasher(policy: policy, storage: storage, spoolDirectory: manifest.spoolDirectory),
                                       timeout: manifest.stashTimeout)
for wrapper in manifest.stashWrappers.reversed() {
    switch wrapper {
    case .singleflight: stasher = SingleFlightStasher(wrapping: stasher)
    case let .pool(workers): stasher = PooledStasher(wrapping: stasher, workers: workers)
    }
}

let pool = WorkerPool(name: "download", threads: manifest.downloadWorkers, capacity: manifest.downloadQueue)
let background = WorkerPool(name: "background", threads: max(2, manifest.downloadWorkers / 4), capacity: manifest.downloadQueue)
let download = DownloadProtocol(storage: storage, policy: policy, stasher: stasher, pool: pool, background: background,
                                lists: ListCache(ttl: manifest.listCacheSeconds),
                                cache: ArtifactCache(maxBytes: manifest.cacheMaxBytes, maxFileBytes: manifest.cacheMaxFileBytes))
let sumdb = manifest.sumDBs.isEmpty ? nil : SumDBProxy(databases: manifest.sumDBs, policy: policy, pool: pool)
let server = HTTPServer(settings: manifest.server, handler: Router(download: download, sumdb: sumdb, version: athensVersion))
do {
    try server.bind()
} catch {
    fail(error.description)
}
server.start()
Log.info("athens \(athensVersion) listening on \(listenHost) port \(server.port) storage=\(storage.name) fetchers=\(fetchers.map(\.name).joined(separator: ",")) mode=\(manifest.downloadMode.rawValue) network=\(manifest.networkMode.rawValue)")
// The first line on stdout tells scripts and tests the port (useful with port 0).
FileHandle.standardOutput.write(Data("listening on \(listenHost.contains(":") ? "[\(listenHost)]" : listenHost):\(server.port)\n".utf8))
var received: Int32 = 0
sigwait(&stopSignals, &received)
// Graceful draining of in-flight requests comes with the operations work; for now, stop at once.
Log.info("athens stopping on signal \(received)")
exit(0)
