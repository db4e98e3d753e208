// athens: a Go module proxy whose storage and fetchers are plugins loaded with dlopen.
//
// Process entry: arguments, manifest, signals; Assembly.swift is the composition root. A request's path
// through the layers, outer to inner (each a folder of Sources/RequestPath, then Sources/PluginHost):
//   HTTP: the server (epoll loops, limits, timeouts, keep-alive; AccessLog + Metrics see every request)
//   → SwappableHandler → Download: Router (auth; /metrics, /healthz, /readyz, /version, /catalog, /sumdb/…;
//     else a DownloadRequest: the one URL parser) → DownloadProtocol: route (rules) → memory cache →
//     storage.open on the loop; a hit is served at once
//   → on a miss, the download mode; sync: WorkerPool (bounded; full → 503) → Stash: the stasher chain
//     (a timed wait on the manifest's wrappers; fetches on stash pool workers) → FetchingStasher (route's
//     fetchers → spool → validate → storage.save)
//   → storage.open → response. Storage and fetchers are the `Storage`/`Fetcher` protocols of PluginHost.
import Basics
import FoundationEssentials
import HostSupport
import PluginCheck
import PluginHost
import RequestPath
import Glibc
import PluginABI
import SystemShims

let athensVersion = "0.1.0"
HostServices.version = athensVersion  // what plugins read in ath_host.version

// Memory: at most two malloc arenas (glibc's default is 8 per core, and each of ~40 worker threads kept
// freed pages in its own), and a fixed mmap threshold, so a freed large buffer (a fetched zip) goes back
// to the kernel instead of raising the threshold and staying on a heap. Warm FileStorage pass: 48.7 → 41.9 MiB.
athens_malloc_tune(2, 256 << 10)

/// Prints one line and exits non-zero: every start-up failure ends here.
func fail(_ message: String) -> Never {
    FileDescriptor.writeAll(2, "athens: " + message + "\n")
    PluginStore.shared.removeCopies()
    exit(1)
}

let usage = """
usage: athens [--config FILE] [--listen ADDR] [--version]
  --config FILE   JSON manifest (see README.md); without it a working default is used
  --listen ADDR   overrides the manifest's listen address, e.g. 127.0.0.1:3000
"""

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "plugin-check" { exit(PluginCheck.run(Array(CommandLine.arguments.dropFirst(2)))) }
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "admin" { exit(AdminCommand.run(Array(CommandLine.arguments.dropFirst(2)))) }
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
    .map { $0.deletingLastPathComponent } ?? FileManager.default.currentDirectoryPath

/// Reads the manifest (the file, or the default), then the environment and the command line over it.
func readManifest(configPath: String?, listenOverride: String?) throws(ManifestError) -> Manifest {
    var manifest: Manifest
    if let configPath {
        guard let data = FileManager.default.contents(atPath: configPath) else { throw ManifestError("\(configPath): cannot read the manifest") }
        manifest = try Manifest.parse(Array(data), pluginDirectory: executableDirectory)
    } else {
        manifest = Manifest.defaultManifest(pluginDirectory: executableDirectory)
    }
    try manifest.applyEnvironment(ProcessInfo.processInfo.environment)
    if let listenOverride { manifest.listen = listenOverride }
    do {
        _ = try HTTPServer.parseListen(manifest.listen)
    } catch {
        throw ManifestError(error.description)
    }
    return manifest
}

func applyLogSettings(_ manifest: Manifest) {
    Log.level = manifest.logLevel == "debug" ? .debug : manifest.logLevel == "error" ? .error : .info
    Log.json = manifest.logFormat == "json"
}

// A crash (in a plugin or not) prints one line naming the plugin call in flight and the request first.
CrashReporter.install()

let manifest: Manifest
let assembly: Assembly
do {
    manifest = try readManifest(configPath: configPath, listenOverride: listenOverride)
    applyLogSettings(manifest)
    assembly = try Assembly(manifest, version: athensVersion)
} catch let error as ManifestError {
    fail(error.description)
} catch {
    fail("\(error)")
}
let listenHost = (try? HTTPServer.parseListen(manifest.listen).host) ?? "127.0.0.1"

// Many clients mean many descriptors: raise the soft limit to the hard one, as nginx does.
var descriptorLimit = rlimit()
if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &descriptorLimit) == 0, descriptorLimit.rlim_cur < descriptorLimit.rlim_max {
    descriptorLimit.rlim_cur = descriptorLimit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &descriptorLimit)
}

