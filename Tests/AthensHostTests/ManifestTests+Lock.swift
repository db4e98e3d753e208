import Foundation
import Testing
@testable import RequestPath

/// The manifest keys of a single-flight's lock (stash.wrappers[].lock).
extension ManifestTests {
    @Test("a singleflight wrapper may name a lock: plugin, config, lease and wait")
    func singleflightLock() throws {
        let manifest = try Self.parse("""
        {"stash": {"timeoutSeconds": 120, "wrappers": [
            {"type": "singleflight", "lock": {"plugin": "FileLock", "config": {"directory": "/srv/locks"}, "leaseSeconds": 20, "waitSeconds": 90}},
            {"type": "pool", "workers": 4}]}}
        """)
        #expect(manifest.stashWrappers == [.singleflight, .pool(workers: 4)])
        let lock = try #require(manifest.stashLock)
        #expect(lock.use.plugin == "FileLock")
        #expect(lock.use.configJSON == #"{"directory":"\/srv\/locks"}"# || lock.use.configJSON == #"{"directory":"/srv/locks"}"#)
        #expect(lock.leaseSeconds == 20 && lock.waitSeconds == 90)
        // Defaults: a 30 s lease; the wait is the stash timeout (nil here, filled in by the assembly).
        let plain = try Self.parse(#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "FileLock"}}]}}"#)
        #expect(plain.stashLock == Manifest.LockUse(use: .init(plugin: "FileLock", configJSON: "{}"), leaseSeconds: 30, waitSeconds: nil))
        #expect(try Self.parse("{}").stashLock == nil)
        // /readyz is degraded, not failed, by a lock that does not answer unless the lock says it is required.
        #expect(plain.stashLock?.requiredForReadiness == false)
        let required = try Self.parse(#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "FileLock", "requiredForReadiness": true}}]}}"#)
        #expect(required.stashLock?.requiredForReadiness == true)
        #expect(try Self.parse(#"{"stash": {"wrappers": [{"type": "singleflight"}]}}"#).stashLock == nil)
    }

    @Test("bad locks name the key", arguments: [
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": "FileLock"}]}}"#, "manifest.stash.wrappers[0].lock: must be an object"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {}}]}}"#, "manifest.stash.wrappers[0].lock.plugin: required"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "lease": 3}}]}}"#, "manifest.stash.wrappers[0].lock.lease: unknown key"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "leaseSeconds": 0.5}}]}}"#, "lock.leaseSeconds: must be from 1 to 3600"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "leaseSeconds": 7200}}]}}"#, "lock.leaseSeconds: must be from 1 to 3600"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "waitSeconds": -1}}]}}"#, "lock.waitSeconds: must be at least 0"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "waitSeconds": "1"}}]}}"#, "lock.waitSeconds: must be a number"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "config": 1}}]}}"#, "lock.config: must be an object"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "requiredForReadiness": "yes"}}]}}"#,
         "lock.requiredForReadiness: must be true or false"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L", "requiredForReadyz": true}}]}}"#,
         "lock.requiredForReadyz: unknown key"),
        (#"{"stash": {"wrappers": [{"type": "pool", "lock": {"plugin": "L"}}]}}"#, "manifest.stash.wrappers[0].lock: unknown key"),
        (#"{"stash": {"wrappers": [{"type": "singleflight", "lock": {"plugin": "L"}}, {"type": "singleflight", "lock": {"plugin": "L"}}]}}"#,
         "wrappers[1].lock: only one singleflight wrapper may name a lock"),
    ])
    func badLock(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
    }
}
