// Fuzz target: a request end to end — the bytes of a request head through RequestParser, Router and the
// download protocol (DownloadProtocol, FetchingStasher's validation, the storage) to the response, with an
// in-memory storage and a scripted fetcher behind the real plugin C ABI (fuzz/glue/InMemoryPlugins.swift).
//
// Input: byte 0 picks the configuration (download mode, network mode, a stored version beforehand, downloadURL,
// basic auth); byte 1 what the fetcher does (fetch honest / not found / failing / the input's bytes / lying;
// list; resolve); then the request head; bytes after the head are the fetcher's payload (NUL-separated .info,
// .mod, .zip; list lines). The worker pools run jobs inline (WorkerPool's `inline`), so misses are answered
// on the fuzzing thread. Besides "never traps", checks: exactly one response; its status in the allowed set;
// no 5xx while the fetcher is honest or says "not found" (a request that is merely malformed is never the
// proxy's fault); 502 (504, 500) only for a misbehaving (timing out, broken) fetcher; a 200 file is the stored
// file; whatever is stored passes the go command's checks for exactly that module@version; nothing stored
// beforehand is lost.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GoModule
import PluginABI
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// Where run.sh puts the two plugin shims: beside the binary, in router-plugins/.
private let pluginDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["FUZZ_PLUGIN_DIR"] { return dir }
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    return binary.deletingLastPathComponent().appendingPathComponent("router-plugins").path
}()

/// Loads one of the shims and makes the instance; any failure stops the run before the first input.
private func load<Instance>(_ file: String, _ make: (PluginLibrary) throws -> Instance) -> Instance {
    do {
        return try make(try PluginLibrary(path: pluginDirectory + "/" + file))
    } catch {
        require(false, "loading \(file): \(error)")
        fatalError()
    }
}

private let storage = load("libFuzzStorage.so") { try StoragePlugin(library: $0, configJSON: "{}", name: "memory") }
private let fetcher = load("libFuzzFetcher.so") { try FetcherPlugin(library: $0, configJSON: "{}", name: "upstream") }

// Inline pools: a miss runs on the fuzzing thread, so an input costs no thread hand-offs (about 20x faster).
private let pool = WorkerPool(name: "download", threads: 1, capacity: 8, inline: true)
private let background = WorkerPool(name: "background", threads: 1, capacity: 8, inline: true)
/// Spooled zips go to memory when /dev/shm is there.
private let spool = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()

private func policy(mode: DownloadMode, network: NetworkMode, downloadURL: Bool) -> DownloadPolicy {
    var policy = DownloadPolicy(rules: [
        RoutingRule(patterns: "excluded.example", action: .exclude),
        RoutingRule(patterns: "private.example", action: .private(fetcher: "upstream")),
        RoutingRule(patterns: "orphan.example", action: .private(fetcher: "missing")),
        RoutingRule(patterns: "sync.example", action: .fetch(fetcher: nil), mode: .sync),
    ], mode: mode, downloadURL: downloadURL ? "https://proxy.example/base/" : nil, networkMode: network, noSumPatterns: "nosum.example")
    policy.fetchersByName = ["upstream": fetcher]
    policy.defaultFetchers = [fetcher]
    return policy
}

/// One router per configuration, built once (a SumDBProxy has its own pool and HTTP client); the caches are
/// per input. Each SumDBProxy's one worker is parked (fuzz/glue/BlockedSumDB.swift): every checksum-database
/// forward is refused with 503, so the sumdb routes run without network (what they would forward is the
/// sumdb_path target's business).
private struct Setup {
    let policy: DownloadPolicy
    let stasher: Stasher
    let sumdb: SumDBProxy
}

