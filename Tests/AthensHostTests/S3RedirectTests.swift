// S3Storage with "serve": "redirect" on the tests' RGW: athens answers zips with presigned GET URLs and the go
// command fetches the bytes from the object store itself. A logging proxy in front of RGW (s3_fault_proxy.py, no
// rules) tells who read what: presigned GETs carry X-Amz-Signature in the query, athens' own requests do not.
import Foundation
import Testing
@testable import PluginHost
import HTTPClient

extension S3StorageTests {
    @Test("serve redirect on S3Storage: the go command gets the upstream's hashes and every zip from RGW, none through athens")
    func redirectServing() throws {
        let tree = try makeTree()
        let upstreamURL = try upstream(tree)
        let bucket = try RGW.makeBucket("redir")
        let proxy = try faultProxy("[]")
        let manifest = """
        {"storage": {"plugin": "S3Storage", "serve": "redirect",
                     "config": \(RGW.json(RGW.config(bucket: bucket, endpoint: proxy.endpoint, ["urlSeconds": 120])))},
         "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "\(upstreamURL)", "timeoutSeconds": 30}}]}
        """
        let server = try AthensServer(manifest: manifest, directory: work)
        processes.append(server.process)
        let modules = ["example.com/hello@v1.0.0", "example.com/Upper/Case@v0.1.0", "example.com/legacy@v2.0.0+incompatible"]
        let direct = try GoCommand.sums(modules, proxy: upstreamURL)
        #expect(direct.count == modules.count && direct.values.allSatisfy { $0.hasPrefix("h1:") }, "\(direct)")
        #expect(try GoCommand.sums(modules, proxy: server.url) == direct, "athens: \(server.process.stderr)")

        let log = Self.logLines(proxy.log)
        let zipGets = log.filter { $0.hasPrefix("GET ") && $0.contains(".zip") }
        for key in ["example.com/hello/%40v/v1.0.0.zip", "example.com/%21upper/%21case/%40v/v0.1.0.zip", "example.com/legacy/%40v/v2.0.0%2Bincompatible.zip"] {
            #expect(zipGets.contains { $0.hasPrefix("GET /\(bucket)/\(key)?") && $0.contains("X-Amz-Signature=") && $0.hasSuffix(" 200") },
                    "the go command fetched \(key) from RGW by presigned URL: \(zipGets)")
        }
        #expect(!zipGets.contains { !$0.contains("X-Amz-Signature=") }, "athens never read a zip itself: \(zipGets)")

        // The answer itself: a 302 to the bucket, reusable for at most half the URL's validity; HEAD the same.
        for method in ["GET", "HEAD"] {
            let response = try server.get("/example.com/hello/@v/v1.0.0.zip", method: method)
            #expect(response.status == 302)
            #expect(response.headers["location"]?.hasPrefix(proxy.endpoint + "/\(bucket)/example.com/hello/%40v/v1.0.0.zip?") == true)
            #expect(response.headers["cache-control"] == "private, max-age=59")
        }
        // .info and .mod stay bytes by default; a version not stored is fetched, then redirected.
        #expect(try server.get("/example.com/hello/@v/v1.0.0.mod").status == 200)
        let miss = try server.get("/example.com/hello/@v/v1.1.0.zip")
        #expect(miss.status == 302 && miss.headers["location"]?.contains("v1.1.0.zip?") == true)
        let target = try #require(miss.headers["location"])
        let fetched = try RGW.client.fetch(HTTPRequest(.get, url: target), limits: HTTPLimits(maxBodyBytes: 1 << 20, timeout: .seconds(30), idleTimeout: .seconds(30)))
        #expect(fetched.status == 200)
        #expect(fetched.body == Array(try Data(contentsOf: URL(fileURLWithPath: tree + "/example.com/hello/@v/v1.1.0.zip"))))
    }

    @Test("S3Storage urlSeconds out of range is refused at start-up naming the key")
    func badURLSeconds() throws {
        let bucket = try RGW.makeBucket("urlsec")
        for bad in [0, 604_801, 1.5] as [Any] {
            let error = #expect(throws: PluginError.self) {
                _ = try StoragePlugin(library: PluginLibrary(path: Self.plugin), configJSON: RGW.json(RGW.config(bucket: bucket, ["urlSeconds": bad])))
            }
            #expect(error?.message.contains("config.urlSeconds") == true, "\(String(describing: error))")
        }
    }
}
