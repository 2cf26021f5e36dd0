import ChunkStore
import Foundation
import Testing
@testable import RemoteBackends
import S3Protocol

/// The pieces of the remote backends that need no server: tree listing, error classes. (Their XML
/// reader is S3Protocol's: S3ProtocolTests.XMLParsingTests.)
@Suite struct ParsingTests {
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
        // Retry-After as an HTTP date: the seconds until then, none for a date past.
        let wait = RemoteErrors.parseRetryAfter(HTTPDates.format(Date().addingTimeInterval(120)))
        #expect(wait.map { (115...120).contains($0) } == true)
        #expect(RemoteErrors.parseRetryAfter(HTTPDates.format(Date().addingTimeInterval(-60))) == 0)
        #expect(RemoteErrors.parseRetryAfter("soon") == nil)
        #expect(classify(503, "SlowDown").isRetryable)
        if case .full = classify(507) {} else { Issue.record("507 is not full") }
        if case .full = classify(403, "QuotaExceeded") { Issue.record("403 QuotaExceeded must stay an access error") }
    }
}
