import HostSupport
import PluginABI

/// Collects what a plugin's `list` entry emits, for every caller of a list entry (storage, fetcher,
/// plugin-check). Bounded: a plugin that emits forever is asked to stop once a million versions arrived.
package final class VersionCollector {
    /// Most versions kept; past it the emit callback answers "stop".
    package static let limit = 1_000_000
    package private(set) var versions: [String] = []

    package init() {}

    /// The C callback; pass `context` as its ctx.
    package static let emit: ath_emit_version_fn = { ctx, version in
        let collector = Unmanaged<VersionCollector>.fromOpaque(ctx!).takeUnretainedValue()
        guard collector.versions.count < VersionCollector.limit else { return 1 }
        collector.versions.append(String(cString: version))
        return 0
    }

    /// The opaque pointer to hand the plugin with `emit`; valid while `self` is alive.
    package var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
}
