import ChunkStore
import Foundation
import Hummingbird
import S3Protocol

/// ListObjectsV2, ListObjects (v1) and ListObjectVersions (every entry version "null": buckets
/// have no versioning), with prefix, delimiter, paging and encoding-type=url.
extension S3Handler {
    struct Page {
        var contents: [ListEntry] = []
        var prefixes: [String] = []
        var truncated = false
        /// The last key or common prefix returned: where the next page starts after.
        var last: String?
    }

    func page(_ bucket: BucketRecord, prefix: String, delimiter: String?, startAfter: String?, maxKeys: Int) throws -> Page {
        var page = Page()
        guard maxKeys > 0 else { return page }
        if delimiter == nil || delimiter == "/" {
            let (entries, truncated) = try catalog.namespace.listPage(bucket: bucket, prefix: prefix, recursive: delimiter == nil,
                                                            startAfter: startAfter, limit: maxKeys)
            for entry in entries {
                if entry.isFolder { page.prefixes.append(entry.key) } else { page.contents.append(entry) }
            }
            page.truncated = truncated
            page.last = entries.last?.key
            return page
        }
        // Any other delimiter: walk every key after the start and fold them here.
        let delimiter = delimiter!
        var after = startAfter
        var count = 0
        var lastPrefix: String? = startAfter.flatMap { start in start.hasSuffix(delimiter) ? start : nil }
        scan: while true {
            let (entries, more) = try catalog.namespace.listPage(bucket: bucket, prefix: prefix, recursive: true, startAfter: after, limit: 1000)
            for entry in entries {
                after = entry.key
                if let lastPrefix, entry.key.hasPrefix(lastPrefix) { continue }
                let rest = entry.key.dropFirst(prefix.count)
                if count == maxKeys {
                    page.truncated = true
                    break scan
                }
                if let range = rest.range(of: delimiter) {
                    let common = prefix + rest[..<range.upperBound]
                    page.prefixes.append(common)
                    lastPrefix = common
                    page.last = common
                } else {
                    page.contents.append(entry)
                    page.last = entry.key
                }
                count += 1
            }
            if !more { break }
        }
        return page
    }

    func list(_ r: S3Request, _ op: S3Operation) throws -> Response {
        let bucket = try ownedBucket(r)
        let prefix = r.query["prefix"] ?? ""
        let delimiter = r.query["delimiter"].flatMap { $0.isEmpty ? nil : $0 }
        let encode = r.query["encoding-type"] == "url"
        if let encoding = r.query["encoding-type"], encoding != "url" {
            throw S3Error.invalidArgument("Invalid Encoding Method specified in Request: encoding-type is url or absent")
        }
        var maxKeys = 1000
        if let text = r.query["max-keys"] {
            guard let n = Int(text), n >= 0 else { throw S3Error.invalidArgument("max-keys must be a number from 0 to 1000") }
            maxKeys = min(n, 1000)
        }
        // encoding-type=url: everything but unreserved characters and `/` percent-encoded, as SigV4 encodes paths.
        func text(_ s: String) -> String { encode ? SigV4Signer.encode(s, keepSlash: true) : s }
        let name: String
        let start: String?
        var token: String?
        switch op {
        case .listObjectsV2:
            name = "ListBucketResult"
            if let given = r.query["continuation-token"] {
                guard let data = Data(base64Encoded: given), let key = String(data: data, encoding: .utf8) else {
                    throw S3Error.invalidArgument("The continuation token provided is incorrect")
                }
                token = given
                start = key
            } else {
                start = r.query["start-after"]
            }
        case .listObjectVersions:
            name = "ListVersionsResult"
            start = r.query["key-marker"].flatMap { $0.isEmpty ? nil : $0 }
        default:
            name = "ListBucketResult"
            start = r.query["marker"].flatMap { $0.isEmpty ? nil : $0 }
        }
        let page = try page(bucket, prefix: prefix, delimiter: delimiter, startAfter: start, maxKeys: maxKeys)
        let attributes = try catalog.namespace.attributes(of: page.contents.compactMap(\.manifestID))
        func etag(_ entry: ListEntry) -> String {
            guard let id = entry.manifestID else { return "" }
            return "\"\(Self.etag(attributes[id] ?? [:], manifest: id))\""
        }
        let user = r.principal.user.name
        let fetchOwner = op != .listObjectsV2 || r.query["fetch-owner"] == "true"
        let body = XMLWriter.document(name) { x in
            x.element("Name", bucket.name)
            x.element("Prefix", text(prefix))
            switch op {
            case .listObjectsV2:
                if let token { x.element("ContinuationToken", token) }
                if let after = r.query["start-after"] { x.element("StartAfter", text(after)) }
                x.element("KeyCount", String(page.contents.count + page.prefixes.count))
                if page.truncated, let last = page.last {
                    x.element("NextContinuationToken", Data(last.utf8).base64EncodedString())
                }
            case .listObjectVersions:
                x.element("KeyMarker", text(start ?? ""))
                x.element("VersionIdMarker", r.query["version-id-marker"] ?? "")
                if page.truncated, let last = page.last {
                    x.element("NextKeyMarker", text(last))
                    x.element("NextVersionIdMarker", "null")
                }
            default:
                x.element("Marker", text(start ?? ""))
                if page.truncated, let last = page.last { x.element("NextMarker", text(last)) }
            }
            x.element("MaxKeys", String(maxKeys))
            if let delimiter { x.element("Delimiter", text(delimiter)) }
            if encode { x.element("EncodingType", "url") }
            x.element("IsTruncated", page.truncated ? "true" : "false")
            for entry in page.contents {
                x.element(op == .listObjectVersions ? "Version" : "Contents") { x in
                    x.element("Key", text(entry.key))
                    if op == .listObjectVersions {
                        x.element("VersionId", "null")
                        x.element("IsLatest", "true")
                    }
                    x.element("LastModified", HTTPDates.iso8601(Self.date(entry.mtime)))
                    x.element("ETag", etag(entry))
                    x.element("Size", String(entry.size))
                    if fetchOwner { owner(&x, user) }
                    x.element("StorageClass", "STANDARD")
                }
            }
            for common in page.prefixes {
                x.element("CommonPrefixes") { x in x.element("Prefix", text(common)) }
            }
        }
        return xml(body)
    }
}
