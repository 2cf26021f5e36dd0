import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Replicator
import S3Protocol

/// Who sent a request, once its signature checked out.
struct Principal: Sendable {
    let user: UserRecord
    let keyID: String
}

/// How the body of an authenticated request is to be checked.
enum PayloadCheck: Sendable {
    /// UNSIGNED-PAYLOAD: nothing to check beyond the transport.
    case unsigned
    /// The hex SHA-256 the signature covers.
    case sha256(String)
    /// aws-chunked: every chunk signed, chained from the seed signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD
    /// and its -TRAILER form).
    case signedChunks(ChunkSigning, trailer: Bool)
    /// aws-chunked without signatures, with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
    case unsignedChunks
}

struct ChunkSigning: Sendable {
    let key: [UInt8]
    let amzDate: String
    let scope: String
    let seedSignature: String

    /// The signature of the next chunk whose SHA-256 is `hash`, given the previous signature.
    func chunkSignature(previous: String, hash: [UInt8]) -> String {
        SigV4Signer.signature(key: key, of: ["AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope, previous, SigV4Signer.emptyPayloadHash,
                                             Hex.encode(hash)].joined(separator: "\n"))
    }

    func trailerSignature(previous: String, trailer: [UInt8]) -> String {
        SigV4Signer.signature(key: key, of: ["AWS4-HMAC-SHA256-TRAILER", amzDate, scope, previous,
                                             Hex.encode(Crypto.sha256(trailer))].joined(separator: "\n"))
    }
}

/// A request as the verifier needs it: method, the raw path and query as sent, and its headers.
struct SignedRequest {
    let method: String
    let rawPath: String
    /// The query's name=value pairs, percent-decoded, in the order sent.
    let query: [(String, String)]
    let headers: HTTPFields
    let host: String

    func header(_ name: String) -> String? {
        guard let field = HTTPField.Name(name) else { return nil }
        let values = headers[values: field]
        return values.isEmpty ? nil : values.joined(separator: ",")
    }

    func queryValue(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
}

/// AWS Signature Version 4 as S3 checks it: in the Authorization header or in a presigned URL's
/// query, with a clock-skew window of 15 minutes and presigned lifetimes of up to 7 days.
struct SigV4Verifier: Sendable {
    let repository: Repository
    /// Opened secrets by key ID, so that a request costs no AES; dropped when a key is removed
    /// (checked against the catalog on every request).
    let secrets = SecretCache()
    static let maxSkewSeconds: Double = 15 * 60
    static let maxPresignedSeconds = 7 * 24 * 3600

    func authenticate(_ request: SignedRequest, now: Date = Date()) throws -> (Principal, PayloadCheck) {
        if let authorization = request.header("authorization") {
            return try headerAuth(request, authorization: authorization, now: now)
        }
        if request.queryValue("X-Amz-Algorithm") != nil || request.queryValue("X-Amz-Credential") != nil {
            return try presignedAuth(request, now: now)
        }
        if request.queryValue("AWSAccessKeyId") != nil {
            throw S3Error.accessDenied("Signature Version 2 is not supported: sign requests with AWS Signature Version 4")
        }
        throw S3Error.accessDenied("Access Denied: the request is not signed (sign it with AWS Signature Version 4 and an access key)")
    }

