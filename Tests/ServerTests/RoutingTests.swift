import BackendTesting
import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import Replicator
import S3Protocol
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

    /// A module whose route takes a signed body, through the seam modules authenticate with.
    struct SignedModule: HTTPModule {
        let server: BlobServer
        func register(on group: RouterGroup<ServerRequestContext>) {
            group.post("signed") { request, context in
                context.operation.name = "Signed"
                let (caller, body) = try await server.authenticated(request, context: context, bodyLimit: 16)
                return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: caller.user.name + ":" + String(decoding: body, as: UTF8.self))))
            }
        }
    }

    init() throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(), passphrase: Passphrase("p"), settings: settings)
        server = BlobServer(repository: repository, settings: BlobServer.Settings())
        responder = server.router(modules: [ControlAPI(server: server), MetricsPage(server: server), EchoModule(),
                                            SignedModule(server: server)]).buildResponder()
    }

    func send(_ method: HTTPRequest.Method, _ target: String, headers: HTTPFields = [:], body: [UInt8] = []) async throws -> (Response, String) {
        let request = Request(head: HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: target, headerFields: headers),
                              body: RequestBody(buffer: ByteBuffer(bytes: body)))
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

    /// A module authenticates as S3 does: the signature and the body it covers are checked, and who
    /// signed is known; an unsigned request, a wrong secret or a body that is not the one signed is refused.
    @Test func aModuleAuthenticatesSignedRequestsAndTheirBodies() async throws {
        _ = try server.repository.catalog.accounts.addUser(name: "alice")
        let key = try await server.repository.createAccessKey(user: "alice")
        func signed(_ body: String, secret: String? = nil, sent: String? = nil) async throws -> (Response, String) {
            let hash = Hex.encode(Crypto.sha256(Array(body.utf8)))
            let signer = SigV4Signer(accessKeyID: key.id, secretKey: secret ?? key.secret, region: "us-east-1")
            let fields = signer.sign(method: "POST", path: "/_a67/signed", query: [], headers: [("Host", "127.0.0.1"), ("x-amz-content-sha256", hash)],
                                     payloadHash: hash, date: Date())
            var headers = HTTPFields()
            for (name, value) in fields where name != "Host" { headers[HTTPField.Name(name)!] = value }
            headers[.contentLength] = String((sent ?? body).utf8.count)
            return try await send(.post, "/_a67/signed", headers: headers, body: Array((sent ?? body).utf8))
        }
        let (ok, answer) = try await signed("deploy")
        #expect(ok.status == .ok && answer == "alice:deploy", "\(answer)")
        let (unsigned, refusal) = try await send(.post, "/_a67/signed", body: Array("deploy".utf8))
        #expect(unsigned.status == .forbidden && refusal.contains("AccessDenied"), "\(refusal)")
        #expect(try await signed("deploy", secret: "wrong").1.contains("SignatureDoesNotMatch"))
        let (tampered, why) = try await signed("deploy", sent: "delete")
        #expect(tampered.status == .badRequest && why.contains("XAmzContentSHA256Mismatch"), "\(why)")
        #expect(try await signed(String(repeating: "x", count: 17)).1.contains("MaxMessageLengthExceeded"))
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