// SIGPIPE would kill the process when a client goes away mid-response; errors are handled instead.
signal(SIGPIPE, SIG_IGN)
// SIGTERM, SIGINT and SIGHUP are taken by the main thread with sigwait (below); blocked here so that
// every thread started from now on (event loops, workers, plugin threads) inherits the mask. The
// dispositions are reset too, since a parent may have started us with them ignored.
var controlSignals = sigset_t()
sigemptyset(&controlSignals)
for signalNumber in [SIGTERM, SIGINT, SIGHUP] {
    sigaddset(&controlSignals, signalNumber)
    signal(signalNumber, SIG_DFL)
}
pthread_sigmask(SIG_BLOCK, &controlSignals, nil)

let handler = SwappableHandler(assembly)
Metrics.shared.addGauges { handler.assembly.gauges() }
let server = HTTPServer(settings: manifest.server, handler: handler,
                        observer: AccessLog(format: manifest.logFormat == "json" ? .json : .logfmt, enabled: manifest.accessLog))
Metrics.shared.addGauges { [
    ("athens_http_connections", "", Double(server.connectionCount)),
    ("athens_http_requests_in_flight", "", Double(server.inFlight)),
    ("athens_http_connections_refused_total", "reason=\"client_cap\"", Double(server.limiter.refusedPerClient.load(ordering: .relaxed))),
    ("athens_http_connections_refused_total", "reason=\"full\"", Double(server.limiter.refusedFull.load(ordering: .relaxed))),
    ("athens_http_connections_evicted_total", "", Double(server.limiter.evicted.load(ordering: .relaxed))),
] }
do {
    try server.bind()
} catch {
    fail(error.description)
}
server.start()
Log.info("listening", [("address", listenHost), ("port", String(server.port)), ("version", athensVersion),
                       ("storage", assembly.storage.name), ("fetchers", assembly.fetchers.map(\.name).joined(separator: ",")),
                       ("mode", manifest.downloadMode.rawValue), ("network", manifest.networkMode.rawValue)])
// The first line on stdout tells scripts and tests the port (useful with port 0).
FileDescriptor.writeAll(1, "listening on \(listenHost.contains(":") ? "[\(listenHost)]" : listenHost):\(server.port)\n")

while true {
    var received: Int32 = 0
    sigwait(&controlSignals, &received)
    if received == SIGHUP {
        // Reload: a new assembly from the manifest as it is now; in-flight requests finish on the old one.
        do {
            let next = try readManifest(configPath: configPath, listenOverride: listenOverride)
            if next.listen != manifest.listen || next.server.threads != manifest.server.threads {
                Log.info("reload: listen and server.threads take effect only on restart")
            }
            let fresh = try Assembly(next, version: athensVersion)
            applyLogSettings(next)
            let previous = handler.swap(to: fresh)
            previous.retire()
            Log.info("reloaded", [("storage", fresh.storage.name), ("fetchers", fresh.fetchers.map(\.name).joined(separator: ","))])
        } catch let error as ManifestError {
            Log.error("reload refused, keeping the running configuration", [("cause", error.description)])
        } catch {
            Log.error("reload refused, keeping the running configuration", [("cause", "\(error)")])
        }
        continue
    }
    // Graceful stop: no new connections; in-flight requests finish (up to the timeout); then exit 0.
    Log.info("stopping", [("signal", String(received)), ("in_flight", String(server.inFlight))])
    server.beginShutdown()
    let deadline = Date().addingTimeInterval(manifest.shutdownTimeout)
    // Background stashes (async modes) finish too, so nothing half-fetched is abandoned needlessly.
    func busy() -> Bool {
        let background = handler.assembly.background.load
        return server.inFlight > 0 || background.waiting + background.running > 0
    }
    while busy() && Date() < deadline { usleep(20_000) }
    if busy() {
        // Past the timeout: cancel every plugin call's context (1.1 plugins poll it, 1.0 fetchers meet a refusing
        // sink), and give them a moment to return what they hold before the process goes.
        CallContext.cancelAll()
        let grace = Date().addingTimeInterval(2)
        while busy() && Date() < grace { usleep(20_000) }
    }
    if server.inFlight > 0 { Log.error("shutdown timeout: abandoning requests", [("in_flight", String(server.inFlight))]) }
    // The downloads marked since the last flush reach the access journal (retention reads them after a restart).
    handler.assembly.accesses?.stop()
    PluginStore.shared.removeCopies()
    exit(0)
}
