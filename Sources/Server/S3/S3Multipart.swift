import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Replicator
import S3Protocol

/// Multipart uploads: each part is stored as chunks at once and held by the upload; completing
/// lists the parts' chunks in one manifest (no bytes are copied), aborting releases them.
extension S3Handler {
    static let minPartSize: Int64 = 5 * 1024 * 1024
    static let maxParts = 10_000

    func upload(_ r: S3Request, _ bucket: BucketRecord) throws -> UploadRecord {
        let id = r.query["uploadId"] ?? ""
        guard let upload = try? catalog.uploads.upload(id, bucket: bucket), upload.key == r.key else { throw S3Error.noSuchUpload(id) }
        return upload
    }

    func createUpload(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let key = r.key!
        _ = try Self.segments(key)
        let id = Hex.encode(Crypto.randomBytes(16))
        let (catalog, attributes) = (self.catalog, try ObjectAttributes.from(r))
        try await offPool { try catalog.uploads.create(id: id, bucket: bucket, key: key, attributes: attributes) }
        return xml(XMLWriter.document("InitiateMultipartUploadResult") { x in
            x.element("Bucket", bucket.name)
            x.element("Key", key)
            x.element("UploadId", id)
        })
    }

    func uploadPart(_ r: S3Request, copy: Bool) async throws -> Response {
        let bucket = try ownedBucket(r)
        guard let number = r.query["partNumber"].flatMap({ Int($0) }), (1...Self.maxParts).contains(number) else {
            throw S3Error.invalidArgument("Part number must be an integer between 1 and 10000, inclusive")
        }
        let upload = try upload(r, bucket)
        let writer = try repository.objectWriter(window: server.window)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        let quota = quota(bucket)
        defer { quota.release() }
        if copy {
            let source = try copySource(r)
            var range: ClosedRange<Int64> = 0...(source.object.size - 1)
            if let text = r.header("x-amz-copy-source-range") {
                guard let wanted = try Self.parseRange(text, size: source.object.size) else {
                    throw S3Error.invalidArgument("x-amz-copy-source-range must be bytes=FIRST-LAST")
                }
                range = wanted
            }
            let length = source.object.size == 0 ? 0 : range.upperBound - range.lowerBound + 1
            try quota.cover(length)
            let reader = try repository.objectReader()
            var cursor = range.lowerBound
            let md5 = StreamDigest(.md5)
            let sourceName = source.bucket.name
            try await repository.whileStoring {
                let stored = try await writer.storeChunks(reading: { count in
                    let end = min(range.upperBound + 1, cursor + Int64(count))
                    guard length > 0, cursor < end else { return [] }
                    var piece: [UInt8] = []
                    piece.reserveCapacity(Int(end - cursor))
                    try await reader.read(source.object, bucket: sourceName, range: cursor...(end - 1), write: { piece += $0 })
                    cursor = end
                    md5.update(piece)
                    return piece
                }, policy: policy)
                try await catalog.uploads.putPart(upload: upload.id, number: number, entries: stored.entries, etag: Hex.encode(md5.finish()),
                                          chunks: stored.unrecorded)
            }
            server.changed()
            return xml(XMLWriter.document("CopyPartResult") { x in
                x.element("LastModified", HTTPDates.iso8601(Date()))
                x.element("ETag", "\"\(Hex.encode(md5.finish()))\"")
            })
        }
        let (md5, checksum) = try await repository.whileStoring { () async throws -> ([UInt8], (String, String)?) in
            let body = try await storeBody(r, writer: writer, policy: policy, quota: quota)
            do {
                try await catalog.uploads.putPart(upload: upload.id, number: number, entries: body.stored.entries,
                                          etag: Hex.encode(body.md5), chunks: body.stored.unrecorded)
            } catch let error as StoreError where error.code == .notFound {
                throw S3Error.noSuchUpload(upload.id)
            }
            return (body.md5, body.checksum)
        }
        server.changed()
        return uploaded(md5: md5, checksum: checksum)
    }

