import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Replicator
import S3Protocol

/// The S3 API over one repository: routes each request to its operation, with the caller's
/// buckets only. Buckets belong to users; another user's bucket answers 403 AccessDenied, exactly
/// as a bucket the caller may not read.
struct S3Handler: Sendable {
    let server: BlobServer
    var repository: Repository { server.repository }
    var catalog: Catalog { server.repository.catalog }

    static let namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    func operation(_ r: S3Request) -> S3Operation {
        // A request for a subresource (?acl, ?cors, ?tagging...) is never taken for the plain
        // operation: a PUT ?acl must not replace the object, a DELETE ?cors must not remove the bucket.
        let bucketSub = Self.bucketSubresources.contains(where: r.has) || r.has("versioning")
        let objectSub = Self.objectSubresources.contains(where: r.has)
        switch (r.bucket, r.key, r.method) {
        case (nil, _, .get): return .listBuckets
        case (_?, nil, .put): return bucketSub ? .notImplemented : .createBucket
        case (_?, nil, .delete): return bucketSub ? .deleteBucketSubresource : .deleteBucket
        case (_?, nil, .head): return .headBucket
        case (_?, nil, .post) where r.has("delete"): return .deleteObjects
        case (_?, nil, .get):
            if r.has("location") { return .getBucketLocation }
            if r.has("versioning") { return .getBucketVersioning }
            if r.has("uploads") { return .listMultipartUploads }
            if r.has("versions") { return .listObjectVersions }
            if r.query["list-type"] == "2" { return .listObjectsV2 }
            if bucketSub { return .getBucketSubresource }
            return .listObjects
        case (_?, _?, .put):
            if objectSub { return .notImplemented }
            if r.has("uploadId") { return r.header("x-amz-copy-source") != nil ? .uploadPartCopy : .uploadPart }
            return r.header("x-amz-copy-source") != nil ? .copyObject : .putObject
        case (_?, _?, .get):
            if r.has("uploadId") { return .listParts }
            if r.has("acl") || r.has("tagging") { return .getObjectSubresource }
            if objectSub { return .notImplemented }
            return .getObject
        case (_?, _?, .head): return .headObject
        case (_?, _?, .delete):
            if objectSub { return r.has("tagging") ? .deleteObjectSubresource : .notImplemented }
            return r.has("uploadId") ? .abortMultipartUpload : .deleteObject
        case (_?, _?, .post):
            if r.has("uploads") { return .createMultipartUpload }
            if r.has("uploadId") { return .completeMultipartUpload }
            return objectSub ? .notImplemented : .unknown
        default: return .unknown
        }
    }

    static let bucketSubresources = ["acl", "policy", "cors", "lifecycle", "tagging", "encryption", "object-lock",
                                     "ownershipControls", "website", "logging", "notification", "replication",
                                     "requestPayment", "accelerate", "publicAccessBlock", "policyStatus", "analytics",
                                     "metrics", "inventory", "intelligent-tiering"]
    static let objectSubresources = ["acl", "tagging", "retention", "legal-hold", "attributes", "torrent", "restore", "select"]

    func handle(_ r: S3Request, _ op: S3Operation) async throws -> Response {
        try WriteHeaders.check(r, op)
        var response = try await dispatch(r, op)
        if WriteHeaders.encryptedAnswers.contains(op) {
            response.headers[HTTPField.Name(WriteHeaders.encryption)!] = WriteHeaders.sseS3
        }
        return response
    }

    private func dispatch(_ r: S3Request, _ op: S3Operation) async throws -> Response {
        switch op {
        case .listBuckets: return try listBuckets(r)
        case .createBucket: return try await createBucket(r)
        case .deleteBucket: return try await deleteBucket(r)
        case .headBucket:
            _ = try ownedBucket(r)
            return Response(status: .ok, headers: [HTTPField.Name("x-amz-bucket-region")!: server.region])
        case .getBucketLocation:
            _ = try ownedBucket(r)
            return xml(XMLWriter.document("LocationConstraint") { x in x.raw("") })
        case .getBucketVersioning:
            _ = try ownedBucket(r)
            return xml(XMLWriter.document("VersioningConfiguration") { _ in })
        case .getBucketSubresource: return try bucketSubresource(r)
        case .listObjectsV2, .listObjects, .listObjectVersions: return try list(r, op)
        case .listMultipartUploads: return try listUploads(r)
        case .deleteObjects: return try await deleteObjects(r)
        case .putObject: return try await putObject(r)
        case .copyObject: return try await copyObject(r)
        case .getObject: return try getObject(r, head: false)
        case .headObject: return try getObject(r, head: true)
        case .deleteObject: return try await deleteObject(r)
        case .getObjectSubresource: return try objectSubresource(r)
        case .createMultipartUpload: return try await createUpload(r)
        case .uploadPart: return try await uploadPart(r, copy: false)
        case .uploadPartCopy: return try await uploadPart(r, copy: true)
        case .completeMultipartUpload: return try await completeUpload(r)
        case .abortMultipartUpload: return try await abortUpload(r)
        case .listParts: return try listParts(r)
        case .deleteBucketSubresource:
            // Nothing of the kind is ever configured: deleting it is done already.
            _ = try ownedBucket(r)
            return Response(status: .noContent)
        case .deleteObjectSubresource:
            let bucket = try ownedBucket(r)
            _ = try object(bucket, r.key!)
            return Response(status: .noContent)
        case .notImplemented:
            _ = try ownedBucket(r)
            throw S3Error.notImplemented("Setting or reading this subresource (\(r.query.keys.sorted().joined(separator: ", ")))")
        case .unknown:
            throw S3Error(.methodNotAllowed, "MethodNotAllowed", "The specified method \(r.method.rawValue) is not allowed against this resource")
        }
    }

