import ChunkStore
import Compute
import Controller
import Foundation
import Hummingbird
import Replicator
import Server

/// The agent protocol's routes under `/_a67/agent` (`AgentProtocol`), and the operator's routes
/// under `/_a67/api/v1` (apps, nodes: `registerOperator`; and the log route
/// `GET /_a67/api/v1/apps/NAME/logs?instance=ALLOCID&tail=N`), as a module of `a67 serve`.
///
/// Who may do what:
/// - a join carries a one-use join token (`Authorization: A67-Token TOKEN`): a token not of a
///   token's shape or never issued is 401, a used or expired one 403, and nothing changes;
/// - every other agent request carries the node's credential (`Authorization: A67-Node
///   NODEID.SECRET`), checked against its stored hash in constant time; a wrong, forged or revoked
///   (`a67 node rm`) one is 401;
/// - a node reads and changes only its own allocations (another node's is 403, and nothing changes)
///   and fetches only the chunks of the bundles its desired state grants it (others are 403);
/// - the operator's routes (apps, nodes, logs) are signed like the control API with an admin's access key.
/// Errors are JSON: `{"error": {"code": "...", "message": "..."}}`.
///
/// A joining node's address is `JoinRequest.advertise`, or else the address its connection comes
/// from (`ServerRequestContext.remoteAddress`, the channel's remote address): where an agent behind
/// NAT is seen.
public struct AgentAPI: HTTPModule {
    let server: BlobServer
    let service: ControllerService
    let store: ControllerStore
    let now: @Sendable () -> Int64

    /// The largest JSON body an agent sends (a heartbeat with hundreds of instances fits), and the
    /// largest log.
    static let bodyLimit = 1 << 20
    static let logLimit = 8 << 20

    public init(server: BlobServer, service: ControllerService, store: ControllerStore, now: @escaping @Sendable () -> Int64 = Catalog.now) {
        self.server = server
        self.service = service
        self.store = store
        self.now = now
    }

    /// The grants of bundles in `repository`: for each chunk of the bundle's object, its ID, its chunk
    /// key and its length. What `ControllerService` is built with in serve.
    public static func grants(repository: Repository) -> ControllerService.BundleGrants {
        { version in
            let parts = version.bundle.split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else {
                throw StoreError(.integrity, "version \(version.number) of \(version.app) names bundle \(version.bundle), not BUCKET/KEY")
            }
            let object = try await offPool { try repository.object(bucket: String(parts[0]), key: String(parts[1])) }
            let chunks = try object.manifest.entries.map { entry in
                GrantedChunk(id: entry.id.hex, key: Hex.encode(try repository.chunkKey(for: entry.id).bytes), length: entry.length)
            }
            return BundleGrant(sha256: Hex.encode(version.bundleSHA256), size: object.manifest.size, chunks: chunks)
        }
    }

