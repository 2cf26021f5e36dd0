import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Replicator
import S3Protocol

/// Which request headers an object keeps (in its manifest's attributes) and gives back.
enum ObjectAttributes {
    static let etag = Manifest.etagAttribute
    static let stored = ["content-type", "cache-control", "content-disposition", "content-encoding", "content-language", "expires"]
    static let maxUserMetadata = 2048

    static func from(_ r: S3Request) throws -> [String: String] {
        var out: [String: String] = [:]
        for name in stored {
            guard var value = r.header(name) else { continue }
            if name == "content-encoding" {
                // aws-chunked is the transfer's framing, not the object's encoding.
                value = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { $0 != "aws-chunked" && !$0.isEmpty }.joined(separator: ",")
                if value.isEmpty { continue }
            }
            out[name] = value
        }
        var metadataBytes = 0
        for field in r.request.headers {
            let name = field.name.canonicalName
            guard name.hasPrefix("x-amz-meta-") else { continue }
            let value = MetadataValue.stored(field.value)
            out[name] = (out[name].map { $0 + "," } ?? "") + value
            metadataBytes += name.utf8.count - "x-amz-meta-".count + value.utf8.count
        }
        guard metadataBytes <= maxUserMetadata else {
            throw S3Error(.badRequest, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size of 2 KB (\(metadataBytes) bytes)")
        }
        return out
    }
}

extension S3Handler {
    /// Room under the bucket owner's quota for one upload, released when the request ends (what it
    /// stored counts in the owner's usage by then).
    func quota(_ bucket: BucketRecord) -> QuotaReservation { QuotaReservation(catalog: catalog, user: bucket.ownerID) }

    var owner: (uid: UInt32, gid: UInt32, mode: UInt32) { (getuid(), getgid(), 0o644) }

    func putObject(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let key = r.key!
        let segments = try Self.segments(key)
        var attributes = try ObjectAttributes.from(r)
        let condition = try writeCondition(r)
        try checkEarly(condition, bucket: bucket, key: key, segments: segments)
        let quota = quota(bucket)
        defer { quota.release() }
        let writer = try repository.objectWriter(window: server.window)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        let (md5, checksum) = try await repository.whileStoring { () async throws -> ([UInt8], (String, String)?) in
            let body = try await storeBody(r, writer: writer, policy: policy, quota: quota)
            attributes[ObjectAttributes.etag] = Hex.encode(body.md5)
            _ = try await conditionally(key: key) {
                try await writer.commit(body.stored, attributes: attributes, bucket: bucket, key: key, segments: segments,
                                        owner: owner, condition: condition)
            }
            return (body.md5, body.checksum)
        }
        server.changed()
        return uploaded(md5: md5, checksum: checksum)
    }

    func copySource(_ r: S3Request) throws -> (bucket: BucketRecord, object: ObjectRecord) {
        var source = r.header("x-amz-copy-source")!
        if let q = source.firstIndex(of: "?") {
            let version = source[source.index(after: q)...]
            guard version == "versionId=null" || version.isEmpty else {
                throw S3Error(.notFound, "NoSuchVersion", "The specified version does not exist (versioning is off: only version null exists)")
            }
            source = String(source[..<q])
        }
        guard let decoded = source.removingPercentEncoding else {
            throw S3Error.invalidArgument("x-amz-copy-source is not valid percent-encoded UTF-8")
        }
        let trimmed = decoded.hasPrefix("/") ? decoded.dropFirst() : Substring(decoded)
        guard let slash = trimmed.firstIndex(of: "/"), trimmed.index(after: slash) < trimmed.endIndex else {
            throw S3Error.invalidArgument("x-amz-copy-source must be BUCKET/KEY")
        }
        let bucket = try ownedBucket(String(trimmed[..<slash]), r.principal)
        let object = try object(bucket, String(trimmed[trimmed.index(after: slash)...]))
        try checkPreconditions(r, object: object, prefix: "x-amz-copy-source-", forCopy: true)
        return (bucket, object)
    }

