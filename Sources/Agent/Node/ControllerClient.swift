import ChunkStore
import Compute
import CurlTransport
import Foundation

/// The agent's side of the agent protocol (`AgentProtocol`): one method per route, JSON over HTTP(S)
/// through libcurl. The credential and the join token travel only in the Authorization header, never
/// in a URL; errors name the route and the controller's own message, never the secret.
public struct ControllerClient: Sendable {
    /// "https://HOST:PORT" (no trailing slash).
    public let base: String
    /// "NODEID.SECRET"; nil before the join.
    let credential: String?
    /// How the controller proves who it is: the system's CAs, a CA file, or a pinned public key.
    public let trust: PeerTrust
    let engine: CurlEngine

    public init(base: String, credential: String?, trust: PeerTrust, engine: CurlEngine = .shared) {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.credential = credential
        self.trust = trust
        self.engine = engine
    }

    /// The same controller, with the node's credential.
    public func with(credential: String) -> ControllerClient {
        ControllerClient(base: base, credential: credential, trust: trust, engine: engine)
    }

    public func join(token: String, _ request: JoinRequest) async throws -> JoinResponse {
        try await call(.custom("POST"), "join", body: request, authorization: "\(AgentProtocol.tokenScheme) \(token)")
    }

    public func heartbeat(_ heartbeat: Heartbeat) async throws -> HeartbeatReply {
        try await call(.custom("POST"), "heartbeat", body: heartbeat)
    }

    /// The node's desired state once its generation is above `after`: the controller holds the request
    /// up to `AgentProtocol.longPoll`; nil when it answered that nothing changed.
    public func desired(after generation: Int64) async throws -> DesiredState? {
        let response = try await send(.get, "desired?after=\(generation)", body: nil, authorization: nodeAuthorization(),
                                      stall: Int(AgentProtocol.longPoll.components.seconds) + 20)
        if response.status == 204 || response.body.isEmpty { return nil }
        return try decode(DesiredState.self, response, "desired")
    }

    public func report(_ report: InstanceReport) async throws {
        let path = "allocations/" + (report.allocationID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        _ = try await send(.put, path, body: try JSONEncoder().encode(report), authorization: nodeAuthorization())
    }

    /// The sealed chunk `id` (hex), relayed by the controller from the providers.
    public func chunk(_ id: String) async throws -> [UInt8] {
        try await send(.get, "chunks/\(id)", body: nil, authorization: nodeAuthorization()).body
    }

    public func postLog(request id: String, _ bytes: [UInt8]) async throws {
        _ = try await send(.custom("POST"), "logs/\(id)", body: Data(bytes), authorization: nodeAuthorization())
    }

    // MARK: - Transport

    func nodeAuthorization() throws -> String {
        guard let credential else { throw StoreError(.invalidArgument, "this agent has not joined a controller yet (a67 agent join)") }
        return "\(AgentProtocol.nodeScheme) \(credential)"
    }

    func call<Body: Encodable, Answer: Decodable>(_ method: TransferRequest.Method, _ route: String, body: Body,
                                                   authorization: String? = nil) async throws -> Answer {
        let response = try await send(method, route, body: try JSONEncoder().encode(body),
                                      authorization: try authorization ?? nodeAuthorization())
        return try decode(Answer.self, response, route)
    }

    func decode<Answer: Decodable>(_ type: Answer.Type, _ response: TransferResponse, _ route: String) throws -> Answer {
        do {
            return try JSONDecoder().decode(Answer.self, from: Data(response.body))
        } catch {
            throw StoreError(.providerFailure, "the controller at \(base) answered \(route) with something that is not its protocol: \(error)")
        }
    }

    func send(_ method: TransferRequest.Method, _ route: String, body: Data?, authorization: String,
              stall: Int = 30) async throws -> TransferResponse {
        var request = TransferRequest(method, "\(base)\(AgentProtocol.prefix)/\(route)",
                                      headers: [HTTPHeader("Authorization", authorization), HTTPHeader("Content-Type", "application/json")],
                                      body: body.map { [UInt8]($0) } ?? (method == .get ? nil : []),
                                      limits: TransferLimits(connectTimeout: 5, stallSeconds: stall, stallBytesPerSecond: 1,
                                                             maxResponseBytes: ChunkSealer.maxChunkSize + 4096),
                                      trust: trust)
        request.freshConnection = false
        let response: TransferResponse
        do {
            response = try await engine.perform(request)
        } catch {
            throw StoreError(.providerFailure, "cannot reach the controller at \(base) (\(route)): \(error)")
        }
        guard (200..<300).contains(response.status) else {
            throw ControllerRefusal(status: response.status, route: route, message: Self.message(response.body))
        }
        return response
    }

    /// The controller's JSON error message ({"error": {"message": ...}}), or its text, bounded.
    static func message(_ body: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
           let error = object["error"] as? [String: Any], let message = error["message"] as? String {
            return message
        }
        return terminalSafe(String(decoding: body.prefix(300), as: UTF8.self))
    }
}

/// The controller answered with an error status: 401 (token or credential refused), 403 (not this
/// node's), 404, 409... The message is the controller's.
public struct ControllerRefusal: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let route: String
    public let message: String

    public var description: String { "the controller refused \(route) (HTTP \(status)): \(message)" }
}
