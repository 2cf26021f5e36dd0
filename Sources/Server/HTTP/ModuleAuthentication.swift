import ChunkStore
import Hummingbird

/// Who signed a request that a module's route answers.
public struct Caller: Sendable {
    public let user: UserRecord
    /// The access key it was signed with.
    public let keyID: String
}

extension BlobServer {
    /// For the routes of an `HTTPModule`: checks the request's signature as S3 requests are checked
    /// (AWS Signature Version 4, in an Authorization header or a presigned URL, with an access key from
    /// `a67 key create`) and the key's request rate, then reads the body, at most `bodyLimit` bytes,
    /// checked against what the signature covers (its SHA-256, or each aws-chunked chunk's signature)
    /// before it is returned. Throws the `S3Error` to answer (403 AccessDenied or SignatureDoesNotMatch,
    /// 400 for a body too long or not matching, 503 SlowDown), which the request accounting sends.
    public func authenticated(_ request: Request, context: ServerRequestContext,
                              bodyLimit: Int = 1 << 20) async throws -> (caller: Caller, body: [UInt8]) {
        let (principal, payload) = try authenticate(request, path: context.target)
        let reader = try RequestBodyReader(request, payload: payload, quota: nil)
        let body = try await reader.readAll(limit: bodyLimit)
        _ = try reader.finish()
        return (Caller(user: principal.user, keyID: principal.keyID), body)
    }
}