    // MARK: - Buckets

    /// The caller's bucket `r.bucket`; 403 for another user's, as for any bucket the caller may not use.
    func ownedBucket(_ r: S3Request) throws -> BucketRecord {
        try ownedBucket(r.bucket!, r.principal)
    }

    func ownedBucket(_ name: String, _ principal: Principal) throws -> BucketRecord {
        do {
            try Names.validateBucket(name)
        } catch let error as StoreError {
            throw S3Error(.badRequest, "InvalidBucketName", error.message)
        }
        let bucket: BucketRecord
        do {
            bucket = try catalog.namespace.bucket(name)
        } catch let error as StoreError where error.code == .notFound {
            throw S3Error.noSuchBucket(name)
        }
        guard bucket.ownerID == principal.user.id else { throw S3Error.accessDenied() }
        return bucket
    }

    func listBuckets(_ r: S3Request) throws -> Response {
        let mine = try catalog.namespace.buckets().filter { $0.bucket.ownerID == r.principal.user.id }
        return xml(XMLWriter.document("ListAllMyBucketsResult") { x in
            owner(&x, r.principal.user.name)
            x.element("Buckets") { x in
                for summary in mine {
                    x.element("Bucket") { x in
                        x.element("Name", summary.bucket.name)
                        x.element("CreationDate", HTTPDates.iso8601(Self.date(summary.bucket.createdAt)))
                    }
                }
            }
        })
    }

