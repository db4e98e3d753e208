// The RedisLock config: which Redis, how to reach it, and the namespace of its keys.
import PluginKit
import RedisClient

/// RedisLock's config, read from the manifest's JSON.
///
///     {"url": "redis://:PASSWORD@redis.internal:6379/0", "keyPrefix": "athens:",
///      "poolSize": 16, "connectTimeoutMilliseconds": 2000, "commandTimeoutMilliseconds": 5000, "pollMilliseconds": 100}
///
/// - `url` (required): `redis://[[user]:password@]host[:port][/db]` (port 6379, db 0 by default) or
///   `unix:///path/to/redis.sock[?db=N][&password=P][&user=U]` (percent escapes decoded in user, password, path);
///   `rediss://` is refused (plain TCP only).
/// - `keyPrefix` (default `athens:`, at most 256 bytes): keys are `<keyPrefix>lock:<key>` and `<keyPrefix>wake:<key>`,
///   so two deployments on one Redis stay apart.
/// - `poolSize` (1...1024, default 16): most connections; each waiter holds one while it blocks.
/// - `connectTimeoutMilliseconds` (1...60000, default 2000), `commandTimeoutMilliseconds` (1...600000, default 5000):
///   the longest connect (AUTH and SELECT included) and round trip before the call fails with ATH_UNAVAILABLE.
/// - `pollMilliseconds` (1...10000, default 100): longest single blocking wait, so the bound on noticing a cancelled
///   call and a lock freed without a wake-up.
struct RedisLockSettings {
    var redis: RedisConfiguration
    var keyPrefix: String
    var pollMilliseconds: Int

    init(_ config: PluginConfig) throws(PluginFailure) {
        guard let url = try config.string("url"), !url.isEmpty else {
            throw .invalid("config.url: required: redis://[:password@]host:port/db or unix:///path/to/redis.sock?db=N")
        }
        do {
            redis = try RedisConfiguration(url: url)
        } catch {
            // The configuration's own message names the problem, never the URL's text (it may hold a password).
            throw .invalid("config.url: \(error)")
        }
        keyPrefix = try config.string("keyPrefix") ?? "athens:"
        guard keyPrefix.utf8.count <= 256 else { throw .invalid("config.keyPrefix: at most 256 bytes") }
        redis.poolSize = try config.integer("poolSize", in: 1...1024) ?? 16
        redis.connectTimeoutMs = try config.integer("connectTimeoutMilliseconds", in: 1...60_000) ?? 2000
        redis.commandTimeoutMs = try config.integer("commandTimeoutMilliseconds", in: 1...600_000) ?? 5000
        pollMilliseconds = try config.integer("pollMilliseconds", in: 1...10_000) ?? 100
        try config.finish()
    }
}
