import Digests
import JSON
import PluginHost

/// Versions an operator has quarantined: each answers `410 Gone` (the body says why) until released or deleted.
///
/// Marks live in the storage itself (StoredMarks), so they survive a restart and every instance on that storage sees
/// them: each mark is a version of the reserved module `athens.quarantine`, named
/// `v0.0.0-q<first 128 bits of SHA-256("module@version"), hex>`, whose `.info` carries the module, version, reason
/// and time. Each instance reads the marks with one `list` at start and again at most every `refreshSeconds` (the
/// list-cache TTL) while requests arrive: a mark made by another instance is seen within that time, one made here at once.
package final class Quarantine: Sendable {
    /// The reserved module that holds the marks.
    package static let module = ReservedModule.quarantine

    /// One quarantined version.
    package struct Mark: Equatable, Sendable {
        package var module: String
        package var version: String
        package var reason: String
        /// RFC 3339, when it was marked.
        package var time: String
    }

    private let marks: StoredMarks<Mark>

    package init(storage: any Storage, refreshSeconds: Double, pool: WorkerPool?) {
        marks = StoredMarks(module: Self.module, storage: storage, refreshSeconds: refreshSeconds, pool: pool, decode: Self.decode)
    }

    /// Whether `module` is reserved (this proxy's bookkeeping: requests for it are 404).
    package static func isReserved(_ module: String) -> Bool { ReservedModule.contains(module) }

    /// The mark of module@version, if any. Quick (memory); schedules a refresh when the marks are older than allowed.
    package func mark(module: String, version: String) -> Mark? {
        let known = marks.current()
        return known.isEmpty ? nil : known[Self.marker(module: module, version: version)]
    }

    /// The `410` a quarantined version answers.
    package static func gone(_ mark: Mark) -> Response {
        .text(410, "gone: \(mark.module)@\(mark.version) is quarantined by this proxy since \(mark.time): \(mark.reason) "
            + "(an operator releases it with POST /admin/quarantine or deletes it)")
    }

    /// Every mark, in module then version order.
    package var all: [Mark] {
        marks.snapshot.values.sorted { ($0.module, $0.version) < ($1.module, $1.version) }
    }

    /// Reads the marks from storage (blocking). Keeps the previous ones when storage fails.
    package func refresh() throws(PluginError) { try marks.refresh() }

    /// Marks module@version (blocking: saves its marker). Marking it again keeps the first mark.
    package func add(module: String, version: String, reason: String) throws(PluginError) -> Mark {
        let marker = Self.marker(module: module, version: version)
        if let mark = marks.known(marker) { return mark }
        let mark = Mark(module: module, version: version, reason: reason, time: StoredMarks<Mark>.now())
        let content = JSONObject([("Module", .string(module)), ("Version", .string(version)), ("Reason", .string(reason))])
        try marks.save(marker: marker, mark: mark, content: ("Quarantine", .object(content)), time: mark.time)
        return mark
    }

    /// Releases module@version (blocking: removes its marker); false when it was not quarantined.
    package func release(module: String, version: String) throws(PluginError) -> Bool {
        try marks.remove(marker: Self.marker(module: module, version: version))
    }

    /// The marker version of module@version.
    static func marker(module: String, version: String) -> String {
        "v0.0.0-q" + Hex.encode(SHA256.hash(Array((module + "@" + version).utf8)).prefix(16))
    }

    private static func decode(_ marker: String, _ info: JSONObject) -> Mark? {
        guard case .object(let q)? = info["Quarantine"], case .string(let module)? = q["Module"], case .string(let version)? = q["Version"],
              Self.marker(module: module, version: version) == marker
        else { return nil }
        let reason = if case .string(let text)? = q["Reason"] { text } else { "" }
        let time = if case .string(let text)? = info["Time"] { text } else { "" }
        return Mark(module: module, version: version, reason: reason, time: time)
    }
}
