import FoundationEssentials
import Glibc
import GoModule
import JSON

/// The manifest's `retention` object: which stored versions retention removes, how often it runs, and where the
/// last-access journal is kept (README "Operating"). Absent: no retention, and hits are not recorded at all.
package struct RetentionSettings: Sendable, Equatable {
    /// Versions not downloaded for more than this many days go (nil: no age limit).
    package var maxAgeDays: Int?
    /// While the stored versions take more bytes than this, the least recently downloaded go first (nil: no budget).
    package var maxTotalBytes: UInt64?
    /// GOPRIVATE-style globs of module paths that are never evicted.
    package var keep: [String] = []
    /// Hours between scheduled runs; nil: only on demand (`POST /admin/retention`).
    package var intervalHours: Double? = 24
    /// Whether scheduled runs only log what they would remove (the default: an operator applies once the plan is right).
    package var dryRun = true
    /// The folder of last-access journals, one file per instance; instances sharing it see each other's downloads.
    package var stateDirectory = "./athens-state"
    /// This instance's journal name in `stateDirectory` (default: the host name).
    package var instance = RetentionSettings.hostName()
    /// Seconds between writes of the recorded downloads to the journal.
    package var flushSeconds: Double = 60

    package init(maxAgeDays: Int? = nil, maxTotalBytes: UInt64? = nil, keep: [String] = []) {
        (self.maxAgeDays, self.maxTotalBytes, self.keep) = (maxAgeDays, maxTotalBytes, keep)
    }

    /// Whether `module` is kept whatever its age or size.
    package func keeps(_ module: String) -> Bool {
        keep.contains { ModulePath.matchPrefixPatterns($0, module) }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "athens" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return isInstanceName(name) ? name : "athens"
    }

    /// A journal name: it becomes a file name, so letters, digits, `.`, `_`, `-` only, and not a dot file.
    static func isInstanceName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.first != "."
            && name.utf8.allSatisfy { $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}

extension Manifest {
    /// Reads `retention` (finished here). Each wrong value is an error naming its key.
    static func retention(_ object: JSONFields<ManifestError>) throws(ManifestError) -> RetentionSettings {
        var settings = RetentionSettings()
        settings.maxAgeDays = try object.integer("maxAgeDays", in: 1...36500)
        settings.maxTotalBytes = try object.integer("maxTotalBytes", in: 1...(1 << 60)).map { UInt64($0) }
        guard settings.maxAgeDays != nil || settings.maxTotalBytes != nil else {
            throw ManifestError("\(object.path): give maxAgeDays, maxTotalBytes or both")
        }
        for (index, glob) in (try object.strings("keep") ?? []).enumerated() {
            // One glob per element: a comma would silently split it in two.
            guard !glob.isEmpty, glob.utf8.count <= 1024, glob.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x2C }),
                  ModulePath.isWellFormedPattern(glob) else {
                throw ManifestError("\(object.path).keep[\(index)]: \"\(glob)\" is not a module path glob (e.g. \"corp.example/*\")")
            }
            settings.keep.append(glob)
        }
        if let hours = try object.number("intervalHours")?.double {
            guard hours >= 0, hours <= 8760 else { throw object.error("intervalHours", "must be from 0 (on demand only) to 8760") }
            settings.intervalHours = hours == 0 ? nil : hours
        }
        if let v = try object.bool("dryRun") { settings.dryRun = v }
        if let v = try object.string("stateDirectory") {
            guard !v.isEmpty else { throw object.error("stateDirectory", "must not be empty") }
            settings.stateDirectory = v
        }
        if let v = try object.string("instance") {
            guard RetentionSettings.isInstanceName(v) else { throw object.error("instance", "1 to 64 of A-Z a-z 0-9 . _ -, not starting with .") }
            settings.instance = v
        }
        if let seconds = try object.number("flushSeconds")?.double {
            guard seconds >= 1, seconds <= 3600 else { throw object.error("flushSeconds", "must be from 1 to 3600") }
            settings.flushSeconds = seconds
        }
        try object.finish()
        return settings
    }
}
