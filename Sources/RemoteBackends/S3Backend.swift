import ChunkStore
import CurlTransport
import Foundation
import S3Protocol

/// Chunks in an S3-compatible bucket, signed with AWS Signature V4. Uploads carry Content-MD5 and
/// the payload's SHA-256 (signed), so the server rejects bytes damaged on the way. PUT is atomic in
/// S3's model: an object is visible whole or not at all.
public struct S3Backend: Backend {
    public let settings: S3Settings
    let signer: SigV4Signer
    let endpoint: Endpoint
    let limits: TransferLimits
    let trust: PeerTrust
    let engine: CurlEngine

    public init(settings: S3Settings, secretKey: String, limits: TransferLimits = .init(), trust: PeerTrust = .init(),
                engine: CurlEngine = .shared) throws {
        endpoint = try Endpoint(settings.endpoint, allowed: ["http", "https"], what: "S3 endpoint")
        guard Self.validBucket(settings.bucket) else {
            throw StoreError(.invalidArgument, "S3 bucket name \"\(settings.bucket)\" is not valid: use 3 to 63 lowercase letters, digits, dots and hyphens")
        }
        guard !settings.region.isEmpty, !settings.accessKeyID.isEmpty, !secretKey.isEmpty else {
            throw StoreError(.invalidArgument, "an S3 provider needs a region, an access key ID and a secret key")
        }
        self.settings = settings
        signer = SigV4Signer(accessKeyID: settings.accessKeyID, secretKey: secretKey, region: settings.region)
        self.limits = limits
        self.trust = trust
        self.engine = engine
    }

    static func validBucket(_ name: String) -> Bool {
        (3...63).contains(name.count) && name.allSatisfy { $0.isLowercase && $0.isASCII || $0.isNumber || $0 == "." || $0 == "-" }
    }

    public var location: String {
        "s3 \(endpoint.origin)/\(settings.bucket)" + (settings.prefix.isEmpty ? "" : "/\(settings.prefix)")
    }

    // MARK: Backend

    public func put(_ name: String, data: [UInt8]) async throws {
        let payloadHash = Hex.encode(Crypto.sha256(data))
        let md5 = Data(Crypto.md5(data)).base64EncodedString()
        let response = try await send("PUT", key: name, body: data, payloadHash: payloadHash,
                                      extraHeaders: [("Content-MD5", md5), ("Content-Type", "application/octet-stream")])
        guard (200...299).contains(response.status) else { throw failure(response, name: name) }
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        // The Range header is signed like any other, so it goes in with the headers rather than
        // through libcurl's range option.
        try await HTTPGet.read(name, range: range, at: location, head: { try await head(name) },
                               send: { try await send("GET", key: name, extraHeaders: $0.map { [("Range", "bytes=\($0)")] } ?? []) },
                               failure: { failure($0, name: name) })
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        try HTTPGet.size(try await send("HEAD", key: name), name: name, at: location, failure: { failure($0, name: name) })
    }

    public func delete(_ name: String) async throws {
        let response = try await send("DELETE", key: name)
        guard (200...299).contains(response.status) || response.status == 404 else { throw failure(response, name: name) }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        precondition(limit > 0)
        var query = [("list-type", "2"), ("max-keys", String(min(limit, 1000))), ("prefix", keyPrefix + prefix)]
        if let after { query.append(("start-after", keyPrefix + after)) }
        let response = try await send("GET", key: nil, query: query)
        guard response.status == 200 else { throw failure(response, name: prefix) }
        guard let document = XMLElement.parse(response.body), document.name == "ListBucketResult" else {
            throw BackendError.transient("\(location): the listing reply is not a ListBucketResult")
        }
        var objects: [ObjectInfo] = []
        for entry in document.children("Contents") {
            guard let key = entry.child("Key")?.text, key.hasPrefix(keyPrefix),
                  let size = entry.child("Size").flatMap({ Int($0.text) }) else { continue }
            objects.append(ObjectInfo(name: String(key.dropFirst(keyPrefix.count)), size: size))
        }
        let truncated = document.child("IsTruncated")?.text == "true"
        if truncated && objects.isEmpty {
            throw BackendError.transient("\(location): a listing page came back empty but truncated (does the server ignore start-after?)")
        }
        return ListPage(objects: objects, nextAfter: truncated ? objects.last?.name : nil)
    }

    public func usage() async throws -> BackendUsage { try await usageFromListing() }

    // MARK: Requests

    private var keyPrefix: String {
        settings.prefix.isEmpty ? "" : (settings.prefix.hasSuffix("/") ? settings.prefix : settings.prefix + "/")
    }

    private func send(_ method: String, key: String?, query: [(String, String)] = [], body: [UInt8]? = nil,
                      payloadHash: String = SigV4Signer.emptyPayloadHash,
                      extraHeaders: [(String, String)] = []) async throws -> TransferResponse {
        let host = settings.pathStyle ? endpoint.authority : "\(settings.bucket).\(endpoint.authority)"
        var path = endpoint.path
        if settings.pathStyle { path += "/" + settings.bucket }
        path += "/" + (key.map { SigV4Signer.encode(keyPrefix + $0, keepSlash: true) } ?? "")
        let canonicalQuery = SigV4Signer.canonicalQuery(query)
        let url = "\(endpoint.scheme)://\(host)\(path)" + (canonicalQuery.isEmpty ? "" : "?\(canonicalQuery)")
        let headers = signer.sign(method: method, path: path, query: query,
                                  headers: [("Host", host), ("x-amz-content-sha256", payloadHash)] + extraHeaders,
                                  payloadHash: payloadHash)
        let verb: TransferRequest.Method = switch method {
        case "GET": .get
        case "HEAD": .head
        case "PUT": .put
        case "DELETE": .delete
        default: .custom(method)
        }
        let request = TransferRequest(verb, url, headers: headers.map { HTTPHeader($0.0, $0.1) }, body: body,
                                      limits: limits, trust: trust)
        do {
            return try await engine.perform(request)
        } catch {
            throw RemoteErrors.classify(error, at: location, name: key ?? "listing")
        }
    }

    private func failure(_ response: TransferResponse, name: String) -> BackendError {
        let document = XMLElement.parse(response.body)
        return RemoteErrors.classify(status: response.status, code: document?.child("Code")?.text,
                                     message: document?.child("Message")?.text,
                                     retryAfter: response.header("Retry-After"), at: location, name: name)
    }
}
