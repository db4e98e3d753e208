// Fuzz target: S3Storage's XML reader (Plugins/S3Storage/Core/XMLReader.swift) and the S3 answers decoded with it
// (S3Responses.swift): ListObjectsV2 pages, errors, multipart answers, all of which come from the network.
// Those two files are compiled into this binary (see extra_sources in run.sh).
//
// Input: any bytes. Besides "never traps", checks: an accepted document serializes to one the reader reads back
// equal (and serializing that gives the same text); the typed decoders agree with the tree (a truncated page has a
// token; keys are the Contents' Key texts); a CompleteMultipartUpload body built from any texts reads back to them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    guard let root = try? XMLReader.parse(bytes) else {
        // A document the reader refuses is refused by every decoder too.
        require((try? ListObjectsPage(xml: bytes)) == nil, "ListObjectsPage accepted what the reader refused")
        require((try? S3ErrorDocument(xml: bytes)) == nil, "S3ErrorDocument accepted what the reader refused")
        return 0
    }
    let text = root.serialized()
    guard let again = try? XMLReader.parse(Array(text.utf8)) else {
        require(false, "serialized form does not parse: \(text.debugDescription)")
        return 0
    }
    require(again == root, "round trip changed the tree: \(text.debugDescription)")
    require(again.serialized() == text, "serialization is not stable")

    if let page = try? ListObjectsPage(xml: bytes) {
        require(root.name == "ListBucketResult", "page from a \(root.name)")
        require(page.keys == root.children("Contents").map { $0.value("Key") ?? "" }, "keys differ from the tree")
        require(!page.isTruncated || !(page.nextContinuationToken ?? "").isEmpty, "truncated page without token")
    }
    if let error = try? S3ErrorDocument(xml: bytes) {
        require(root.name == "Error" && !error.code.isEmpty, "error document without code")
    }
    if let upload = try? InitiatedUpload(xml: bytes) {
        require(!upload.uploadID.isEmpty, "empty upload id")
    }
    _ = try? CompletedUpload(xml: bytes)

    // Any texts (ETags come from the server) make a completion body that reads back to the same parts.
    let etags = ([root] + root.children).map(\.text)
    let body = CompletedUpload.requestBody(etags: etags)
    guard let parsed = try? XMLReader.parse(body) else {
        require(false, "completion body does not parse")
        return 0
    }
    require(parsed.children("Part").map { $0.value("ETag") ?? "\u{0}" } == etags, "completion body lost ETags")
    require(parsed.children("Part").map { $0.value("PartNumber") ?? "" } == etags.indices.map { String($0 + 1) }, "part numbers")
    return 0
}
