import Testing
import S3Core

/// The XML reader and the S3 answers decoded with it: what S3 and RGW send, and hostile input.
@Suite("S3 XML reader")
struct S3XMLTests {
    static func parse(_ text: String) throws(XMLError) -> XMLNode { try XMLReader.parse(Array(text.utf8)) }

    @Test("a ListObjectsV2 page as RGW sends it")
    func listPage() throws {
        let xml = """
        <?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
        <Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>\
        <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
        <Contents><Key>p/example.com/@v/v1.0.0.info</Key><LastModified>2026-12-01T09:00:00.000Z</LastModified>\
        <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>54</Size><StorageClass>STANDARD</StorageClass></Contents>\
        <Contents><Key>p/a &amp; b &#x263A; &#65;</Key></Contents></ListBucketResult>
        """
        let page = try ListObjectsPage(xml: Array(xml.utf8))
        #expect(page.keys == ["p/example.com/@v/v1.0.0.info", "p/a & b ☺ A"])
        #expect(page.isTruncated)
        #expect(page.nextContinuationToken == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        let last = try ListObjectsPage(xml: Array("<ListBucketResult><IsTruncated>false</IsTruncated><CommonPrefixes><Prefix>x/</Prefix></CommonPrefixes></ListBucketResult>".utf8))
        #expect(last.keys.isEmpty && !last.isTruncated && last.commonPrefixes == ["x/"])
    }

    @Test("errors, multipart answers, and a 200 CompleteMultipartUpload carrying an Error")
    func otherAnswers() throws {
        let error = try S3ErrorDocument(xml: Array("<Error><Code>SlowDown</Code><Message>Please reduce</Message><RequestId>tx1</RequestId></Error>".utf8))
        #expect(error == S3ErrorDocument(code: "SlowDown", message: "Please reduce"))
        #expect(try InitiatedUpload(xml: Array("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>2~xyz</UploadId></InitiateMultipartUploadResult>".utf8)).uploadID == "2~xyz")
        #expect(try CompletedUpload(xml: Array("<CompleteMultipartUploadResult><ETag>\"e-2\"</ETag></CompleteMultipartUploadResult>".utf8)) == .completed(etag: "\"e-2\""))
        #expect(try CompletedUpload(xml: Array("\n\n<Error><Code>InternalError</Code></Error>".utf8)) == .failed(S3ErrorDocument(code: "InternalError", message: "")))
        let body = String(decoding: CompletedUpload.requestBody(etags: ["\"a\"", "\"b\""]), as: UTF8.self)
        #expect(body == "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>")
    }

    @Test("CDATA, comments, processing instructions, self-closing tags, prefixes and attributes")
    func constructs() throws {
        let node = try Self.parse("<!-- c --><s:R a='1' b=\"&lt;\"><A><![CDATA[<x>&amp;]]></A><!-- d --><?pi x?><B/><s:C>t</s:C></s:R>\n")
        #expect(node == XMLNode(name: "R", children: [XMLNode(name: "A", text: "<x>&amp;"), XMLNode(name: "B"), XMLNode(name: "C", text: "t")]))
    }

    @Test("round trip: a serialized node reads back equal")
    func roundTrip() throws {
        let node = XMLNode(name: "R", text: "a<&>\"'b\u{1F600}", children: [XMLNode(name: "x", text: "]]>"), XMLNode(name: "y")])
        #expect(try XMLReader.parse(Array(node.serialized().utf8)) == node)
    }

    @Test("hostile or broken documents are refused with a reason, never a crash", arguments: [
        "", "   ", "<", "<a", "<a>", "<a></b>", "<a></a><b></b>", "<a></a>junk", "text", "<a>&bogus;</a>", "<a>&#0;</a>",
        "<a>&#xD800;</a>", "<a>&#x110000;</a>", "<a>&#-1;</a>", "<a>&#x+41;</a>", "<a>&amp</a>", "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
        "<a><!ENTITY x></a>", "<a b></a>", "<a b=c></a>", "<a b=\"<\"></a>", "<a b=\"x\"c=\"y\"></a>", "<a><![CDATA[x</a>", "<a><!-- x</a>",
        "<1a></1a>", "<a>\u{FF}</a>",
        String(repeating: "<a>", count: 33) + String(repeating: "</a>", count: 33),
    ])
    func refused(text: String) {
        #expect(throws: XMLError.self) { _ = try XMLReader.parse(text == "<a>\u{FF}</a>" ? [60, 97, 62, 0xFF, 60, 47, 97, 62] : Array(text.utf8)) }
    }

    @Test("documents of the wrong kind are refused by the typed decoders")
    func wrongKind() {
        #expect(throws: XMLError.self) { _ = try ListObjectsPage(xml: Array("<Error><Code>x</Code></Error>".utf8)) }
        #expect(throws: XMLError.self) { _ = try ListObjectsPage(xml: Array("<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>".utf8)) }
        #expect(throws: XMLError.self) { _ = try ListObjectsPage(xml: Array("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>".utf8)) }
        #expect(throws: XMLError.self) { _ = try ListObjectsPage(xml: Array("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>".utf8)) }
        #expect(throws: XMLError.self) { _ = try S3ErrorDocument(xml: Array("<Error><Message>no code</Message></Error>".utf8)) }
        #expect(throws: XMLError.self) { _ = try InitiatedUpload(xml: Array("<InitiateMultipartUploadResult/>".utf8)) }
        #expect(throws: XMLError.self) { _ = try CompletedUpload(xml: Array("<Other/>".utf8)) }
    }
}