    private func headerAuth(_ request: SignedRequest, authorization: String, now: Date) throws -> (Principal, PayloadCheck) {
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 ") else {
            if authorization.hasPrefix("AWS ") {
                throw S3Error.accessDenied("Signature Version 2 is not supported: sign requests with AWS Signature Version 4")
            }
            throw S3Error(.badRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed: it must start with AWS4-HMAC-SHA256")
        }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard let eq = trimmed.firstIndex(of: "=") else { continue }
            fields[String(trimmed[..<eq])] = String(trimmed[trimmed.index(after: eq)...])
        }
        guard let credential = fields["Credential"], let signedHeaders = fields["SignedHeaders"], let signature = fields["Signature"] else {
            throw S3Error(.badRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed: it needs Credential, SignedHeaders and Signature")
        }
        guard let amzDate = request.header("x-amz-date") ?? request.header("date").flatMap(Self.amzDate(fromHTTPDate:)) else {
            throw S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
        }
        let scope = try Self.scope(credential)
        let (principal, secret) = try lookUp(scope.keyID)
        let time = try Self.parseAmzDate(amzDate)
        guard abs(time.timeIntervalSince(now)) <= Self.maxSkewSeconds else {
            throw S3Error(.forbidden, "RequestTimeTooSkewed",
                          "The difference between the request time (\(amzDate)) and the server's time (\(SigV4Signer.timestamp(now))) is too large: at most 15 minutes. Check the client's clock")
        }
        guard amzDate.hasPrefix(scope.day) else {
            throw S3Error(.forbidden, "SignatureDoesNotMatch", "The credential's date \(scope.day) is not the request's date \(amzDate)")
        }
        guard let payloadHash = request.header("x-amz-content-sha256") else {
            throw S3Error(.badRequest, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        }
        let key = SigV4Signer.signingKey(secret: secret, day: scope.day, region: scope.region, service: scope.service)
        let query = SigV4Signer.canonicalQuery(request.query)
        try verify(request, signedHeaders: signedHeaders, canonicalQuery: query, payloadHash: payloadHash, amzDate: amzDate,
                   scope: scope.text, key: key, signature: signature)
        let signing = ChunkSigning(key: key, amzDate: amzDate, scope: scope.text, seedSignature: signature)
        let check: PayloadCheck
        switch payloadHash {
        case "UNSIGNED-PAYLOAD": check = .unsigned
        case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": check = .signedChunks(signing, trailer: false)
        case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": check = .signedChunks(signing, trailer: true)
        case "STREAMING-UNSIGNED-PAYLOAD-TRAILER": check = .unsignedChunks
        default:
            guard payloadHash.utf8.count == 64, payloadHash.utf8.allSatisfy({ Hex.value($0) != nil }) else {
                throw S3Error(.badRequest, "InvalidArgument", "x-amz-content-sha256 must be the payload's hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING- form")
            }
            check = .sha256(payloadHash.lowercased())
        }
        return (principal, check)
    }

    private func presignedAuth(_ request: SignedRequest, now: Date) throws -> (Principal, PayloadCheck) {
        guard request.queryValue("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" else {
            throw S3Error(.badRequest, "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        }
        guard let credential = request.queryValue("X-Amz-Credential"), let amzDate = request.queryValue("X-Amz-Date"),
              let expiresText = request.queryValue("X-Amz-Expires"), let signedHeaders = request.queryValue("X-Amz-SignedHeaders"),
              let signature = request.queryValue("X-Amz-Signature") else {
            throw S3Error(.badRequest, "AuthorizationQueryParametersError",
                          "A presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature")
        }
        guard let expires = Int(expiresText), (1...Self.maxPresignedSeconds).contains(expires) else {
            throw S3Error(.badRequest, "AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds from 1 to 604800 (7 days)")
        }
        let scope = try Self.scope(credential)
        let (principal, secret) = try lookUp(scope.keyID)
        let time = try Self.parseAmzDate(amzDate)
        guard time.timeIntervalSince(now) <= Self.maxSkewSeconds else {
            throw S3Error(.forbidden, "RequestTimeTooSkewed", "The presigned URL's date \(amzDate) is in the future; check the client's clock")
        }
        guard now.timeIntervalSince(time) <= Double(expires) else {
            throw S3Error.accessDenied("Request has expired: the presigned URL was valid for \(expires) s from \(amzDate)")
        }
        let key = SigV4Signer.signingKey(secret: secret, day: scope.day, region: scope.region, service: scope.service)
        let query = SigV4Signer.canonicalQuery(request.query.filter { $0.0 != "X-Amz-Signature" })
        let payloadHash = request.queryValue("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD"
        try verify(request, signedHeaders: signedHeaders, canonicalQuery: query, payloadHash: payloadHash, amzDate: amzDate,
                   scope: scope.text, key: key, signature: signature)
        return (principal, payloadHash == "UNSIGNED-PAYLOAD" ? .unsigned : .sha256(payloadHash.lowercased()))
    }

    /// Checks `signature` over the request as sent, and over its path re-encoded the way SigV4
    /// encodes (clients differ in which characters they escape in a path).
    private func verify(_ request: SignedRequest, signedHeaders: String, canonicalQuery: String, payloadHash: String,
                        amzDate: String, scope: String, key: [UInt8], signature: String) throws {
        let names = signedHeaders.split(separator: ";").map { $0.lowercased() }
        guard names.contains("host") else {
            throw S3Error.accessDenied("The host header must be signed")
        }
        var signed: [(String, String)] = []
        for name in names.sorted() {
            let value: String?
            if name == "host" { value = request.host } else { value = request.header(name) }
            guard let value else {
                throw S3Error.accessDenied("The signed header \(name) is not in the request")
            }
            signed.append((name, value))
        }
        let headers = SigV4Signer.canonicalHeaders(signed)
        var paths = [request.rawPath]
        if let decoded = request.rawPath.removingPercentEncoding {
            let reencoded = SigV4Signer.encode(decoded, keepSlash: true)
            if reencoded != request.rawPath { paths.append(reencoded) }
        }
        for path in paths {
            let canonical = SigV4Signer.canonicalRequest(method: request.method, path: path, canonicalQuery: canonicalQuery,
                                                         headers: headers, payloadHash: payloadHash)
            let expected = SigV4Signer.signature(key: key, of: SigV4Signer.stringToSign(amzDate: amzDate, scope: scope,
                                                                                        canonicalRequest: canonical))
            if Self.constantTimeEqual(expected, signature.lowercased()) { return }
        }
        throw S3Error(.forbidden, "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
    }

    private func lookUp(_ keyID: String) throws -> (Principal, String) {
        guard let (record, secret) = try secrets.lookUp(keyID, repository: repository),
              let user = try repository.catalog.accounts.user(id: record.userID) else {
            throw S3Error(.forbidden, "InvalidAccessKeyId", "The AWS access key ID you provided does not exist in our records")
        }
        return (Principal(user: user, keyID: keyID), secret)
    }

    struct Scope {
        let keyID, day, region, service: String
        var text: String { SigV4Signer.scope(day: day, region: region, service: service) }
    }

    static func scope(_ credential: String) throws -> Scope {
        let parts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[4] == "aws4_request", parts[1].count == 8, !parts[0].isEmpty else {
            throw S3Error(.badRequest, "AuthorizationHeaderMalformed",
                          "The credential is malformed: expected ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request")
        }
        return Scope(keyID: parts[0], day: parts[1], region: parts[2], service: parts[3])
    }

    static func parseAmzDate(_ text: String) throws -> Date {
        guard let date = SigV4Signer.date(fromTimestamp: text) else {
            throw S3Error.accessDenied("X-Amz-Date \(text) is not of the form YYYYMMDDTHHMMSSZ")
        }
        return date
    }

    /// "Tue, 27 Mar 2007 19:36:42 +0000" or "... GMT" as x-amz-date's form.
    static func amzDate(fromHTTPDate text: String) -> String? {
        HTTPDates.parse(text).map(SigV4Signer.timestamp)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool { Crypto.constantTimeEqual(a.utf8, b.utf8) }
}

/// Secrets opened once per key; the catalog is still asked on every request, so a removed key
/// stops working at once.
final class SecretCache: Sendable {
    private let opened = Mutex<[String: (AccessKeyRecord, String)]>([:])

    func lookUp(_ id: String, repository: Repository) throws -> (AccessKeyRecord, String)? {
        guard let record = try repository.catalog.accounts.accessKey(id) else {
            opened.withLock { _ = $0.removeValue(forKey: id) }
            return nil
        }
        if let hit = opened.withLock({ $0[id] }), hit.0 == record { return hit }
        guard let found = try repository.accessKey(id) else { return nil }
        opened.withLock { $0[id] = (found.record, found.secret) }
        return (found.record, found.secret)
    }
}

import Synchronization
