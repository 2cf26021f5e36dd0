import ChunkStore
import Hummingbird
import Replicator

/// Path-style S3 at every path outside `/_a67`: `/` lists buckets, `/BUCKET` and `/BUCKET/KEY...`
/// (keys with slashes, any percent-encoded bytes, `//`, trailing slashes) reach `S3Handler` with the
/// raw target kept for the signature check.
struct S3API {
    let server: BlobServer

    func register(on router: Router<ServerRequestContext>) {
        router.any("/", "**", use: respond)
    }

    func respond(_ request: Request, context: ServerRequestContext) async throws -> Response {
        let path = context.target
        let handler = S3Handler(server: server)
        let (principal, payload) = try server.authenticate(request, path: path)
        let s3 = S3Request(request: request, principal: principal, payload: payload, bucket: path.bucket, key: path.key,
                           query: Dictionary(path.query, uniquingKeysWith: { first, _ in first }), requestID: context.requestID)
        let operation = handler.operation(s3)
        context.operation.name = operation.rawValue
        do {
            return try await handler.handle(s3, operation)
        } catch {
            throw S3Error.reported(error, requestID: context.requestID, operation: operation.rawValue, path: path.raw, notFound: missing(s3))
        }
    }

    /// What a not-found the handler did not name is, as S3 names it: the request's bucket when that
    /// is gone, else its upload or key.
    private func missing(_ r: S3Request) -> S3Error {
        if let bucket = r.bucket, (try? server.repository.catalog.namespace.bucket(bucket)) == nil { return .noSuchBucket(bucket) }
        if let upload = r.query["uploadId"] { return .noSuchUpload(upload) }
        if let key = r.key { return .noSuchKey(key) }
        return .noSuchBucket(r.bucket ?? "")
    }
}