    /// CopyObject shares the source's chunks: with the metadata copied the very manifest is shared;
    /// with it replaced, a new manifest lists the same chunks. No object bytes are read or written.
    func copyObject(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let key = r.key!
        let segments = try Self.segments(key)
        let source = try copySource(r)
        let condition = try writeCondition(r)
        try checkEarly(condition, bucket: bucket, key: key, segments: segments)
        let replace = r.header("x-amz-metadata-directive")?.uppercased() == "REPLACE"
        if !replace && source.bucket.id == bucket.id && source.object.key == segments.joined(separator: "/") {
            throw S3Error(.badRequest, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata")
        }
        let quota = quota(bucket)
        defer { quota.release() }
        try quota.cover(source.object.size)
        var attributes = source.object.manifest.attributes
        if replace {
            attributes = try ObjectAttributes.from(r)
            attributes[ObjectAttributes.etag] = source.object.manifest.attributes[ObjectAttributes.etag]
        }
        let writer = try repository.objectWriter()
        let result = try await conditionally(key: key) {
            try await repository.whileStoring {
                try await writer.commit(ObjectWriter.StoredChunks(entries: source.object.manifest.entries), attributes: attributes,
                                        bucket: bucket, key: key, segments: segments, owner: owner, condition: condition)
            }
        }
        server.changed()
        let etag = Self.etag(attributes, manifest: result.manifestID)
        return xml(XMLWriter.document("CopyObjectResult") { x in
            x.element("LastModified", HTTPDates.iso8601(Date()))
            x.element("ETag", "\"\(etag)\"")
        })
    }

    func getObject(_ r: S3Request, head: Bool) throws -> Response {
        let bucket = try ownedBucket(r)
        if let part = r.query["partNumber"], part != "1" {
            throw S3Error.invalidArgument("partNumber \(part) cannot be read: objects are served whole or by Range")
        }
        let object = try object(bucket, r.key!)
        try checkPreconditions(r, object: object)
        let attributes = object.manifest.attributes
        let size = object.size
        var headers = HTTPFields()
        headers[.eTag] = "\"\(Self.etag(attributes, manifest: object.manifestID))\""
        headers[.lastModified] = HTTPDates.format(Self.date(object.mtime))
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = attributes["content-type"] ?? "binary/octet-stream"
        for (name, value) in attributes where name != ObjectAttributes.etag && name != "content-type" {
            if let field = HTTPField.Name(name) { headers[field] = name.hasPrefix("x-amz-meta-") ? MetadataValue.sent(value) : value }
        }
        let overrides = ["response-content-type": "content-type", "response-content-language": "content-language",
                         "response-expires": "expires", "response-cache-control": "cache-control",
                         "response-content-disposition": "content-disposition", "response-content-encoding": "content-encoding"]
        for (parameter, name) in overrides {
            if let value = r.query[parameter], let field = HTTPField.Name(name) { headers[field] = value }
        }
        var range: ClosedRange<Int64>?
        var status = HTTPResponse.Status.ok
        if let text = r.header("range"), let wanted = try Self.parseRange(text, size: size) {
            range = wanted
            status = .partialContent
            headers[.contentRange] = "bytes \(wanted.lowerBound)-\(wanted.upperBound)/\(size)"
        }
        let length = range.map { $0.upperBound - $0.lowerBound + 1 } ?? size
        headers[.contentLength] = String(length)
        if head || length == 0 {
            return Response(status: status, headers: headers)
        }
        let reader = try repository.objectReader()
        let metrics = server.metrics
        let bucketName = bucket.name
        let wanted = range
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { writer in
            try await reader.read(object, bucket: bucketName, range: wanted, write: { slice in
                try await writer.write(ByteBuffer(bytes: slice))
                metrics.sent(Int64(slice.count))
            })
            try await writer.finish(nil)
        })
    }

    /// "bytes=a-b", "bytes=a-" or "bytes=-n" against `size`; nil to serve the whole object (a form S3
    /// ignores, such as several ranges); 416 when nothing of the object is in range.
    static func parseRange(_ text: String, size: Int64) throws -> ClosedRange<Int64>? {
        guard text.hasPrefix("bytes="), !text.contains(",") else { return nil }
        let spec = text.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let unsatisfiable = S3Error(.rangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable",
                                    headers: [("Content-Range", "bytes */\(size)")])
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]) else { return nil }
            guard suffix > 0, size > 0 else { throw unsatisfiable }
            return max(0, size - suffix)...(size - 1)
        }
        guard let first = Int64(parts[0]) else { return nil }
        let last = parts[1].isEmpty ? Int64.max : Int64(parts[1])
        guard let last, last >= first else { return nil }
        guard first < size else { throw unsatisfiable }
        return first...min(last, size - 1)
    }

    func deleteObject(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let segments = try Self.segments(r.key!)
        do {
            let (catalog, condition) = (self.catalog, r.header("if-match").map { ObjectCondition(ifMatch: $0) })
            try await offPool { try catalog.namespace.removeObject(bucket: bucket, segments: segments, condition: condition) }
            server.changed()
        } catch let error as StoreError where error.code == .notFound {
            // S3 answers a delete of a missing key the same as any other.
        } catch let failure as ObjectConditionFailed {
            throw S3Error(failure, key: r.key!)
        }
        return Response(status: .noContent)
    }

    func deleteObjects(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let delete = try await xmlBody(r, root: "Delete", limit: 2 * 1024 * 1024)!
        let objects = delete.children("Object")
        guard !objects.isEmpty, objects.count <= 1000 else {
            throw S3Error.malformedXML("a Delete lists 1 to 1000 Object elements (this one has \(objects.count))")
        }
        let quiet = delete.child("Quiet")?.text.trimmingCharacters(in: .whitespaces).lowercased() == "true"
        var deleted: [String] = []
        var errors: [(String, String, String)] = []
        // The deletes done are snapshotted even when a later key fails the whole request.
        defer { server.changed() }
        for object in objects {
            guard let key = object.child("Key")?.text else { throw S3Error.malformedXML("an Object has no Key") }
            if let version = object.child("VersionId")?.text, version != "null" {
                errors.append((key, "NoSuchVersion", "The specified version does not exist"))
                continue
            }
            do {
                let segments = try Self.segments(key)
                // An ETag makes this object's delete conditional, as If-Match does DeleteObject's.
                let condition = object.child("ETag").map { ObjectCondition(ifMatch: $0.text) }
                let catalog = self.catalog
                try await offPool { try catalog.namespace.removeObject(bucket: bucket, segments: segments, condition: condition) }
                deleted.append(key)
            } catch let error as StoreError where error.code == .notFound {
                deleted.append(key)
            } catch let failure as ObjectConditionFailed {
                let error = S3Error(failure, key: key)
                errors.append((key, error.code, error.message))
            } catch let error as S3Error {
                errors.append((key, error.code, error.message))
            }
        }
        return xml(XMLWriter.document("DeleteResult") { x in
            if !quiet {
                for key in deleted { x.element("Deleted") { x in x.element("Key", key) } }
            }
            for (key, code, message) in errors {
                x.element("Error") { x in
                    x.element("Key", key)
                    x.element("Code", code)
                    x.element("Message", message)
                }
            }
        })
    }
}
