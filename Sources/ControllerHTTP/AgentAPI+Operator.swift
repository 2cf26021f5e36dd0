import ChunkStore
import Controller
import Foundation
import Hummingbird
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
                try json(try await offPool { try store.nodeSummaries() }.filter { all || $0.state != "removed" })
            }
        }
        group.post("api/v1/apps/:name/:intent") { request, context in
            let app = context.parameters.get("name") ?? ""
            let intent = context.parameters.get("intent") ?? ""
            let query = request.uri.queryParameters
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
