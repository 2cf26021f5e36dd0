import ChunkStore
import Foundation
import Testing
@testable import RemoteBackends

/// The pieces of the remote backends that need no server: XML replies, tree listing, error classes.
@Suite struct ParsingTests {
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

    /// A tree of folders listed one at a time gives the same pages as a flat sorted listing.
    @Test func treeListingMatchesAFlatSortedListing() async throws {
        let names = ["keyring", "data/aa/1", "data/aa/2", "data/ab/3", "data/b/4", "data.x", "lis", "list-other",
                     "list/00/a", "list/01/b", "list/01/.b.a67-partial-123", "z"]
        func folder(_ path: String) -> [FolderEntry] {
            var entries: [String: FolderEntry] = [:]
            for name in names where name.hasPrefix(path) {
                let rest = name.dropFirst(path.count)
                if let slash = rest.firstIndex(of: "/") {
                    let sub = String(rest[..<slash])
                    entries[sub] = FolderEntry(name: sub, isFolder: true, size: 0)
                } else {
                    entries[String(rest)] = FolderEntry(name: String(rest), isFolder: false, size: rest.count)
                }
            }
            return Array(entries.values).shuffled()
        }
        let visible = names.filter { !$0.contains(".a67-partial-") }
        for prefix in ["", "data/", "data/a", "list", "list/01/", "nothing"] {
            for limit in [1, 2, 5, 100] {
                var seen: [String] = []
                var after: String?
                repeat {
                    let page = try await TreeListing.list(prefix: prefix, after: after, limit: limit) { folder($0) }
                    #expect(page.objects.count <= limit)
                    seen += page.objects.map(\.name)
                    after = page.nextAfter
                } while after != nil
                let expected = visible.filter { $0.hasPrefix(prefix) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                #expect(seen == expected, "prefix \(prefix) limit \(limit)")
            }
        }
    }

    @Test func httpStatusesAreClassified() {
        func classify(_ status: Int, _ code: String? = nil, retryAfter: String? = nil) -> BackendError {
            RemoteErrors.classify(status: status, code: code, message: nil, retryAfter: retryAfter, at: "s3 x", name: "n")
        }
        #expect(classify(404) == .notFound("n"))
        #expect(!classify(403).isRetryable)
        #expect(!classify(401).isRetryable)
        #expect(!classify(400).isRetryable)
        #expect(classify(500).isRetryable && classify(502).isRetryable && classify(408).isRetryable)
        #expect(classify(429, retryAfter: "3") == .throttled("s3 x: HTTP 429", retryAfter: 3))
        #expect(classify(503, "SlowDown").isRetryable)
        if case .full = classify(507) {} else { Issue.record("507 is not full") }
        if case .full = classify(403, "QuotaExceeded") { Issue.record("403 QuotaExceeded must stay an access error") }
    }
}