private let setups: [Setup] = {
    var all: [Setup] = []
    for network in NetworkMode.allCases {
        for mode in DownloadMode.allCases {
            for url in [true, false] {
                let policy = policy(mode: mode, network: network, downloadURL: url)
                // No stash pool: the flight runs the fetch inline, on the fuzzing thread.
                let flight = SingleFlightStasher(wrapping: FetchingStasher(policy: policy, storage: storage, spoolDirectory: spool))
                all.append(Setup(policy: policy, stasher: DeadlineStasher(waitingFor: flight, timeout: 600, abandonGrace: 10, fetchTimeout: 2400),
                                 sumdb: blockedSumDB(names: ["sum.golang.org"], policy: policy)))
            }
        }
    }
    return all
}()

private let auth = BasicAuth(user: "u", password: "p")

/// The version an honest upstream would name for `module` (its major version's first release).
private func honestVersion(_ module: String) -> String? {
    var candidates = ["v1.0.0", "v0.1.0"]
    if let split = ModulePath.splitPathVersion(module) {
        let digits = split.pathMajor.filter(\.isNumber)
        if !digits.isEmpty { candidates.insert("v\(digits).0.0", at: 0) }
    }
    return candidates.first { (try? ModulePath.check(path: module, version: $0)) != nil }
}

