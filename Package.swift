// swift-tools-version:6.0
// No third-party packages: only the toolchain and system C libraries.
import PackageDescription

let package = Package(
    name: "athens",
    products: [
        .executable(name: "athens", targets: ["AthensHost"]),
        .library(name: "MemoryStorage", type: .dynamic, targets: ["MemoryStorage"]),
        .library(name: "ProxyFetcher", type: .dynamic, targets: ["ProxyFetcher"]),
        .library(name: "FileStorage", type: .dynamic, targets: ["FileStorage"]),
        .library(name: "GitFetcher", type: .dynamic, targets: ["GitFetcher"]),
        .library(name: "S3Storage", type: .dynamic, targets: ["S3Storage"]),
        .library(name: "FileLock", type: .dynamic, targets: ["FileLock"]),
        .library(name: "RedisLock", type: .dynamic, targets: ["RedisLock"]),
    ],
    targets: [
        // The whole host/plugin contract: one header, no code.
        .target(name: "PluginABI", path: "Sources/PluginABI"),
        // The one place that knows Go's rules: module paths and their encoding, semver, module zips.
        // Swift and the system zlib (to read module zips in full), linked statically into the host and into plugins that need it.
        .target(name: "GoModule", dependencies: ["CZlib"], path: "Sources/GoModule"),
        // The one JSON reader (strict RFC 8259) of the manifest and the Swift plugins' configs, and the JSON
        // string quoting the log and re-written configs use; no Foundation.
        .target(name: "JSON", path: "Sources/JSON"),
        // What FoundationEssentials lacks, for the host and the plugins alike (pthread lock, condition and threads,
        // whole fd writes, a few string helpers), so no linked module needs libFoundation.so and its ICU.
        .target(name: "Basics", path: "Sources/Basics"),
        // Swift adapter that turns a Swift backend into the C tables; linked statically into each Swift plugin.
        .target(name: "PluginKit", dependencies: ["PluginABI", "JSON", "Basics"], path: "Plugins/PluginKit"),
        // Linux APIs the Glibc module lacks (epoll, eventfd, sendfile, affinity); host only.
        .target(name: "SystemShims", path: "Sources/SystemShims"),
        // The host, in the order a request passes through it (README "Request path"):
        // the structured log and the one monotonic clock every host layer shares;
        .target(name: "HostSupport", dependencies: ["JSON", "Basics"], path: "Sources/HostSupport"),
        // the plugin host: dlopen loader, private copies, crash labels, and the Swift faces of the C tables
        // (`Storage` and `Fetcher` protocols, implemented by the plugin-backed types);
        .target(name: "PluginHost", dependencies: ["PluginABI", "GoModule", "HostSupport", "SystemShims", "Basics"], path: "Sources/PluginHost"),
        // the request path: HTTP server → router → download protocol → stash, configured by the manifest;
        // (Release builds drop the run-time exclusivity checks here, ~5% of a warm hit's instructions in callgrind;
        // debug builds, which the tests run, keep them.)
        .target(name: "RequestPath", dependencies: ["PluginHost", "HostSupport", "GoModule", "SystemShims", "HTTPClient", "PluginABI", "Digests", "JSON", "SumDB", "Basics"],
                path: "Sources/RequestPath",
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        // `athens plugin-check`: drives one plugin through the whole contract and reports what it breaks;
        .target(name: "PluginCheck", dependencies: ["PluginHost", "HostSupport", "GoModule", "PluginABI", "JSON", "HTTPClient", "Basics"],
                path: "Sources/PluginCheck"),
        // and the thin executable: arguments, signals, and the composition root that wires the above.
        .executableTarget(name: "AthensHost", dependencies: ["RequestPath", "PluginHost", "PluginCheck", "HostSupport", "PluginABI", "SystemShims", "Basics"],
                          path: "Sources/AthensHost"),
        .target(name: "MemoryStorage", dependencies: ["PluginKit", "Basics", "Digests"], path: "Plugins/MemoryStorage"),
        .target(name: "ProxyFetcher", dependencies: ["PluginKit", "GoModule", "HTTPClient", "Basics"], path: "Plugins/ProxyFetcher"),
        .target(name: "FileStorage", dependencies: ["PluginKit", "GoModule"], path: "Plugins/FileStorage"),
        // The system zlib (deflate for GitFetcher's streamed module zips, inflate for GoModule's zip check).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The system libcurl (OpenSSL flavour) behind HTTPClient.
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The one HTTP client for upstream calls (ProxyFetcher, the sumdb proxy, S3): hard limits as bytes arrive.
        .target(name: "HTTPClient", dependencies: ["CCurl"], path: "Sources/HTTPClient"),
        .target(name: "GitFetcher", dependencies: ["PluginKit", "GoModule", "CZlib", "HTTPClient", "Basics"], path: "Plugins/GitFetcher"),
        // The system libcrypto (digests for Digests, Ed25519 for SumDB's signed notes).
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // The one place for digests and their encodings: SHA-256, HMAC-SHA256 (libcrypto), hex, base64.
        .target(name: "Digests", dependencies: ["CCrypto"], path: "Sources/Digests"),
        // S3Storage's pure parts (signer, XML reader, key layout): linked into the plugin, the tests and the fuzzer.
        .target(name: "S3Core", dependencies: ["Digests", "GoModule", "Basics"], path: "Plugins/S3Storage/Core"),
        .target(name: "S3Storage", dependencies: ["PluginKit", "GoModule", "S3Core", "Digests", "HTTPClient", "Basics"], path: "Plugins/S3Storage/Plugin"),
        // Checksum-database client: h1 hashes (dirhash), signed notes, transparency-log proofs, a fetch-agnostic verifier.
        .target(name: "SumDB", dependencies: ["CCrypto", "CZlib", "Digests", "GoModule"], path: "Sources/SumDB"),
        // RESP2 client (sockets, pool, strict reply reader) and the lease lock on it, ABI-independent;
        .target(name: "RedisClient", dependencies: ["Basics"], path: "Plugins/RedisLock/Client"),
        // the RedisLock plugin (lock kind, ABI 1.1) wraps it.
        .target(name: "RedisLock", dependencies: ["PluginKit", "RedisClient", "Basics"], path: "Plugins/RedisLock/Plugin"),
        // The lock kind (ABI 1.1) on flock in a shared directory; Digests names the lock files.
        .target(name: "FileLock", dependencies: ["PluginKit", "Digests", "Basics"], path: "Plugins/FileLock"),
        // Drives a storage plugin .so from another process, for the kill and multi-process tests.
        .executableTarget(name: "StorageStress", dependencies: ["PluginABI"], path: "Tests/StorageStress"),
        // Tests link the host's libraries only; the athens executable and the plugins are run and loaded from
        // their built files by path, as in production (scripts/test.sh builds everything first).
        .testTarget(name: "AthensHostTests", dependencies: ["RequestPath", "PluginHost", "PluginCheck", "HostSupport", "GoModule", "HTTPClient",
                                                            "S3Core", "SumDB", "Digests", "RedisClient", "JSON", "Basics"], path: "Tests/AthensHostTests"),
        // Go's rules alone (module paths, semver, pseudo-versions, go.mod, module zips): no host, no processes.
        .testTarget(name: "GoModuleTests", dependencies: ["GoModule"], path: "Tests/GoModuleTests"),
    ]
)