    func completeUpload(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let upload = try upload(r, bucket)
        let complete = try await xmlBody(r, root: "CompleteMultipartUpload", limit: 4 * 1024 * 1024)!
        let condition = try writeCondition(r)
        try checkEarly(condition, bucket: bucket, key: upload.key, segments: try Self.segments(upload.key))
        var listed: [(number: Int, etag: String)] = []
        for part in complete.children("Part") {
            guard let number = part.child("PartNumber").flatMap({ Int($0.text.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                  let etag = part.child("ETag")?.text else {
                throw S3Error.malformedXML("every Part needs a PartNumber and an ETag")
            }
            listed.append((number, etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" \n\t"))))
        }
        guard !listed.isEmpty else {
            throw S3Error.malformedXML("a CompleteMultipartUpload lists at least one Part")
        }
        for (a, b) in zip(listed, listed.dropFirst()) where b.number <= a.number {
            throw S3Error(.badRequest, "InvalidPartOrder", "The list of parts was not in ascending order: part \(b.number) follows part \(a.number)")
        }
        let stored = Dictionary(uniqueKeysWithValues: try catalog.uploads.parts(upload: upload.id).map { ($0.number, $0) })
        var entries: [Manifest.Entry] = []
        var digests: [UInt8] = []
        for (index, item) in listed.enumerated() {
            guard let part = stored[item.number], part.etag == item.etag.lowercased() else {
                throw S3Error(.badRequest, "InvalidPart", "One or more of the specified parts could not be found or its ETag did not match: part \(item.number)")
            }
            if index < listed.count - 1 && part.size < Self.minPartSize {
                throw S3Error(.badRequest, "EntityTooSmall", "Part \(item.number) is \(part.size) bytes: every part but the last must be at least 5 MiB")
            }
            entries += part.entries
            digests += Hex.decode(part.etag) ?? []
        }
        let etag = Hex.encode(Crypto.md5(digests)) + "-\(listed.count)"
        var attributes = upload.attributes
        attributes[ObjectAttributes.etag] = etag
        let writer = try repository.objectWriter()
        do {
            _ = try await conditionally(key: upload.key) {
                try await repository.whileStoring {
                    try await writer.commit(ObjectWriter.StoredChunks(entries: entries), attributes: attributes, bucket: bucket,
                                            key: upload.key, owner: owner, releasing: upload.id, condition: condition)
                }
            }
        } catch let error as StoreError where error.code == .notFound {
            throw S3Error.noSuchUpload(upload.id)
        }
        server.changed()
        return xml(XMLWriter.document("CompleteMultipartUploadResult") { x in
            x.element("Location", "/\(bucket.name)/\(upload.key)")
            x.element("Bucket", bucket.name)
            x.element("Key", upload.key)
            x.element("ETag", "\"\(etag)\"")
        })
    }

    func abortUpload(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let upload = try upload(r, bucket)
        do {
            let catalog = self.catalog
            try await offPool { try catalog.uploads.abort(upload.id) }
        } catch let error as StoreError where error.code == .notFound {
            throw S3Error.noSuchUpload(upload.id)
        }
        server.changed()
        return Response(status: .noContent)
    }

    func listParts(_ r: S3Request) throws -> Response {
        let bucket = try ownedBucket(r)
        let upload = try upload(r, bucket)
        let marker = Int(r.query["part-number-marker"] ?? "") ?? 0
        let maxParts = min(1000, max(0, Int(r.query["max-parts"] ?? "") ?? 1000))
        let after = try catalog.uploads.parts(upload: upload.id).filter { $0.number > marker }
        let parts = Array(after.prefix(maxParts))
        let user = r.principal.user.name
        return xml(XMLWriter.document("ListPartsResult") { x in
            x.element("Bucket", bucket.name)
            x.element("Key", upload.key)
            x.element("UploadId", upload.id)
            x.element("Initiator") { x in x.element("ID", user); x.element("DisplayName", user) }
            owner(&x, user)
            x.element("StorageClass", "STANDARD")
            x.element("PartNumberMarker", String(marker))
            x.element("NextPartNumberMarker", String(parts.last?.number ?? marker))
            x.element("MaxParts", String(maxParts))
            x.element("IsTruncated", after.count > parts.count ? "true" : "false")
            for part in parts {
                x.element("Part") { x in
                    x.element("PartNumber", String(part.number))
                    x.element("LastModified", HTTPDates.iso8601(Self.date(part.createdAt)))
                    x.element("ETag", "\"\(part.etag)\"")
                    x.element("Size", String(part.size))
                }
            }
        })
    }

    func listUploads(_ r: S3Request) throws -> Response {
        let bucket = try ownedBucket(r)
        let prefix = r.query["prefix"] ?? ""
        let keyMarker = r.query["key-marker"] ?? ""
        let maxUploads = min(1000, max(0, Int(r.query["max-uploads"] ?? "") ?? 1000))
        let all = try catalog.uploads.list(bucket: bucket, prefix: prefix).filter {
            keyMarker.isEmpty || keyMarker.utf8.lexicographicallyPrecedes($0.key.utf8)
        }
        let uploads = Array(all.prefix(maxUploads))
        let user = r.principal.user.name
        return xml(XMLWriter.document("ListMultipartUploadsResult") { x in
            x.element("Bucket", bucket.name)
            x.element("KeyMarker", keyMarker)
            x.element("UploadIdMarker", r.query["upload-id-marker"] ?? "")
            x.element("NextKeyMarker", uploads.last?.key ?? "")
            x.element("NextUploadIdMarker", uploads.last?.id ?? "")
            x.element("Prefix", prefix)
            x.element("MaxUploads", String(maxUploads))
            x.element("IsTruncated", all.count > uploads.count ? "true" : "false")
            for upload in uploads {
                x.element("Upload") { x in
                    x.element("Key", upload.key)
                    x.element("UploadId", upload.id)
                    x.element("Initiator") { x in x.element("ID", user); x.element("DisplayName", user) }
                    owner(&x, user)
                    x.element("StorageClass", "STANDARD")
                    x.element("Initiated", HTTPDates.iso8601(Self.date(upload.createdAt)))
                }
            }
        })
    }
}
