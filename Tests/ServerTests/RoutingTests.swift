import BackendTesting
import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import Replicator
import Synchronization
import Testing
@testable import Server

/// The router in-process, without a socket: modules under /_a67, the 404 for the rest of it, S3 at
/// every other path and method, and the request accounting around each.
@Suite struct RoutingTests {
    let folder: TemporaryDirectory
    let server: BlobServer
    let responder: RouterResponder<ServerRequestContext>

    /// A module as the compute half will add one: its own routes under /_a67, its own operation name.
    struct EchoModule: HTTPModule {
        func register(on group: RouterGroup<ServerRequestContext>) {
            group.get("echo/:word") { _, context in
                context.operation.name = "Echo"
                return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: context.parameters.get("word") ?? "")))
            }
        }
    }

    init() throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(), passphrase: Passphrase("p"), settings: settings)
        server = BlobServer(repository: repository, settings: BlobServer.Settings())
        responder = server.router(modules: [ControlAPI(server: server), MetricsPage(server: server), EchoModule()]).buildResponder()
    }

    func send(_ method: HTTPRequest.Method, _ target: String) async throws -> (Response, String) {
        let request = Request(head: HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: target),
                              body: RequestBody(buffer: ByteBuffer()))
        let context = ServerRequestContext(source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: Logger(label: "test")))
        let response = try await responder.respond(to: request, context: context)
        let collected = Collected()
        try await response.body.write(Collector(into: collected))
        return (response, collected.text.withLock { $0 })
    }

    final class Collected: Sendable { let text = Mutex("") }

    struct Collector: ResponseBodyWriter {
        let into: Collected
        mutating func write(_ buffer: ByteBuffer) async throws { into.text.withLock { $0 += String(buffer: buffer) } }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    @Test func aModuleAddsRoutesUnderThePagesPrefix() async throws {
        let (response, body) = try await send(.get, "/_a67/echo/hello")
        #expect(response.status == .ok)
        #expect(body == "hello")
        #expect(response.headers[HTTPField.Name("x-amz-request-id")!]?.count == 16)
        #expect(response.headers[.server] == "Automator67")
        let (_, metrics) = try await send(.get, "/_a67/metrics")
        #expect(metrics.contains(#"operation="Echo",status="200""#))
    }

    @Test(arguments: ["/_a67", "/_a67/", "/_a67/nothing", "/_a67/echo", "/_a67/echo/a/b", "/_a67/api", "/_a67/metrics/x"])
    func thePagesPrefixAnswers404WhereNoModuleTakesThePath(target: String) async throws {
        let (response, body) = try await send(.get, target)
        #expect(response.status == .notFound)
        #expect(body.contains("<Code>NotFound</Code>"))
    }

    @Test func theControlAPIAnswersItsOwnMethodsAndPaths() async throws {
        let (health, body) = try await send(.get, "/_a67/api/v1/health")
        #expect(health.status == .ok)
        #expect(body.contains(#""status":"ok""#))
        #expect(try await send(.put, "/_a67/api/v1/health").0.status == .methodNotAllowed)
        #expect(try await send(.delete, "/_a67/api/v1/nothing").0.status == .methodNotAllowed)
        // Unsigned: the control API asks for a signature before it says the endpoint is unknown.
        #expect(try await send(.get, "/_a67/api/v1/nothing").0.status == .forbidden)
        #expect(try await send(.put, "/_a67/metrics").0.status == .methodNotAllowed)
    }

    /// Everything outside /_a67 reaches S3, which checks the signature first (these are unsigned).
    @Test(arguments: ["/", "/photos", "/photos/", "/photos/a/b//c/", "/photos/%00%E2%82%AC%2F?x=1", "/photos//", "/_a67x/k", "/%5Fa67/metrics"])
    func everyOtherPathReachesS3(target: String) async throws {
        for method in [HTTPRequest.Method.get, .head, .put, .post, .delete, .options, .patch] {
            let (response, body) = try await send(method, target)
            #expect(response.status == .forbidden, "\(method) \(target)")
            #expect(method == .head || body.contains("<Code>AccessDenied</Code>"), "\(method) \(target)")
        }
    }

    @Test func aMethodNoRouteTakesIsNotAllowed() async throws {
        let (response, body) = try await send(HTTPRequest.Method("PROPFIND")!, "/photos/a")
        #expect(response.status == .methodNotAllowed)
        #expect(body.contains("<Code>MethodNotAllowed</Code>"))
    }

    @Test(arguments: ["/photos/a?x=%zz", "/photos/%ff", "/_a67/metrics?%zz"])
    func aTargetS3CannotReadIsRefusedBeforeRouting(target: String) async throws {
        let (response, body) = try await send(.get, target)
        #expect(response.status == .badRequest)
        #expect(body.contains("InvalidArgument"))
    }
}
