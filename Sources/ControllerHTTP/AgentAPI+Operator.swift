import ChunkStore
import Compute
import Controller
import Foundation
import HTTPTypes
import Hummingbird
import Orchestrator
import Server

/// The operator's routes under `/_a67/api/v1`: what `a67 app` and `a67 node ls` do on the
/// controller's machine, for the same commands run elsewhere with `--controller URL`. Each is signed
/// like the control API (SigV4) with an admin's access key; another user's key is 403.
///
///     GET  apps                      [AppSummary]
///     GET  apps/NAME                 AppStatus
///     GET  nodes[?all=1]             [NodeSummary] (with ?all=1 removed ones too)
///     POST apps/NAME/scale?instances=N
///     POST apps/NAME/rollback[?to=V] {"version": V}
///     POST apps/NAME/stop, apps/NAME/start
///     POST apps/NAME/deploy          the bundle (a deterministic tar) as the body: a new version, deployed
///     DELETE apps/NAME               the app, its versions and bundles
///
/// A deploy's body is signed like an S3 PUT's (its SHA-256 in x-amz-content-sha256, which must be the
/// bundle's), with the app's a67app.toml in `x-a67-manifest` (base64) and the pieces the sender's
/// `BundleStream` cut in `x-a67-pieces` (decimal lengths, comma-separated), so that the store chunks it
/// as a local deploy would and a one-file change stores about one chunk. At most `maxSentBundle` bytes.
///
/// Refusals are JSON (`{"error": {"code", "message"}}`): an unknown app 404, a bad count 400, a
/// version that cannot be rolled back to 409; the message is the one the local command prints.
extension AgentAPI {
    func registerOperator(on group: RouterGroup<ServerRequestContext>) {
        group.get("api/v1/apps") { request, context in
            try await operate("ListApps", request, context) { store in try json(try await offPool { try store.appSummaries() }) }
        }
        group.get("api/v1/apps/:name") { request, context in
            let app = context.parameters.get("name") ?? ""
            return try await operate("AppStatus", request, context) { store in try json(try await offPool { try store.status(app: app) }) }
        }
        group.get("api/v1/nodes") { request, context in
            let all = request.uri.queryParameters["all"] == "1"
            return try await operate("ListNodes", request, context) { store in
                try json(try await offPool { try store.nodeSummaries(includingRemoved: all) })
            }
        }
        group.delete("api/v1/apps/:name") { request, context in
            let app = context.parameters.get("name") ?? ""
            return try await operate("RemoveApp", request, context) { _ in
                let (bundles, removed) = try await AppBundles.remove(app: app, repository: server.repository)
                server.changed()
                return try json(["bundles": bundles, "removed": removed ? 1 : 0])
            }
        }
        group.post("api/v1/apps/:name/:intent") { request, context in
            let app = context.parameters.get("name") ?? ""
            let intent = context.parameters.get("intent") ?? ""
            let query = request.uri.queryParameters
            if intent == "deploy" { return try await deploy(app: app, request, context) }
            return try await operate("AppIntent", request, context) { store in
                let now = self.now()
                let answer: [String: Int]
                switch intent {
                case "scale":
                    guard let count = query["instances"].flatMap({ Int(String($0)) }) else {
                        throw APIError(.badRequest, "BadRequest", "scale needs ?instances=N (a number)")
                    }
                    try await offPool { try store.scale(app: app, instances: count, now: now) }
                    answer = ["instances": count]
                case "rollback":
                    let to = try query["to"].map { text in
                        guard let number = Int(String(text)) else { throw APIError(.badRequest, "BadRequest", "to= is a version number") }
                        return number
                    }
                    let deployment = try await offPool { try store.rollback(app: app, to: to, now: now) }
                    answer = ["version": deployment.version]
                case "stop":
                    try await offPool { try store.stop(app: app, now: now) }
                    answer = [:]
                case "start":
                    try await offPool { try store.start(app: app, now: now) }
                    answer = [:]
                default:
                    throw APIError(.notFound, "NotFound", "no operation \(intent) on apps: scale, rollback, stop or start")
                }
                server.changed()
                return try json(answer)
            }
        }
    }

    /// The largest bundle a deploy may send (held in memory while it is stored).
    static let maxSentBundle = 256 << 20

    /// A deploy sent from another machine: the bundle stored as the app's next version, then deployed.
    func deploy(app: String, _ request: Request, _ context: ServerRequestContext) async throws -> Response {
        try await answer("DeployApp", context) {
            let headers = request.headers
            guard let manifestHeader = headers[HTTPField.Name("x-a67-manifest")!], let manifestData = Data(base64Encoded: manifestHeader),
                  let sha256Header = headers[HTTPField.Name("x-amz-content-sha256")!], let sha256 = Hex.decode(sha256Header), sha256.count == 32,
                  let piecesHeader = headers[HTTPField.Name("x-a67-pieces")!] else {
                throw APIError(.badRequest, "BadRequest", "a deploy carries x-a67-manifest (base64), x-a67-pieces and the bundle's SHA-256 "
                    + "as x-amz-content-sha256 (a67 app deploy --controller sends them)")
            }
            if let length = headers[.contentLength].flatMap({ Int($0) }), length > Self.maxSentBundle {
                throw APIError(.contentTooLarge, "TooLarge", "the bundle is \(length) bytes, over the \(Self.maxSentBundle >> 20) MiB a deploy "
                    + "may send; deploy it on the controller's machine, or leave big files out with .a67ignore")
            }
            let (caller, body) = try await server.authenticated(request, context: context, bodyLimit: Self.maxSentBundle)
            guard caller.user.admin else { throw APIError(.forbidden, "AccessDenied", "only an admin's key manages apps and nodes") }
            // The signature covered the body by this hash; the bundle is named by it.
            guard Crypto.sha256(body) == sha256 else {
                throw APIError(.badRequest, "BadDigest", "the bundle's bytes do not hash to its x-amz-content-sha256")
            }
            let manifest = try AppManifest(toml: String(decoding: manifestData, as: UTF8.self), file: "\(app)/a67app.toml (sent)")
            guard manifest.name == app else {
                throw APIError(.badRequest, "BadRequest", "the manifest names app \(manifest.name), not \(app)")
            }
            let pieces = piecesHeader.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) ?? 0 }
            let stored = try await AppBundles.store(try ReceivedBundle(body, pieces: pieces), manifest: manifest, sha256: sha256,
                                                    repository: server.repository)
            let store = self.store
            let now = self.now()
            _ = try await offPool { try store.deploy(app: app, version: stored.version, now: now) }
            server.changed()
            return try json(["version": stored.version, "bytes": Int(stored.put.size), "chunks": stored.put.chunks, "newChunks": stored.put.newChunks])
        }
    }

    /// Runs an operator route's work once the request is signed by an admin's key.
    func operate(_ operation: String, _ request: Request, _ context: ServerRequestContext,
                 _ work: (ControllerStore) async throws -> Response) async throws -> Response {
        try await answer(operation, context) {
            let caller = try await server.authenticated(request, context: context, bodyLimit: 0).caller
            guard caller.user.admin else { throw APIError(.forbidden, "AccessDenied", "only an admin's key manages apps and nodes") }
            return try await work(store)
        }
    }
}
