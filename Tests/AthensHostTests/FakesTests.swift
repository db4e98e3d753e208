// The fakes themselves: what FetchingStasher stores through them is what the fake upstream served, and the
// validator still guards the seam (a fake serving junk is refused exactly like a plugin serving junk).
import Foundation
import Testing
@testable import PluginHost
@testable import RequestPath

@Suite("in-memory fakes of Storage and Fetcher")
struct FakesTests {
    @Test("FetchingStasher stores what the fake fetcher serves, validated, and nothing for junk")
    func stashThroughFakes() throws {
        let storage = FakeStorage(), fetcher = FakeFetcher()
        fetcher.add("example.com/a", "v1.0.0")
        fetcher.add("example.com/bad", "v1.0.0", FakeVersion(info: Array(#"{"Version":"v1.0.0"}"#.utf8), mod: Array("module example.com/bad\n".utf8), zip: [1, 2, 3]))
        let stasher = FetchingStasher(policy: DownloadPolicy(defaultFetchers: [fetcher]), storage: storage, spoolDirectory: NSTemporaryDirectory())
        try stasher.stash(module: "example.com/a", version: "v1.0.0")
        #expect(storage.stored("example.com/a", "v1.0.0") == FakeVersion.honest(module: "example.com/a", version: "v1.0.0").ingested)
        #expect(fetcher.calls("fetch") == 1)
        let blob = try storage.open(module: "example.com/a", version: "v1.0.0", artifact: .mod)
        #expect(blob.readAll(limit: 1 << 20) == Array("module example.com/a\n".utf8))

        #expect(throws: DownloadError.self) { try stasher.stash(module: "example.com/bad", version: "v1.0.0") }
        #expect(storage.stored("example.com/bad", "v1.0.0") == nil)
        #expect(storage.keys == ["example.com/a@v1.0.0"])
    }
}
