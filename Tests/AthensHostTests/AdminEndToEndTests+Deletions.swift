// Two athens processes on one FileStorage root: a delete through one's admin API reaches the other's memory cache.
import Foundation
import Testing

extension AdminEndToEndTests {
    @Test("two instances on one storage root: a delete through A is forgotten by B's memory cache within listCacheSeconds")
    func deleteForgottenByOtherInstance() throws {
        let a = try athens(extra: #""listCacheSeconds": 1, "#), b = try athens(admin: "", extra: #""listCacheSeconds": 1, "#)
        defer { a.stop(); b.stop() }
        let zip = "/example.com/hello/@v/v1.0.0.zip"
        let original = try b.get(zip)
        #expect(original.status == 200, "B fetches and stores")
        #expect(try a.get(zip).body == original.body, "A serves it from the shared storage")
        #expect(try b.get(zip).body == original.body, "B from memory")
        let fetched = try fetches(b)
        let client = try RawClient(port: a.port)
        client.send(Self.post("/admin/delete", #"{"module":"example.com/hello","version":"v1.0.0","dryRun":false}"#))
        let answer = try #require(client.readResponse())
        #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
        let deletedAt = Date()
        // B's memory answers until its re-read of the tombstones (at most every listCacheSeconds, while requests come);
        // then the request misses memory, finds storage empty, and B fetches again.
        #expect(waitUntil(timeout: 20) { (try? b.get(zip).status) == 200 && (try? fetches(b)) == fetched + 1 })
        #expect(Date().timeIntervalSince(deletedAt) < 1 + 10, "within listCacheSeconds and a margin")
        #expect(try b.get(zip).body == original.body)
        #expect(try fetches(b) == fetched + 1, "the re-fetched version stays in B's memory")
        #expect(!(try a.get("/catalog").body).contains(Array("athens.deleted".utf8)))
        #expect(try b.get("/athens.deleted/@v/list").status == 404)
    }
}
