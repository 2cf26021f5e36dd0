import BackendTesting
import ChunkStore
import Foundation
import HTTPTypes
import Replicator
import S3Protocol
import Testing
@testable import Server

/// Signature checks against keys from a real repository (signed by the client-side signer that
/// SigV4Tests checks against AWS's vectors), and the catalog's bookkeeping for users, quotas,
/// multipart parts and paged listings.
@Suite struct AuthAndCatalogTests {
    let folder: TemporaryDirectory
    let repository: Repository
    let key: (id: String, secret: String)

    init() async throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(), passphrase: Passphrase("p"),
                                                settings: settings)
        _ = try repository.catalog.accounts.addUser(name: "alice")
        key = try await repository.createAccessKey(user: "alice")
    }

    func request(method: String = "GET", path: String = "/photos/a%20b.txt", query: [(String, String)] = [],
                 date: Date = Date(), secret: String? = nil, tamper: Bool = false) -> SignedRequest {
        let signer = SigV4Signer(accessKeyID: key.id, secretKey: secret ?? key.secret, region: "eu-west-1")
        let signed = signer.sign(method: method, path: path, query: query, headers: [
            ("Host", "127.0.0.1:7067"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("x-amz-meta-color", "blue"),
        ], payloadHash: "UNSIGNED-PAYLOAD", date: date)
        var fields = HTTPFields()
        for (name, value) in signed where name != "Host" {
            fields[HTTPField.Name(name)!] = tamper && name == "x-amz-meta-color" ? "red" : value
        }
        return SignedRequest(method: method, rawPath: path, query: query, headers: fields, host: "127.0.0.1:7067")
    }

    func code(_ body: () throws -> Void) -> String? {
        do { try body() } catch let error as S3Error { return error.code } catch { return "\(error)" }
        return nil
    }

    @Test func headerSignatures() throws {
        let verifier = SigV4Verifier(repository: repository)
        let (principal, payload) = try verifier.authenticate(request())
        #expect(principal.user.name == "alice")
        guard case .unsigned = payload else { Issue.record("expected UNSIGNED-PAYLOAD"); return }
        #expect(code { _ = try verifier.authenticate(request(tamper: true)) } == "SignatureDoesNotMatch")
        #expect(code { _ = try verifier.authenticate(request(secret: "not-the-secret")) } == "SignatureDoesNotMatch")
        #expect(code { _ = try verifier.authenticate(request(date: Date().addingTimeInterval(-20 * 60))) } == "RequestTimeTooSkewed")
        var anonymous = request()
        anonymous = SignedRequest(method: "GET", rawPath: anonymous.rawPath, query: [], headers: [:], host: anonymous.host)
        #expect(code { _ = try verifier.authenticate(anonymous) } == "AccessDenied")
        // A removed key stops working at once, even after it was cached.
        try repository.catalog.accounts.removeAccessKey(key.id)
        #expect(code { _ = try verifier.authenticate(request()) } == "InvalidAccessKeyId")
    }

    func presigned(at date: Date, expires: Int) -> SignedRequest {
        let day = String(SigV4Signer.timestamp(date).prefix(8))
        let query = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(key.id)/\(day)/us-east-1/s3/aws4_request"),
                     ("X-Amz-Date", SigV4Signer.timestamp(date)), ("X-Amz-Expires", String(expires)),
                     ("X-Amz-SignedHeaders", "host")]
        let canonical = SigV4Signer.canonicalRequest(method: "GET", path: "/photos/k", canonicalQuery: SigV4Signer.canonicalQuery(query),
                                                     headers: [("host", "127.0.0.1:7067")], payloadHash: "UNSIGNED-PAYLOAD")
        let text = SigV4Signer.stringToSign(amzDate: SigV4Signer.timestamp(date), scope: "\(day)/us-east-1/s3/aws4_request",
                                            canonicalRequest: canonical)
        let signature = Hex.encode(Crypto.hmacSHA256(key: SigV4Signer.signingKey(secret: key.secret, day: day, region: "us-east-1",
                                                                                  service: "s3"), Array(text.utf8)))
        return SignedRequest(method: "GET", rawPath: "/photos/k", query: query + [("X-Amz-Signature", signature)], headers: [:],
                             host: "127.0.0.1:7067")
    }

    @Test func presignedURLs() throws {
        let verifier = SigV4Verifier(repository: repository)
        let (principal, _) = try verifier.authenticate(presigned(at: Date().addingTimeInterval(-30), expires: 300))
        #expect(principal.keyID == key.id)
        #expect(code { _ = try verifier.authenticate(presigned(at: Date().addingTimeInterval(-3600), expires: 60)) } == "AccessDenied")
        #expect(code { _ = try verifier.authenticate(presigned(at: Date(), expires: 8 * 24 * 3600)) } == "AuthorizationQueryParametersError")
    }

    @Test func accessKeySecretsAreSealed() throws {
        let record = try #require(try repository.catalog.accounts.accessKey(key.id))
        #expect(!String(decoding: record.sealedSecret, as: UTF8.self).contains(key.secret))
        #expect(try repository.accessKey(key.id)?.secret == key.secret)
    }

    @Test func partsHoldTheirChunksUntilCompleteOrAbort() async throws {
        _ = try await repository.addProvider(name: "p1", spec: .directory(path: folder.path + "/p1"), quota: nil)
        let alice = try repository.catalog.accounts.user(named: "alice")
        let bucket = try await repository.createBucket("photos", replicas: 1, owner: alice.id)
        let writer = try repository.objectWriter()
        let policy = ReplicaPolicy(replicas: 1, minimum: 1)
        var data = Crypto.randomBytes(6 << 20)
        let stored = try await writer.storeChunks(reading: { n in
            let piece = Array(data.prefix(n)); data.removeFirst(piece.count); return piece
        }, policy: policy)
        try repository.catalog.uploads.create(id: "u1", bucket: bucket, key: "big", attributes: ["content-type": "x/y"])
        try await repository.catalog.uploads.putPart(upload: "u1", number: 1, entries: stored.entries, etag: "e1", chunks: [])
        #expect(try repository.catalog.accounts.usage(user: alice.id).bytes == 6 << 20)
        // Referenced by the part: garbage collection would keep them.
        #expect(try repository.catalog.statistics().unreferencedChunks == 0)
        try repository.catalog.uploads.abort("u1")
        #expect(try repository.catalog.statistics().unreferencedChunks == stored.entries.count)
        // Again, completed: the object holds them.
        try repository.catalog.uploads.create(id: "u2", bucket: bucket, key: "big", attributes: [:])
        try await repository.catalog.uploads.putPart(upload: "u2", number: 1, entries: stored.entries, etag: "e1", chunks: [])
        _ = try await writer.commit(ObjectWriter.StoredChunks(entries: stored.entries), attributes: ["etag": "x-1"], bucket: bucket,
                                    key: "big", owner: (0, 0, 0o644), releasing: "u2")
        #expect(try repository.catalog.uploads.list(bucket: bucket).isEmpty)
        #expect(try repository.catalog.statistics().unreferencedChunks == 0)
        let usage = try repository.catalog.accounts.usage(user: alice.id)
        #expect(usage.buckets == 1 && usage.objects == 1 && usage.bytes == 6 << 20)
    }

    @Test func pagedListingsResumeAfterTheLastEntry() async throws {
        _ = try await repository.addProvider(name: "p1", spec: .directory(path: folder.path + "/p1"), quota: nil)
        let bucket = try await repository.createBucket("photos", replicas: 1)
        let keys = ["a/1", "a/2", "a/b/3", "b", "c/4", "c/5", "d"]
        for key in keys {
            _ = try await repository.put(BytesSource(Array(key.utf8)), bucket: "photos", key: key)
        }
        for limit in 1...4 {
            for recursive in [true, false] {
                var seen: [String] = []
                var after: String?
                while true {
                    let page = try repository.catalog.namespace.listPage(bucket: bucket, prefix: "", recursive: recursive, startAfter: after, limit: limit)
                    seen += page.entries.map(\.key)
                    after = page.entries.last?.key
                    if !page.truncated { break }
                }
                #expect(seen == (recursive ? keys : ["a/", "b", "c/", "d"]), "limit \(limit), recursive \(recursive)")
            }
        }
    }
}
