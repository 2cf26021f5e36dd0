import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird

/// One S3 request, parsed: who sent it, which bucket and key, the query, and how to check its body.
struct S3Request {
    let request: Request
    let principal: Principal
    let payload: PayloadCheck
    let bucket: String?
    /// The decoded key; nil for bucket and service requests.
    let key: String?
    let query: [String: String]
    let requestID: String

    var method: HTTPRequest.Method { request.method }
    func has(_ name: String) -> Bool { query[name] != nil }

    func header(_ name: String) -> String? {
        guard let field = HTTPField.Name(name) else { return nil }
        let values = request.headers[values: field]
        return values.isEmpty ? nil : values.joined(separator: ",")
    }
}

/// The request path split the way S3 reads it (path-style: /BUCKET/KEY).
struct S3Path {
    let raw: String
    let rawQuery: String
    let bucket: String?
    let key: String?
    let query: [(String, String)]

    /// `/`, the target a request's context holds until the request accounting parses the real one.
    static let root = S3Path(raw: "/", rawQuery: "", bucket: nil, key: nil, query: [])

    private init(raw: String, rawQuery: String, bucket: String?, key: String?, query: [(String, String)]) {
        (self.raw, self.rawQuery, self.bucket, self.key, self.query) = (raw, rawQuery, bucket, key, query)
    }

    init(_ target: String) throws {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        raw = parts.isEmpty || parts[0].isEmpty ? "/" : String(parts[0])
        rawQuery = parts.count > 1 ? String(parts[1]) : ""
        var items: [(String, String)] = []
        for item in rawQuery.split(separator: "&") where !item.isEmpty {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = String(pair[0]).removingPercentEncoding,
                  let value = (pair.count > 1 ? String(pair[1]) : "").removingPercentEncoding else {
                throw S3Error.invalidArgument("the query string is not valid percent-encoded UTF-8")
            }
            items.append((name, value))
        }
        query = items
        var path = Substring(raw)
        guard path.first == "/" else { throw S3Error.invalidArgument("the request path must start with /") }
        path = path.dropFirst()
        if path.isEmpty {
            bucket = nil
            key = nil
            return
        }
        let slash = path.firstIndex(of: "/")
        let bucketPart = slash.map { path[..<$0] } ?? path
        guard let bucketName = String(bucketPart).removingPercentEncoding else {
            throw S3Error(.badRequest, "InvalidBucketName", "The bucket name is not valid percent-encoded UTF-8")
        }
        bucket = bucketName
        if let slash, path.index(after: slash) < path.endIndex {
            guard let decoded = String(path[path.index(after: slash)...]).removingPercentEncoding else {
                throw S3Error.invalidArgument("The object key is not valid percent-encoded UTF-8")
            }
            key = decoded
        } else {
            key = nil
        }
    }
}

/// S3's names for the operations, for metrics and logs.
enum S3Operation: String, Sendable {
    case listBuckets = "ListBuckets", createBucket = "CreateBucket", deleteBucket = "DeleteBucket", headBucket = "HeadBucket"
    case getBucketLocation = "GetBucketLocation", getBucketVersioning = "GetBucketVersioning", getBucketSubresource = "GetBucketSubresource"
    case listObjectsV2 = "ListObjectsV2", listObjects = "ListObjects", listObjectVersions = "ListObjectVersions"
    case listMultipartUploads = "ListMultipartUploads", deleteObjects = "DeleteObjects"
    case putObject = "PutObject", copyObject = "CopyObject", getObject = "GetObject", headObject = "HeadObject"
    case deleteObject = "DeleteObject", getObjectSubresource = "GetObjectSubresource"
    case createMultipartUpload = "CreateMultipartUpload", uploadPart = "UploadPart", uploadPartCopy = "UploadPartCopy"
    case completeMultipartUpload = "CompleteMultipartUpload", abortMultipartUpload = "AbortMultipartUpload", listParts = "ListParts"
    case deleteBucketSubresource = "DeleteBucketSubresource", deleteObjectSubresource = "DeleteObjectSubresource"
    case notImplemented = "NotImplemented", unknown = "Unknown"
}
