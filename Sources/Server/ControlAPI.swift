import ChunkStore
import Foundation
import Hummingbird
import Replicator

/// The JSON control API under /_a67/api/v1 (`ControlAPI.path`). Its health needs no signature;
/// the rest are signed with an access key like S3 requests (curl --aws-sigv4 "aws:amz:us-east-1:s3"
/// does it). A user
/// sees their own buckets, usage and account; an admin (a67 user add --admin) sees everyone's and
/// the providers.
public struct ControlAPI: HTTPModule {
    static let path = BlobServer.pagesPrefix + "/api/v1"

    let server: BlobServer
    var catalog: Catalog { server.repository.catalog }

    public init(server: BlobServer) { self.server = server }

    enum Endpoint: String, CaseIterable {
        case health, buckets, usage, users, providers
    }

    public func register(on group: RouterGroup<ServerRequestContext>) {
        let api = group.group("api/v1")
        for endpoint in Endpoint.allCases {
            api.any(RouterPath(endpoint.rawValue)) { request, context in await respond(request, context, endpoint) }
        }
        api.any("", "**") { request, context in await respond(request, context, nil) }
    }

    /// `endpoint` is nil for a path under /_a67/api/v1 that names none. The answer is read from the
    /// catalog on the BlockingIOPool (its reads may wait for a reader connection).
    func respond(_ request: Request, _ context: ServerRequestContext, _ endpoint: Endpoint?) async -> Response {
        context.operation.name = "ControlAPI"
        guard request.method == .get || request.method == .head else {
            return json(["error": ["code": "MethodNotAllowed", "message": "the control API is read-only: use GET"]], status: .methodNotAllowed)
        }
        do {
            // The health needs no signature; the rest are signed as S3 requests are.
            let user = endpoint == .health ? nil : try await server.authenticated(request, context: context, bodyLimit: 0).caller.user
            let (body, status) = try await offPool { [self] in
                let (value, status) = try answer(endpoint, user: user)
                return (Self.encode(value), status)
            }
            return json(body, status: status)
        } catch {
            let mapped = S3Error.reported(error, requestID: context.requestID, operation: "ControlAPI", path: context.target.raw,
                                          notFound: S3Error(.notFound, "NotFound", "Not found"))
            return json(["error": ["code": mapped.code, "message": mapped.message]], status: mapped.status)
        }
    }

    /// The JSON value answering `endpoint` for `user` (nil for the health), and its status; throws when
    /// the user may not see it.
    func answer(_ endpoint: Endpoint?, user: UserRecord?) throws -> ([String: Any], HTTPResponse.Status) {
        guard let user else { return (try health(), .ok) }
        switch endpoint {
        case .buckets:
            let buckets = try catalog.namespace.buckets().filter { user.admin || $0.bucket.ownerID == user.id }
            let owners = Dictionary(uniqueKeysWithValues: try catalog.accounts.users().map { ($0.id, $0.name) })
            return (["buckets": buckets.map { summary -> [String: Any] in
                var entry: [String: Any] = ["name": summary.bucket.name, "objects": summary.objects, "bytes": summary.bytes,
                                            "replicas": summary.bucket.replicas]
                entry["owner"] = summary.bucket.ownerID.flatMap { owners[$0] } ?? NSNull()
                return entry
            }], .ok)
        case .usage:
            return (try usage(user), .ok)
        case .users:
            let users = user.admin ? try catalog.accounts.users() : [user]
            return (["users": try users.map { try usage($0) }], .ok)
        case .providers:
            guard user.admin else { throw S3Error.accessDenied("Only admins see the providers") }
            return (["providers": try catalog.providers.all().map { p -> [String: Any] in
                ["name": p.name, "kind": p.kind, "state": p.state, "group": p.group, "usedBytes": p.usedBytes, "chunks": p.chunkCount,
                 "quota": p.quota ?? NSNull(), "breaker": (p.health?.breaker ?? .closed).rawValue]
            }], .ok)
        case .health, nil:
            return (["error": ["code": "NotFound", "message": "no such endpoint: \(Self.path) has health, buckets, usage, users, providers"]],
                    .notFound)
        }
    }

    func health() throws -> [String: Any] {
        let providers = try catalog.providers.all()
        return ["status": "ok", "version": A67Version.current, "uptimeSeconds": Int(Date().timeIntervalSince(server.startedAt)),
                "providers": providers.count,
                "providersWithOpenBreaker": providers.filter { $0.health?.breaker == .open }.map(\.name)]
    }

    func usage(_ user: UserRecord) throws -> [String: Any] {
        let usage = try catalog.accounts.usage(user: user.id)
        return ["user": user.name, "admin": user.admin, "buckets": usage.buckets, "objects": usage.objects, "bytes": usage.bytes,
                "quota": user.quota ?? NSNull(), "keys": try catalog.accounts.accessKeys(user: user.id).map(\.id)]
    }

    static func encode(_ value: [String: Any]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
        return [UInt8](data) + [0x0A]
    }

    func json(_ value: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        json(Self.encode(value), status: status)
    }

    func json(_ body: [UInt8], status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
