import ArgumentParser
import ChunkStore
import CurlTransport
import Foundation
import Replicator
import S3Protocol

/// `--controller URL`: `a67 app` and `a67 node ls` against the controller in an `a67 serve` on
/// another machine, instead of the repository in this machine's home.
struct RemoteOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Ask the controller at this URL (https://HOST:7067) instead of this machine's repository, "
                               + "signed with an admin's access key: A67_ACCESS_KEY_ID and A67_SECRET_ACCESS_KEY "
                               + "(or one of the repository here).", valueName: "url"))
    var controller: String?

    @Option(help: ArgumentHelp("With an https --controller: its public key pin (sha256//BASE64, as a67 node token create prints it).",
                               valueName: "pin"))
    var pin: String?

    @Option(help: ArgumentHelp("With an https --controller: the CA file that signed its certificate (default: the system's CAs).",
                               valueName: "file"))
    var caFile: String?

    /// The controller to ask, when --controller names one. Its key: A67_ACCESS_KEY_ID and
    /// A67_SECRET_ACCESS_KEY, or else an admin's key of the repository in `home`, if this machine has one.
    func remote(home: HomeOptions) throws -> ControllerRemote? {
        guard let controller else { return nil }
        let signer: SigV4Signer
        if let fromEnvironment = ControllerRemote.environmentSigner() {
            signer = fromEnvironment
        } else if FileManager.default.fileExists(atPath: home.path + "/" + Repository.keyringFile) {
            signer = try ControllerRemote.signer(try home.unlock())
        } else {
            throw StoreError(.invalidArgument, "--controller needs an admin's access key: set A67_ACCESS_KEY_ID and A67_SECRET_ACCESS_KEY "
                + "(on the controller's machine: a67 user add NAME --admin; a67 key create NAME)")
        }
        return try ControllerRemote(controller, signer: signer, trust: PeerTrust(caFile: caFile.map(absolute), pinnedPublicKey: pin))
    }
}

/// Signed requests to a controller's operator routes (`/_a67/api/v1`: apps, nodes, logs), and its
/// answers decoded; a refusal becomes the error the local command would have given.
struct ControllerRemote {
    let base: String
    let host: String
    let signer: SigV4Signer
    let trust: PeerTrust

    init(_ controller: String, signer: SigV4Signer, trust: PeerTrust = PeerTrust()) throws {
        guard let url = URL(string: controller), ["http", "https"].contains(url.scheme ?? ""), let host = url.host, url.path.isEmpty || url.path == "/"
        else {
            throw StoreError(.invalidArgument, "--controller \(controller) is not a controller URL like https://HOST:7067")
        }
        base = controller.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.host = url.port.map { "\(host):\($0)" } ?? host
        self.signer = signer
        self.trust = trust
    }

    /// The key in A67_ACCESS_KEY_ID and A67_SECRET_ACCESS_KEY, if both are set.
    static func environmentSigner() -> SigV4Signer? {
        let environment = ProcessInfo.processInfo.environment
        guard let id = environment["A67_ACCESS_KEY_ID"], !id.isEmpty, let secret = environment["A67_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        return SigV4Signer(accessKeyID: id, secretKey: secret, region: "us-east-1", service: "s3")
    }

    /// The environment's key, or else an admin's key from `repository` (this machine's).
    static func signer(_ repository: Repository) throws -> SigV4Signer {
        if let signer = environmentSigner() { return signer }
        let admins = Set(try repository.catalog.accounts.users().filter(\.admin).map(\.id))
        for record in try repository.catalog.accounts.accessKeys() where admins.contains(record.userID) {
            if let (_, secret) = try repository.accessKey(record.id) {
                return SigV4Signer(accessKeyID: record.id, secretKey: secret, region: "us-east-1", service: "s3")
            }
        }
        throw StoreError(.invalidArgument, "no admin access key to ask the controller with: make one (a67 user add NAME --admin; a67 key create NAME) "
            + "or set A67_ACCESS_KEY_ID and A67_SECRET_ACCESS_KEY")
    }

    func get<T: Decodable>(_ path: String, query: [(String, String)] = [], as type: T.Type) async throws -> T {
        let bytes = try await call("GET", path, query: query)
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw StoreError(.providerFailure, "the controller at \(base) answered \(path) with what is not a \(type) (is it an a67 serve of this version?)")
        }
    }

    @discardableResult
    func post(_ path: String, query: [(String, String)] = [], verb: String = "POST", body: [UInt8] = [],
              extra: [(String, String)] = []) async throws -> [String: Int] {
        let bytes = try await call(verb, path, query: query, body: body, extra: extra)
        return (try? JSONDecoder().decode([String: Int].self, from: Data(bytes))) ?? [:]
    }

    /// The body of a signed request to `/_a67/api/v1/PATH` (with `body`, signed by its SHA-256, and
    /// `extra` headers, signed too); a refusal as a `StoreError`.
    func call(_ verb: String, _ path: String, query: [(String, String)] = [], body: [UInt8] = [],
              extra: [(String, String)] = []) async throws -> [UInt8] {
        let fullPath = "/_a67/api/v1/" + path
        let payloadHash = Hex.encode(Crypto.sha256(body))
        let method: TransferRequest.Method = verb == "GET" ? .get : .custom(verb)
        let headers = signer.sign(method: verb, path: fullPath, query: query,
                                  headers: [("host", host), ("x-amz-content-sha256", payloadHash)] + extra, payloadHash: payloadHash)
        let target = base + fullPath + (query.isEmpty ? "" : "?" + SigV4Signer.canonicalQuery(query))
        var request = TransferRequest(method, target, headers: headers.filter { $0.0 != "host" }.map { HTTPHeader($0.0, $0.1) },
                                      body: verb == "GET" ? nil : body, trust: trust)
        request.limits.maxResponseBytes = 64 << 20
        let response: TransferResponse
        do {
            response = try await CurlEngine.shared.perform(request)
        } catch {
            throw StoreError(.providerFailure, "cannot reach the controller at \(base): \(error) (is a67 serve running there? --controller URL)")
        }
        guard response.status == 200 else { throw refusal(response) }
        return response.body
    }

    /// A refusal as the error the local command gives: the controller's JSON error (its code and
    /// message), or, for one in S3's form (a bad signature, a key that is not an admin's), its status.
    func refusal(_ response: TransferResponse) -> StoreError {
        struct Refusal: Decodable {
            struct Detail: Decodable { let code: String; let message: String }
            let error: Detail
        }
        if let refusal = try? JSONDecoder().decode(Refusal.self, from: Data(response.body)) {
            let code = StoreError.Code(rawValue: refusal.error.code)
                ?? (response.status == 403 ? .invalidArgument : response.status == 404 ? .notFound : .providerFailure)
            return StoreError(code, refusal.error.message)
        }
        let text = String(decoding: response.body.prefix(400), as: UTF8.self)
        let s3Code = text.range(of: "<Code>").flatMap { start in text[start.upperBound...].range(of: "</Code>").map { text[start.upperBound..<$0.lowerBound] } }
        let why = s3Code.map { " (\($0))" } ?? ""
        switch response.status {
        case 401, 403:
            return StoreError(.invalidArgument, "the controller at \(base) refused the key\(why): it must be an admin's key of that repository "
                + "(A67_ACCESS_KEY_ID, A67_SECRET_ACCESS_KEY)")
        default:
            return StoreError(.providerFailure, "the controller at \(base) answered HTTP \(response.status)\(why)")
        }
    }
}
