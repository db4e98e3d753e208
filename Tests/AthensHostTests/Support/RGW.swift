import Foundation
import HTTPClient
import S3Core
import Digests

/// The Ceph RADOS Gateway that scripts/rgw.sh started (scripts/test.sh does, for the whole run); its address
/// and keys come from the environment. Tests make a bucket of their own and look into it with signed requests.
enum RGW {
    static let environment = ProcessInfo.processInfo.environment
    static let endpoint = environment["ATHENS_S3_TEST_ENDPOINT"] ?? ""
    static let accessKey = environment["ATHENS_S3_TEST_ACCESS_KEY"] ?? ""
    static let secretKey = environment["ATHENS_S3_TEST_SECRET_KEY"] ?? ""
    static let region = environment["ATHENS_S3_TEST_REGION"] ?? "us-east-1"
    /// The run folder (for `scripts/rgw.sh gateway PORT`).
    static let runDirectory = environment["ATHENS_S3_TEST_RGW_DIR"] ?? ""

    /// Whether a gateway was started for this run (`eval "$(scripts/rgw.sh start)"`, as scripts/test.sh does).
    static var isAvailable: Bool { !endpoint.isEmpty && !accessKey.isEmpty }

    static let client = HTTPClient()
    static let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: accessKey, secretAccessKey: secretKey), region: region)

    /// A signed request to `endpoint` (path style); the whole answer.
    @discardableResult
    static func send(_ method: HTTPMethod, bucket: String, key: String? = nil, query: [(name: String, value: String)] = [],
                     body: [UInt8] = [], endpoint: String = RGW.endpoint) throws -> HTTPResponse {
        let target = try S3Endpoint(endpoint: endpoint, bucket: bucket, addressing: .path)
        let path = target.encodedPath(key: key)
        let hash = SHA256.hexHash(body)
        var headers: [(name: String, value: String)] = [("Host", target.host), ("X-Amz-Content-SHA256", hash)]
        headers += signer.sign(method: method.rawValue, encodedPath: path, query: query, headers: headers, payloadHash: hash, date: .now())
        let request = HTTPRequest(method, url: target.url(encodedPath: path, query: query), headers: HTTPHeaders(headers.filter { $0.name != "Host" }),
                                  body: body.isEmpty ? .empty : .bytes(body))
        return try client.fetch(request, limits: HTTPLimits(maxBodyBytes: 64 << 20, timeout: .seconds(30), idleTimeout: .seconds(30)))
    }

    /// A new, empty bucket with a unique name.
    static func makeBucket(_ label: String = "t") throws -> String {
        let name = "athens-\(label)-" + UUID().uuidString.lowercased().prefix(13).replacingOccurrences(of: "-", with: "")
        let response = try send(.put, bucket: name)
        guard response.status == 200 else { throw TestFailure("create bucket \(name): HTTP \(response.status)") }
        return name
    }

    /// Every key in `bucket` (all pages).
    static func keys(_ bucket: String, prefix: String = "") throws -> [String] {
        var keys: [String] = []
        var token: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try send(.get, bucket: bucket, query: query)
            guard response.status == 200 else { throw TestFailure("list \(bucket): HTTP \(response.status)") }
            let page = try ListObjectsPage(xml: response.body)
            keys += page.keys
            token = page.isTruncated ? page.nextContinuationToken : nil
        } while token != nil
        return keys
    }

    /// The keys with multipart uploads in progress in `bucket`.
    static func uploadsInProgress(_ bucket: String) throws -> [String] {
        let response = try send(.get, bucket: bucket, query: [("uploads", "")])
        guard response.status == 200 else { throw TestFailure("list uploads \(bucket): HTTP \(response.status)") }
        return try XMLReader.parse(response.body).children("Upload").compactMap { $0.value("Key") }
    }

    /// Deletes every object and unfinished upload of `bucket`, then the bucket: the gateway keeps its data in a
    /// 4 GiB memstore shared by every test run, so a test that stores hundreds of MiB gives them back.
    static func removeBucket(_ bucket: String) throws {
        for key in try keys(bucket) { try send(.delete, bucket: bucket, key: key) }
        let response = try send(.get, bucket: bucket, query: [("uploads", "")])
        for upload in try XMLReader.parse(response.body).children("Upload") {
            guard let key = upload.value("Key"), let id = upload.value("UploadId") else { continue }
            try send(.delete, bucket: bucket, key: key, query: [("uploadId", id)])
        }
        try send(.delete, bucket: bucket)
    }

    /// S3Storage's config for `bucket`, plus `extra`.
    static func config(bucket: String, endpoint: String = RGW.endpoint, _ extra: [String: Any] = [:]) -> [String: Any] {
        ["endpoint": endpoint, "bucket": bucket, "region": region, "accessKeyId": accessKey, "secretAccessKey": secretKey]
            .merging(extra) { $1 }
    }

    /// A forwarding proxy to RGW that injects the faults of `rules` (Tests/Fixtures/s3_fault_proxy.py), logging each
    /// request into a file under `work`. The caller stops the process.
    static func faultProxy(_ rules: String, work: String, port: UInt16 = 0) throws -> (process: ChildProcess, endpoint: String, log: String) {
        let log = work + "/proxy-\(UUID().uuidString).log"
        let process = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/s3_fault_proxy.py",
                                                        "--target", endpoint, "--rules", rules, "--log", log, "--port", String(port)])
        guard let line = process.firstLine(), let port = line.split(separator: " ").last else {
            process.stop()
            throw TestFailure("proxy: \(process.stderr)")
        }
        return (process, "http://127.0.0.1:\(port)", log)
    }

    static func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