    public func register(on group: RouterGroup<ServerRequestContext>) {
        let agent = group.group("agent")
        agent.post("join") { request, context in try await answer("AgentJoin", context) { try await join(request, context) } }
        agent.post("heartbeat") { request, context in
            try await answer("AgentHeartbeat", context) {
                let node = try await authenticate(request)
                let heartbeat = try await decode(Heartbeat.self, request)
                return try json(try await service.heartbeat(node: node, heartbeat))
            }
        }
        agent.get("desired") { request, context in
            try await answer("AgentDesired", context) {
                let node = try await authenticate(request)
                let after = Int64(request.uri.queryParameters["after"].map(String.init) ?? "0")
                guard let after else { throw APIError(.badRequest, "BadRequest", "after= is the generation the agent has: a whole number") }
                guard let desired = await service.desired(node: node.id, after: after) else {
                    throw APIError(.serviceUnavailable, "NotReady", "the controller has not built node \(node.name)'s desired state yet: ask again")
                }
                return try json(desired)
            }
        }
        agent.put("allocations/:id") { request, context in
            try await answer("AgentReport", context) {
                let node = try await authenticate(request)
                let id = context.parameters.get("id") ?? ""
                let report = try await decode(InstanceReport.self, request)
                guard report.allocationID == id else {
                    throw APIError(.badRequest, "BadRequest", "the report is about allocation \(report.allocationID), the path names \(id)")
                }
                do {
                    try await service.report(node: node, report)
                } catch let error as StoreError where error.code == .notFound {
                    throw APIError(.forbidden, "Forbidden", "allocation \(id) is not one of node \(node.name)'s")
                }
                return Response(status: .noContent)
            }
        }
        agent.get("chunks/:id") { request, context in
            try await answer("AgentChunk", context) {
                let node = try await authenticate(request)
                guard let id = ChunkID(hex: context.parameters.get("id") ?? "") else {
                    throw APIError(.badRequest, "BadRequest", "a chunk ID is 64 hex digits")
                }
                guard let length = service.grantedLength(node: node.id, chunk: id) else {
                    throw APIError(.forbidden, "Forbidden", "chunk \(id.short) is in no bundle granted to node \(node.name)")
                }
                let sealed = try await server.repository.sealedChunk(id, length: length)
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                                body: ResponseBody(byteBuffer: ByteBuffer(bytes: sealed)))
            }
        }
        agent.post("logs/:id") { request, context in
            try await answer("AgentLog", context) {
                let node = try await authenticate(request)
                let id = context.parameters.get("id") ?? ""
                let bytes = try await body(request, limit: Self.logLimit)
                guard service.deliverLog(node: node.id, requestID: id, bytes) else {
                    throw APIError(.notFound, "NotFound", "node \(node.name) has no log request \(id) waiting (it timed out, or is another node's)")
                }
                return Response(status: .noContent)
            }
        }
        registerOperator(on: group)
        group.get("api/v1/apps/:name/logs") { request, context in
            try await answer("AppLogs", context) {
                let caller = try await server.authenticated(request, context: context, bodyLimit: 0).caller
                guard caller.user.admin else { throw APIError(.forbidden, "AccessDenied", "only an admin's key reads apps' logs") }
                let app = context.parameters.get("name") ?? ""
                guard let instance = request.uri.queryParameters["instance"].map(String.init) else {
                    throw APIError(.badRequest, "BadRequest", "name the instance: ?instance=ALLOCATION-ID (a67 app status \(app) lists them)")
                }
                let tail = request.uri.queryParameters["tail"].map { Int(String($0)) } ?? 100
                guard let tail, (1...100_000).contains(tail) else {
                    throw APIError(.badRequest, "BadRequest", "tail= is a number of lines from 1 to 100000")
                }
                let store = self.store
                let record = try await offPool { try store.allocation(id: instance) }
                guard record.allocation.app == app else {
                    throw APIError(.notFound, "NotFound", "\(app) has no instance \(instance) (a67 app status \(app) lists them)")
                }
                let bytes = try await service.logs(allocationID: instance, tail: tail)
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }

    // MARK: - The join

    func join(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let remedy = "make a new one with a67 node token create on the controller"
        guard let token = Self.credential(request, scheme: AgentProtocol.tokenScheme) else {
            throw APIError(.unauthorized, "Unauthorized", "a join carries its token as Authorization: \(AgentProtocol.tokenScheme) TOKEN")
        }
        guard token.count == 64, token.allSatisfy(\.isHexDigit) else {
            throw APIError(.unauthorized, "Unauthorized", "that is not a join token (one is 64 hex digits, as a67 node token create prints it): \(remedy)")
        }
        let join = try await decode(JoinRequest.self, request)
        guard let address = join.advertise ?? context.remoteAddress?.ipAddress else {
            throw APIError(.badRequest, "BadRequest", "the address this join comes from is unknown: give the node's address with --advertise ADDR")
        }
        let store = self.store
        let now = self.now()
        let registration: NodeRegistration
        do {
            registration = try await offPool {
                try store.register(token: token, name: join.name, address: address, labels: join.labels, capacity: join.capacity,
                                   agentVersion: join.agentVersion, now: now)
            }
        } catch let error as StoreError {
            switch error.code {
            case .notFound: throw APIError(.unauthorized, "Unauthorized", error.message)
            case .conflict: throw APIError(.forbidden, "Forbidden", error.message)
            case .alreadyExists: throw APIError(.conflict, "Conflict", error.message)
            case .invalidArgument: throw APIError(.badRequest, "BadRequest", error.message)
            default: throw error
            }
        }
        service.changed()
        server.changed()  // a new node: in the next catalog snapshot
        return try json(JoinResponse(nodeID: registration.node.id, credential: registration.credential, address: address,
                                     heartbeatSeconds: Double(ControllerStore.nanoseconds(service.settings.heartbeatInterval)) / 1e9))
    }

    // MARK: - Helpers

    /// The node whose credential the request carries, or 401.
    func authenticate(_ request: Request) async throws -> Node {
        guard let credential = Self.credential(request, scheme: AgentProtocol.nodeScheme) else {
            throw APIError(.unauthorized, "Unauthorized", "an agent's request carries its node credential as Authorization: \(AgentProtocol.nodeScheme) NODEID.SECRET")
        }
        let store = self.store
        guard let node = try await offPool({ try store.authenticate(credential: credential) }) else {
            throw APIError(.unauthorized, "Unauthorized", "that node credential is wrong, or its node was removed (a67 node rm): "
                + "join the node again with a new token (a67 node token create)")
        }
        return node
    }

    /// The value after `SCHEME ` in the Authorization header.
    static func credential(_ request: Request, scheme: String) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix(scheme + " ") else { return nil }
        return String(header.dropFirst(scheme.count + 1)).trimmingCharacters(in: .whitespaces)
    }

    func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        do {
            return [UInt8](buffer: try await request.body.collect(upTo: limit))
        } catch {
            throw APIError(.contentTooLarge, "TooLarge", "the body is over \(limit) bytes")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let bytes = try await body(request, limit: Self.bodyLimit)
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw APIError(.badRequest, "BadRequest", "the body is not a \(type) in JSON: \(error)")
        }
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: [UInt8](try encoder.encode(value)) + [0x0A])))
    }

    /// Runs a route's work as operation `operation`, answering its refusals as JSON. Other errors (a
    /// provider failing, a bad signature on the log route) go to the server's request accounting, which
    /// logs them and answers in S3's form without the store's details.
    func answer(_ operation: String, _ context: ServerRequestContext, _ work: () async throws -> Response) async throws -> Response {
        context.operation.name = operation
        do {
            return try await work()
        } catch let error as APIError {
            return errorResponse(error)
        } catch let error as StoreError where [.notFound, .invalidArgument, .conflict, .alreadyExists].contains(error.code) {
            let status: HTTPResponse.Status = error.code == .notFound ? .notFound : error.code == .invalidArgument ? .badRequest : .conflict
            return errorResponse(APIError(status, "\(error.code)", error.message))
        }
    }

    func errorResponse(_ error: APIError) -> Response {
        (try? json(["error": ["code": error.code, "message": error.message]], status: error.status)) ?? Response(status: error.status)
    }
}

/// An answer other than success, with the JSON error it carries.
struct APIError: Error {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}
