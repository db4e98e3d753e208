// swift-tools-version:6.0
// No third-party packages: only the toolchain and system C libraries.
import PackageDescription

let package = Package(
    name: "athens",
    products: [
        .executable(name: "athens", targets: ["AthensHost"]),
        .library(name: "MemoryStorage", type: .dynamic, targets: ["MemoryStorage"]),
        .library(name: "ProxyFetcher", type: .dynamic, targets: ["ProxyFetcher"]),
    ],
    targets: [
        // The whole host/plugin contract: one header, no code.
        .target(name: "PluginABI", path: "Sources/PluginABI"),
        // Swift adapter that turns a Swift backend into the C tables; linked statically into each Swift plugin.
        .target(name: "PluginKit", dependencies: ["PluginABI"], path: "Plugins/PluginKit"),
        .executableTarget(name: "AthensHost", dependencies: ["PluginABI"], path: "Sources/AthensHost"),
        .target(name: "MemoryStorage", dependencies: ["PluginKit"], path: "Plugins/MemoryStorage"),
        .target(name: "ProxyFetcher", dependencies: ["PluginKit"], path: "Plugins/ProxyFetcher"),
        // Tests link the host only; plugins are loaded from their .so files by path, as in production.
        .testTarget(name: "AthensHostTests", dependencies: ["AthensHost"], path: "Tests/AthensHostTests"),
    ]
)
