import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import S3Protocol

/// Conditional requests. Reads (GET, HEAD, and a copy's source through the x-amz-copy-source-if-*
/// headers) are checked against the object just read. Writes and deletes (If-Match and
/// If-None-Match: * on PutObject, CopyObject's destination, CompleteMultipartUpload, DeleteObject,
/// and DeleteObjects' per-object ETag) pass an `ObjectCondition` to the catalog, which checks it in
/// the transaction that makes the change: of two racing creates of one key, one gets 412.
extension S3Handler {
    /// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since (or their x-amz-copy-source-
    /// forms), in RFC 7232's order as S3 applies it: a failed If-Match (or, without one, a failed
    /// If-Unmodified-Since) is 412; then a matching If-None-Match (or, without one, an
    /// If-Modified-Since the object is not newer than) is 304, or 412 for a copy's source.
    func checkPreconditions(_ r: S3Request, object: ObjectRecord, prefix: String = "", forCopy: Bool = false) throws {
        let etag = Self.etag(object.manifest.attributes, manifest: object.manifestID)
        let modified = Double(object.mtime / 1_000_000_000)
        func failed(_ header: String) -> S3Error { S3Error.preconditionFailed(prefix.isEmpty ? header : prefix + header.lowercased()) }
        let ifMatch = r.header(prefix + "if-match")
        if let ifMatch, !Manifest.etagList(ifMatch, matches: etag) { throw failed("If-Match") }
        if ifMatch == nil, let since = r.header(prefix + "if-unmodified-since").flatMap(HTTPDates.parse),
           modified > since.timeIntervalSince1970 { throw failed("If-Unmodified-Since") }
        let notModified = S3Error(.notModified, "NotModified", "Not Modified",
                                  headers: [("ETag", "\"\(etag)\""), ("Last-Modified", HTTPDates.format(Self.date(object.mtime)))])
        let ifNoneMatch = r.header(prefix + "if-none-match")
        if let ifNoneMatch, Manifest.etagList(ifNoneMatch, matches: etag) { throw forCopy ? failed("If-None-Match") : notModified }
        if ifNoneMatch == nil, let since = r.header(prefix + "if-modified-since").flatMap(HTTPDates.parse),
           modified <= since.timeIntervalSince1970 { throw forCopy ? failed("If-Modified-Since") : notModified }
    }

    /// The condition a write puts on the object it replaces: If-Match (an ETag list or `*`) and
    /// If-None-Match, which S3 takes only as `*` on writes. Nil when there is none.
    func writeCondition(_ r: S3Request) throws -> ObjectCondition? {
        var condition = ObjectCondition(ifMatch: r.header("if-match"))
        if let value = r.header("if-none-match") {
            guard value.trimmingCharacters(in: .whitespaces) == "*" else {
                throw S3Error.notImplemented("If-None-Match with an ETag on a write (only If-None-Match: * is, to create a key only if it holds no object)")
            }
            condition.ifNoneMatchAny = true
        }
        return condition.isEmpty ? nil : condition
    }

    /// Refuses a conditional write early, before its body is stored, when the key's object already
    /// fails the condition (the catalog checks it again, atomically, at the commit).
    func checkEarly(_ condition: ObjectCondition?, bucket: BucketRecord, key: String, segments: [String]) throws {
        guard let condition else { return }
        var current: String?
        do {
            let object = try catalog.namespace.object(bucket: bucket, segments: segments)
            current = Self.etag(object.manifest.attributes, manifest: object.manifestID)
        } catch let error as StoreError where error.code == .notFound {}
        if let failure = condition.failure(current: current) { throw S3Error(failure, key: key) }
    }

    /// Runs a conditional change, answering a condition that did not hold as S3 does.
    func conditionally<T>(key: String, _ change: () async throws -> T) async throws -> T {
        do {
            return try await change()
        } catch let failure as ObjectConditionFailed {
            throw S3Error(failure, key: key)
        }
    }
}

extension S3Error {
    static func preconditionFailed(_ header: String) -> S3Error {
        S3Error(.preconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                condition: header)
    }

    /// A conditional write's refusal: NoSuchKey when If-Match found no object (as S3 answers), else 412.
    init(_ failure: ObjectConditionFailed, key: String) {
        self = failure.noObject ? .noSuchKey(key) : .preconditionFailed(failure.header)
    }
}
