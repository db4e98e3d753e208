import Foundation
import Testing

/// kill -9 of an instance in the middle of its save to the bucket (after its `.mod`, during the zip's multipart
/// upload): the version stays invisible, the survivors' save takes the dead saver's S3 lock over once stale, aborts its
/// upload and overwrites what it wrote, and the bucket ends whole. A deployment of its own whose S3Storage request
/// timeout is short, so that the save lock's lease (max(10 s, twice the timeout)) passes within the test.
@Suite("deployment: an instance killed mid-save leaves no half-written version", .blockingBodies, .serialized,
       .enabled(if: RGW.isAvailable, "needs the RGW of scripts/rgw.sh (scripts/test.sh starts it)"))
final class DeploymentCrashTests {
    /// A zip of several 5 MiB parts (incompressible), so the upload lasts long enough to be caught in the middle.
    static let module = "example.com/big"
    static let version = module + "/@v/v1.0.0"
    let deployment: DeploymentTests

    init() throws {
        deployment = try DeploymentTests(extra: ["DEPLOY_S3_TIMEOUT_SECONDS": "5"])
        let fixtures = TestSupport.packageRoot + "/Tests/Fixtures"
        // Served from disk by the upstream as it is asked, so adding it after the start is enough.
        guard try TestSupport.run("/usr/bin/env", ["python3", "-c", """
              import os, sys, zipfile; sys.path.insert(0, sys.argv[1]); from make_fixture_proxy import add_version
              add_version(sys.argv[2], "example.com/big", "v1.0.0", {"big.go": "package big\\n"})
              base = os.path.join(sys.argv[2], "example.com/big/@v/v1.0.0")
              with zipfile.ZipFile(base + ".zip", "a", zipfile.ZIP_STORED) as z:
                  z.writestr("example.com/big@v1.0.0/blob.bin", os.urandom(24 << 20))
              """, fixtures, deployment.tree]).status == 0 else { throw TestFailure("big fixture") }
    }

    @Test("kill -9 during the zip upload: no .info, the version invisible; then a survivor's save overwrites it whole")
    func killedMidSave() throws {
        let d = deployment
        let path = "/\(Self.module)/@v/v1.0.0.zip"
        let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: d.tree + "/" + Self.version + ".zip")))
        // Instance 1 fetches and saves; nothing is held upstream (no hold file), so the save starts at once.
        let first = LockedStashEndToEndTests.Clients(1, path: path) { _ in d.instances[0] }
        // The .mod is written after the lock and before the zip: from then on, until the .info, the save is half done.
        var seen = DeploymentTests.BucketContents()
        let midSave = waitUntil(timeout: 120) {
            seen = (try? d.bucketContents()) ?? seen
            return seen.keys.contains(Self.version + ".mod") || seen.committed.contains(Self.version)
        }
        kill(try d.pid("athens-1"), SIGKILL)
        #expect(midSave)
        #expect(!seen.committed.contains(Self.version), "the save committed before the kill: \(seen.keys)")
        let after = try d.bucketContents()
        #expect(!after.committed.contains(Self.version), "\(after.keys)")
        // The dead saver's lock is left behind: the survivor's save must take it over (once stale by RGW's clock).
        #expect(after.locks.contains(Self.version), "\(after.keys)")
        // Invisible meanwhile: asked of a survivor, the version is fetched (not served half) — and served whole.
        let clients = LockedStashEndToEndTests.Clients(4, path: path) { _ in d.balancer }
        let answers = try #require(clients.wait())
        #expect(answers.count == 4 && answers.allSatisfy { $0?.status == 200 && $0?.body == expected }, "\(answers.map { $0?.status ?? 0 })")
        #expect((try #require(first.wait())).allSatisfy { $0 == nil || $0?.status != 200 || $0?.body == expected })
        // The survivor's save committed it, overwrote the dead saver's .mod and .zip, aborted its upload, freed the lock.
        let bucket = try d.expectBucketWhole()
        #expect(bucket.committed.contains(Self.version), "\(bucket.keys)")
        #expect(bucket.uncommitted.isEmpty && bucket.locks.isEmpty && bucket.uploads.isEmpty, "\(bucket)")
        #expect(d.zipFetches(Self.module) == 2)
    }
}