    func createBucket(_ r: S3Request) async throws -> Response {
        let name = r.bucket!
        do {
            try Names.validateBucket(name)
        } catch let error as StoreError {
            throw S3Error(.badRequest, "InvalidBucketName", error.message)
        }
        // The body, if any, is a CreateBucketConfiguration naming a region: every region is this one.
        _ = try await xmlBody(r, root: "CreateBucketConfiguration", limit: 64 * 1024, optional: true)
        if let existing = try? catalog.namespace.bucket(name) {
            if existing.ownerID == r.principal.user.id {
                throw S3Error(.conflict, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it")
            }
            throw S3Error(.conflict, "BucketAlreadyExists", "The requested bucket name is not available: bucket names are shared by every user. Select a different name and try again")
        }
        do {
            let owner = r.principal.user.id
            _ = try await repository.createBucket(name, owner: owner)
        } catch let error as StoreError where error.code == .alreadyExists {
            throw S3Error(.conflict, "BucketAlreadyExists", "The requested bucket name is not available. Select a different name and try again")
        }
        server.changed()
        return Response(status: .ok, headers: [.location: "/\(name)"])
    }

    func deleteBucket(_ r: S3Request) async throws -> Response {
        let bucket = try ownedBucket(r)
        let catalog = self.catalog
        do {
            try await offPool { try catalog.namespace.removeBucket(bucket.name) }
        } catch let error as StoreError where error.code == .conflict {
            throw S3Error(.conflict, "BucketNotEmpty", "The bucket you tried to delete is not empty")
        }
        server.changed()
        return Response(status: .noContent)
    }

    func bucketSubresource(_ r: S3Request) throws -> Response {
        _ = try ownedBucket(r)
        if r.has("acl") { return xml(acl(r.principal.user.name)) }
        let missing: [String: (String, String)] = [
            "policy": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
            "cors": ("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
            "lifecycle": ("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
            "tagging": ("NoSuchTagSet", "The TagSet does not exist"),
            "website": ("NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"),
            "object-lock": ("ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"),
            "ownershipControls": ("OwnershipControlsNotFoundError", "The bucket ownership controls were not found"),
            "publicAccessBlock": ("NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"),
        ]
        for (name, answer) in missing where r.has(name) { throw S3Error(.notFound, answer.0, answer.1) }
        if r.has("encryption") {
            // Every object is encrypted (WriteHeaders): the bucket's default, as S3 answers for SSE-S3.
            return xml(XMLWriter.document("ServerSideEncryptionConfiguration") { x in
                x.element("Rule") { x in
                    x.element("ApplyServerSideEncryptionByDefault") { x in x.element("SSEAlgorithm", WriteHeaders.sseS3) }
                    x.element("BucketKeyEnabled", "false")
                }
            })
        }
        if r.has("logging") { return xml(XMLWriter.document("BucketLoggingStatus") { _ in }) }
        if r.has("notification") { return xml(XMLWriter.document("NotificationConfiguration") { _ in }) }
        if r.has("requestPayment") {
            return xml(XMLWriter.document("RequestPaymentConfiguration") { x in x.element("Payer", "BucketOwner") })
        }
        throw S3Error.notImplemented("This bucket subresource")
    }

    func objectSubresource(_ r: S3Request) throws -> Response {
        let bucket = try ownedBucket(r)
        _ = try object(bucket, r.key!)
        if r.has("acl") { return xml(acl(r.principal.user.name)) }
        return xml(XMLWriter.document("Tagging") { x in x.element("TagSet") { _ in } })
    }

    func acl(_ user: String) -> [UInt8] {
        XMLWriter.document("AccessControlPolicy") { x in
            owner(&x, user)
            x.element("AccessControlList") { x in
                x.raw("<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">")
                x.element("ID", user)
                x.element("DisplayName", user)
                x.raw("</Grantee>")
                x.element("Permission", "FULL_CONTROL")
                x.raw("</Grant>")
            }
        }
    }

    // MARK: - Helpers

    /// A request's small XML body (read whole, checked like any body), whose root must be `root`;
    /// nil for an empty body when that is allowed.
    func xmlBody(_ r: S3Request, root: String, limit: Int, optional: Bool = false) async throws -> S3Protocol.XMLElement? {
        let body = try RequestBodyReader(r.request, payload: r.payload, quota: nil)
        let bytes = try await body.readAll(limit: limit)
        _ = try body.finish()
        if bytes.isEmpty && optional { return nil }
        guard let element = S3Protocol.XMLElement.parse(bytes), element.name == root else {
            throw S3Error.malformedXML("expected one \(root) element, well-formed and nested at most \(S3Protocol.XMLElement.maxDepth) levels deep")
        }
        return element
    }

    /// Streams a request's body into chunks (room taken under `quota` as it arrives) and checks it;
    /// returns the chunks, the body's MD5 and the checksum the client sent, if any. Run inside `whileStoring`.
    func storeBody(_ r: S3Request, writer: ObjectWriter, policy: ReplicaPolicy, quota: QuotaReservation) async throws
        -> (stored: ObjectWriter.StoredChunks, md5: [UInt8], checksum: (String, String)?) {
        let body = try RequestBodyReader(r.request, payload: r.payload, quota: quota)
        let stored = try await writer.storeChunks(reading: { try await body.read(upTo: $0) }, policy: policy)
        server.metrics.received(body.received)
        let md5 = try body.finish()
        return (stored, md5, body.checksumHeader)
    }

    /// The answer to a stored upload: its ETag (the MD5) and the checksum the client sent.
    func uploaded(md5: [UInt8], checksum: (String, String)?) -> Response {
        var headers: HTTPFields = [.eTag: "\"\(Hex.encode(md5))\""]
        if let (name, value) = checksum, let field = HTTPField.Name(name) { headers[field] = value }
        return Response(status: .ok, headers: headers)
    }

    func owner(_ x: inout XMLWriter, _ user: String) {
        x.element("Owner") { x in
            x.element("ID", user)
            x.element("DisplayName", user)
        }
    }

    func xml(_ body: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/xml"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func date(_ nanoseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1e9) }

    /// The object at `key` of `bucket`; NoSuchKey when there is none, 400 for a key that cannot be.
    func object(_ bucket: BucketRecord, _ key: String) throws -> ObjectRecord {
        let segments = try Self.segments(key)
        do {
            return try catalog.namespace.object(bucket: bucket, segments: segments)
        } catch let error as StoreError where error.code == .notFound {
            throw S3Error.noSuchKey(key)
        }
    }

    static func segments(_ key: String) throws -> [String] {
        do {
            return try Names.keySegments(key)
        } catch let error as StoreError {
            if key.utf8.count > Names.maxKeyBytes {
                throw S3Error(.badRequest, "KeyTooLongError", "Your key is too long: \(key.utf8.count) bytes; keys are at most 1024 bytes")
            }
            throw S3Error.invalidArgument(error.message)
        }
    }

    /// An object's ETag, unquoted (`Manifest.etag`: the one definition conditional writes compare with).
    static func etag(_ attributes: [String: String], manifest: ChunkID) -> String {
        Manifest.etag(attributes: attributes, id: manifest)
    }
}
