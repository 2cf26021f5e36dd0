import Foundation
import S3Protocol
import Testing

/// The XML reader both the remote backends (S3 listings, WebDAV multistatus replies) and the server
/// (request bodies) use, and the writer of the server's replies.
@Suite struct XMLParsingTests {
    @Test func readsAnS3Listing() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
            <Contents><Key>p/data/aa/x&amp;y</Key><Size>12</Size></Contents><Contents><Key>p/z</Key><Size>0</Size></Contents>
            <IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>
            """
        let doc = try #require(XMLElement.parse(Array(xml.utf8)))
        #expect(doc.name == "ListBucketResult")
        #expect(doc.children("Contents").compactMap { $0.child("Key")?.text } == ["p/data/aa/x&y", "p/z"])
        #expect(doc.child("IsTruncated")?.text == "true")
    }

    @Test func readsAWebDAVMultistatusWithPrefixes() throws {
        let xml = """
            <?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/r/data/</D:href>
            <D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
            <D:response><D:href>/r/data/a%20b</D:href><D:propstat><D:prop><D:resourcetype/>
            <D:getcontentlength>42</D:getcontentlength></D:prop></D:propstat></D:response></D:multistatus>
            """
        let doc = try #require(XMLElement.parse(Array(xml.utf8)))
        let responses = doc.children("response")
        #expect(responses.count == 2)
        #expect(responses[0].descendants("collection").count == 1)
        #expect(responses[1].descendants("getcontentlength").first?.text == "42")
    }

    @Test func refusesBrokenXML() {
        #expect(XMLElement.parse(Array("<a><b></a>".utf8)) == nil)
        #expect(XMLElement.parse(Array("<a>".utf8)) == nil)
    }

    /// Past `maxDepth` levels a document is refused, closed or not; at the limit it is read. 50,000
    /// levels (what once took a67 serve down) comes back nil rather than overflowing the stack.
    @Test func refusesDeepNesting() throws {
        func nested(_ depth: Int, closed: Bool = true) -> [UInt8] {
            Array((String(repeating: "<a>", count: depth) + (closed ? String(repeating: "</a>", count: depth) : "")).utf8)
        }
        var deepest = try #require(XMLElement.parse(nested(XMLElement.maxDepth)))
        var levels = 1
        while let next = deepest.child("a") {
            deepest = next
            levels += 1
        }
        #expect(levels == XMLElement.maxDepth)
        #expect(XMLElement.parse(nested(XMLElement.maxDepth + 1)) == nil)
        #expect(XMLElement.parse(Array("<a><b/>".utf8) + nested(XMLElement.maxDepth) + Array("</a>".utf8)) == nil)
        #expect(XMLElement.parse(nested(50_000)) == nil)
        #expect(XMLElement.parse(nested(50_000, closed: false)) == nil)
    }

    @Test func descendantsInDocumentOrder() throws {
        let doc = try #require(XMLElement.parse(Array("<r><x>1<x>2</x></x><y><x>3</x></y><x>4</x></r>".utf8)))
        #expect(doc.descendants("x").map { $0.text } == ["1", "2", "3", "4"])
    }

    /// What the writer escapes, the reader gives back.
    @Test func writtenTextReadsBack() throws {
        let text = "a<b>&\"c'\u{1}d\te\u{e9}"
        let bytes = XMLWriter.document("Error") { x in
            x.element("Message", text)
            x.element("Outer") { $0.element("Key", "k") }
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<Error xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Message>a&lt;b&gt;&amp;&quot;c&apos;&#x1;d\te\u{e9}</Message>"
            + "<Outer><Key>k</Key></Outer></Error>")
        let doc = try #require(XMLElement.parse(bytes))
        #expect(doc.child("Message")?.text == text)
        #expect(doc.child("Outer")?.child("Key")?.text == "k")
    }
}
