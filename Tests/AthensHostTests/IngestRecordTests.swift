import GoModule
import Testing
@testable import RequestPath

@Suite("IngestRecord: the hashes recorded at ingest inside the stored .info")
struct IngestRecordTests {
    let record = IngestRecord(zip: "h1:zipzipzip=", mod: "h1:modmodmod=")

    @Test("stamping keeps every other member in order and the go command's reading of the .info")
    func keepsInfo() throws {
        let info = Array(#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z","Origin":{"VCS":"git","Hash":"abc"}}"#.utf8)
        let stamped = try record.stamped(info, version: "v1.0.0")
        #expect(String(decoding: stamped, as: UTF8.self)
            == #"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z","Origin":{"VCS":"git","Hash":"abc"},"Athens":{"Zip":"h1:zipzipzip=","Mod":"h1:modmodmod="}}"#)
        let read = try ArtifactValidator.readInfo(stamped, version: "v1.0.0")
        #expect(read.version == "v1.0.0" && read.time == "2024-01-02T03:04:05Z")
        #expect(IngestRecord.read(stamped) == record)
    }

    @Test("a record an upstream athens wrote, in any spelling, is replaced by ours")
    func replacesUpstreamRecord() throws {
        let info = Array(#"{"Version":"v1.0.0","athens":{"Zip":"h1:theirs","Mod":"h1:theirs"},"ATHENS":1}"#.utf8)
        let stamped = try record.stamped(info, version: "v1.0.0")
        #expect(String(decoding: stamped, as: UTF8.self) == #"{"Version":"v1.0.0","Athens":{"Zip":"h1:zipzipzip=","Mod":"h1:modmodmod="}}"#)
    }

    @Test("an .info Go accepts but our JSON reader refuses (a repeated key) is rebuilt from what Go reads of it")
    func repeatedKey() throws {
        let info = Array(#"{"Version":"v0.9.0","Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}"#.utf8)
        let stamped = try record.stamped(info, version: "v1.0.0")
        #expect(String(decoding: stamped, as: UTF8.self)
            == #"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z","Athens":{"Zip":"h1:zipzipzip=","Mod":"h1:modmodmod="}}"#)
    }

    @Test("no record: an .info without one, or with a malformed one")
    func absent() {
        for info in [#"{"Version":"v1.0.0"}"#, #"{"Version":"v1.0.0","Athens":{"Zip":"h1:x"}}"#, #"{"Version":"v1.0.0","Athens":"h1:x"}"#, "not json"] {
            #expect(IngestRecord.read(Array(info.utf8)) == nil, "\(info)")
        }
    }
}