private func honestInfo(_ version: String) -> [UInt8] { Array(#"{"Version":"\#(version)","Time":"2024-01-02T03:04:05Z"}"#.utf8) }

/// What byte 1 asks of the fetcher, for `module` (when the request names one), the version the request names
/// (if any) and the payload after the head.
private func script(_ b: UInt8, module: String?, version: String?, payload: [ArraySlice<UInt8>]) -> (FetcherScript, honest: Bool) {
    var script = FetcherScript()
    var honest = true
    let part = { (i: Int) in i < payload.count ? Array(payload[i]) : [] }
    switch b & 7 {
    case 0: script.fetch = .honest
    case 1: script.fetch = .status(ATH_NOT_FOUND)
    case 2: script.fetch = .status(ATH_UNAVAILABLE); honest = false
    case 3: script.fetch = .bytes(info: part(0), mod: part(1), zip: part(2)); honest = false
    case 4: script.fetch = .bytes(info: honestInfo("v9.9.9"), mod: Array("module \(module ?? "x")\n".utf8),
                                  zip: storedZip(name: "\(module ?? "x")@v9.9.9/go.mod", content: [])); honest = false
    case 5: script.fetch = .bytes(info: part(0), mod: Array("module \(module ?? "x")\n".utf8), zip: part(2)); honest = false
    case 6: script.fetch = .status(ATH_TIMEOUT); honest = false
    default: script.fetch = .status(ATH_INTERNAL); honest = false
    }
    switch b >> 3 & 3 {
    case 0: script.list = []
    case 1: script.list = nil
    case 2: script.list = ["v1.0.0", "v1.1.0-pre", "v0.0.0-20240102030405-abcdefabcdef", "junk", "v2.0.0+incompatible", ""]
        + (module.flatMap(honestVersion).map { [$0] } ?? [])
    default:
        script.list = String(decoding: part(0), as: UTF8.self).split(separator: "\n").map(String.init)
        honest = false
    }
    switch b >> 5 {
    case 0: script.resolve = nil
    // An honest upstream resolves a real query (a branch, "latest", "v1") to the module's version, but a version
    // in canonical form (a v2.0.0 of a path without /v2: only its +incompatible twin could answer) it does not have.
    case 1: script.resolve = version.map { ModulePath.canonicalVersion($0) == $0 } == true ? nil : module.flatMap(honestVersion).map(honestInfo)
    case 2: script.resolve = honestInfo("v1.0"); honest = false
    case 3: script.resolve = part(0); honest = false
    case 4: script.resolve = Array(#"{"Version":"v1.2.3","Time":null}"#.utf8); honest = false
    case 5: script.resolve = honestInfo("v0.0.0-20240102030405-abcdefabcdef"); honest = false
    case 6: script.resolve = honestInfo("v2.0.0+incompatible"); honest = false
    default: script.resolve = Array("not json".utf8); honest = false
    }
    return (script, honest)
}

/// Collects the responses of one request (from the caller's thread or a pool's).
private final class Answers: @unchecked Sendable {
    let lock = NSLock()
    var responses: [Response] = []
    let arrived = DispatchSemaphore(value: 0)
}

/// Waits until both pools have nothing queued or running (their jobs may still store after answering).
private func settle() {
    while true {
        let a = pool.load, b = background.load
        if a.waiting == 0 && a.running == 0 && b.waiting == 0 && b.running == 0 { return }
        sched_yield()
    }
}

private func bodyBytes(_ body: Response.Body) -> [UInt8] {
    switch body {
    case .empty: return []
    case let .bytes(bytes): return bytes
    case let .blob(blob): return blob.readAll(limit: 1 << 30) ?? []
    }
}

/// One unlinked file in the spool directory, rewritten for each stored zip checked.
private let storedSpool = unlinkedTemporaryFile(in: spool, prefix: "athens-router-fuzz")

/// The checks a stored version must pass: what the stasher claims to have verified before saving.
private func checkStored(_ module: String, _ version: String, _ files: FuzzStorageState.Version) {
    require(ModulePath.canonicalVersion(version) == version, "stored non-canonical version \(version.debugDescription)")
    require((try? ModulePath.check(path: module, version: version)) != nil, "stored \(module)@\(version), an invalid pair")
    require((try? ArtifactValidator.checkInfo(files.info, version: version)) != nil, "stored a bad .info for \(module)@\(version)")
    // checkMod also asserts the .mod's module directive is exactly the requested path.
    require((try? ArtifactValidator.checkMod(files.mod, module: module)) != nil, "stored a bad .mod for \(module)@\(version)")
    require(GoModFile.modulePath(files.mod) == module, "stored a .mod whose module is not \(module)")
    // The zip read in full (local headers, inflate, CRC-32), as the stasher reads its spool before saving.
    rewrite(storedSpool, with: files.zip)
    require((try? ArtifactValidator.checkZip(fd: storedSpool, size: UInt64(files.zip.count), module: module, version: version)) != nil,
            "stored a zip that is not \(module)@\(version)'s")
}

/// FUZZ_VERBOSE=1 prints each request's status (for checking what the seeds reach).
private let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

private let allowed: Set<Int> = [200, 302, 400, 401, 403, 404, 500, 502, 503, 504]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 2 else { return 0 }
    let bytes = inputBytes(data, size)
    let config = bytes[0], fetcherByte = bytes[1]
    let head = bytes[2...]
    let parsed = head.withUnsafeBytes { RequestParser.parse($0, limits: RequestLimits()) }
    guard case let .request(request, consumed) = parsed else { return 0 } // the request_parser target covers these
    let payload = splitInput(Array(head.dropFirst(consumed)), on: 0, limit: 3)

    let choice = Int(config & 0x0F) % 15
    let setup = setups[(choice / 5) * 10 + (choice % 5) * 2 + (config & 0x20 == 0 ? 0 : 1)]
    let withAuth = config & 0x40 != 0
    let download = DownloadRequest.parse(request.path)
    var module: String?, requestedVersion: String?
    if case let .success(parsedRequest) = download {
        module = parsedRequest.module
        if case let .file(_, version) = parsedRequest.kind { requestedVersion = version }
    }
    let (fetcherScript, honest) = script(fetcherByte, module: module, version: requestedVersion, payload: payload)
    setFetcherScript(fetcherScript)

    fuzzStorage.reset()
    var before: [(String, String)] = []
    if config & 0x10 != 0, let module {
        // A version stored beforehand: the requested one when canonical, else the module's honest version.
        var version = honestVersion(module)
        if case let .success(r) = download, case let .file(_, v) = r.kind, ModulePath.canonicalVersion(v) == v,
           (try? ModulePath.check(path: module, version: v)) != nil { version = v }
        if let version {
            fuzzStorage.put(module, version, honestFiles(module: module, version: version))
            before.append((module, version))
        }
    }

    let protocolForInput = DownloadProtocol(storage: storage, policy: setup.policy, stasher: setup.stasher, pool: pool, background: background,
                                            lists: ListCache(ttl: 60), cache: ArtifactCache(maxBytes: 1 << 20, maxFileBytes: 1 << 16))
    let router = Router(download: protocolForInput, sumdb: setup.sumdb, version: "fuzz", auth: withAuth ? auth : nil)
    let answers = Answers()
    router.handle(request, responder: Responder { response in
        answers.lock.withLock { answers.responses.append(response) }
        answers.arrived.signal()
    })
    require(answers.arrived.wait(timeout: .now() + 20) == .success, "no response within 20 s to \(request.target.debugDescription)")
    settle()
    let responses = answers.lock.withLock { answers.responses }
    require(responses.count == 1, "\(responses.count) responses to \(request.target.debugDescription)")
    let response = responses[0]
    let status = response.status
    let path = String(request.path)
    let isSumDB = path.hasPrefix("/sumdb/")
    if verbose { print(status, request.target, String(decoding: bodyBytes(response.body).prefix(200), as: UTF8.self)) }

    require(allowed.contains(status), "status \(status) for \(request.target.debugDescription)")
    if status == 401 { require(withAuth, "401 without basic auth configured") }
    if status == 503 { require(isSumDB, "503 for \(path.debugDescription) with an idle pool") }
    if status >= 500 && !isSumDB {
        require(!honest, "\(status) for \(request.target.debugDescription) while the fetcher was honest: \(String(decoding: bodyBytes(response.body), as: UTF8.self))")
        // DownloadError's table: unavailable/invalid → 502, timeout → 504, a broken plugin (ATH_INTERNAL) → 500.
        require(status == 502 || (status == 504 && fetcherByte & 7 == 6) || (status == 500 && fetcherByte & 7 == 7),
                "\(status) from a fetcher that answered \(fetcherByte & 7)")
    }
    if status == 302 {
        let location = response.headers.first { $0.name == "Location" }?.value ?? ""
        require(location.hasPrefix("https://proxy.example/base/") && !location.hasPrefix("https://proxy.example/base//"), "302 to \(location.debugDescription)")
        require([.redirect, .asyncRedirect].contains(setup.policy.route(module ?? "").mode), "302 outside the redirect modes")
    }
    // The admin API's prefix is routed before download paths (no module path starts with "admin/"); the fuzzed
    // routers have no admin API, so every such path is its 404.
    let isAdmin = path.hasPrefix("/admin/")
    if isAdmin { require(status == 404, "\(status) for \(path.debugDescription) with the admin API off") }
    if case let .failure(failure) = download, status != 401, !isSumDB, !isAdmin, !["/", "/index.html", "/healthz", "/readyz", "/metrics", "/version", "/catalog"].contains(path) {
        switch failure {
        case .notARoute: require(status == 404, "\(status) for a path that is no route")
        case let .malformed(expected, _): require(status == expected && status < 500, "\(status) for a malformed request (\(expected) expected)")
        }
    }

    // A 200 file is exactly what storage holds.
    if status == 200, case let .success(r) = download, case let .file(artifact, version) = r.kind, ModulePath.canonicalVersion(version) == version {
        guard let files = fuzzStorage.get(r.module, version) else { require(false, "200 for \(r.module)@\(version)\(artifact), which is not stored"); return 0 }
        let expected = artifact == .info ? files.info : artifact == .mod ? files.mod : files.zip
        require(bodyBytes(response.body) == expected, "200 body of \(r.module)@\(version)\(artifact) differs from storage")
    }
    // Nothing stored fails the checks; nothing stored before is lost.
    for entry in fuzzStorage.all() { checkStored(entry.module, entry.version, entry.files) }
    for (module, version) in before { require(fuzzStorage.get(module, version) != nil, "\(module)@\(version) was lost") }
    return 0
}
