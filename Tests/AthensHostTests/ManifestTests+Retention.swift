import Testing
@testable import RequestPath

/// The manifest's `retention` key: the policies, the schedule and where last access is kept.
extension ManifestTests {
    @Test("retention is off by default; the keys read as written, defaults where absent")
    func retentionKey() throws {
        #expect(try Self.parse("{}").retention == nil)
        let full = try #require(try Self.parse("""
        {"retention": {"maxAgeDays": 90, "maxTotalBytes": 10737418240, "keep": ["corp.example/*", "golang.org/x"], "intervalHours": 0.5,
                       "dryRun": false, "stateDirectory": "/var/lib/athens", "instance": "athens-1", "flushSeconds": 5}}
        """).retention)
        #expect(full.maxAgeDays == 90 && full.maxTotalBytes == 10_737_418_240 && full.keep == ["corp.example/*", "golang.org/x"])
        #expect(full.intervalHours == 0.5 && !full.dryRun && full.stateDirectory == "/var/lib/athens" && full.instance == "athens-1" && full.flushSeconds == 5)
        #expect(full.keeps("corp.example/x/v2") && full.keeps("golang.org/x/mod") && !full.keeps("corp.examples/x"))
        let defaults = try #require(try Self.parse(#"{"retention": {"maxAgeDays": 30}}"#).retention)
        #expect(defaults.dryRun && defaults.intervalHours == 24 && defaults.maxTotalBytes == nil && defaults.keep.isEmpty)
        #expect(defaults.stateDirectory == "./athens-state" && !defaults.instance.isEmpty && defaults.flushSeconds == 60)
        #expect(try Self.parse(#"{"retention": {"maxTotalBytes": 1, "intervalHours": 0}}"#).retention?.intervalHours == nil, "0: on demand only")
    }

    @Test("bad retention values name the key", arguments: [
        (#"{"retention": {}}"#, "manifest.retention: give maxAgeDays, maxTotalBytes or both"),
        (#"{"retention": {"dryRun": true}}"#, "manifest.retention: give maxAgeDays, maxTotalBytes or both"),
        (#"{"retention": {"maxAgeDays": 0}}"#, "manifest.retention.maxAgeDays: must be an integer from 1 to 36500"),
        (#"{"retention": {"maxAgeDays": 1.5}}"#, "manifest.retention.maxAgeDays: must be an integer"),
        (#"{"retention": {"maxAgeDays": "30"}}"#, "manifest.retention.maxAgeDays: must be a number"),
        (#"{"retention": {"maxTotalBytes": -1}}"#, "manifest.retention.maxTotalBytes: must be an integer from 1"),
        (#"{"retention": {"maxAgeDays": 1, "keep": "corp.example/*"}}"#, "manifest.retention.keep: must be a list of strings"),
        (#"{"retention": {"maxAgeDays": 1, "keep": [""]}}"#, "manifest.retention.keep[0]: \"\" is not a module path glob"),
        (#"{"retention": {"maxAgeDays": 1, "keep": ["a,b"]}}"#, "manifest.retention.keep[0]: \"a,b\" is not a module path glob"),
        (#"{"retention": {"maxAgeDays": 1, "keep": ["ok.example", "corp.example/[x"]}}"#, "manifest.retention.keep[1]: \"corp.example/[x\" is not"),
        (#"{"retention": {"maxAgeDays": 1, "keep": ["a b"]}}"#, "manifest.retention.keep[0]"),
        (#"{"retention": {"maxAgeDays": 1, "intervalHours": -1}}"#, "manifest.retention.intervalHours: must be from 0"),
        (#"{"retention": {"maxAgeDays": 1, "dryRun": "false"}}"#, "manifest.retention.dryRun: must be true or false"),
        (#"{"retention": {"maxAgeDays": 1, "stateDirectory": ""}}"#, "manifest.retention.stateDirectory: must not be empty"),
        (#"{"retention": {"maxAgeDays": 1, "instance": "../x"}}"#, "manifest.retention.instance: 1 to 64"),
        (#"{"retention": {"maxAgeDays": 1, "instance": ".hidden"}}"#, "manifest.retention.instance: 1 to 64"),
        (#"{"retention": {"maxAgeDays": 1, "flushSeconds": 0}}"#, "manifest.retention.flushSeconds: must be from 1 to 3600"),
        (#"{"retention": {"maxAgeDays": 1, "maxAge": 3}}"#, "manifest.retention.maxAge: unknown key"),
        (#"{"retention": 30}"#, "manifest.retention: must be an object"),
    ])
    func badRetention(json: String, message: String) {
        let error = #expect(throws: ManifestError.self) { _ = try Self.parse(json) }
        #expect(error?.description.contains(message) == true, "got \(error?.description ?? "nothing")")
    }
}
