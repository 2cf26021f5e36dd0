import BackendTesting
import ChunkStore
import Compute
import Controller
@testable import ControllerHTTP
import CurlTransport
import Foundation
import Replicator
import S3Protocol
import Server
import Synchronization
import Testing

/// A real `a67 serve` on a local port with the controller running in it, and agents played by HTTP
/// requests: the join, heartbeats, the long poll, the isolation of nodes, the chunk relay and logs.
final class ControllerHarness: Sendable {
    let folder: TemporaryDirectory
    let repository: Repository
    let store: ControllerStore
    let service: ControllerService
    let base: String
    let server: BlobServer
    let task: Task<Void, Error>
    /// What the controller last gave the proxy.
    let routes = RouteTable()
    static let capacity = Resources(memoryBytes: 1 << 30, cpuMillis: 2000, diskBytes: 10 << 30)

    /// `longPoll`: how long the controller holds a desired-state request when nothing changes.
    init(longPoll: Duration = .seconds(20)) async throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(),
                                                   catalogModules: [ControllerSchema.schema], passphrase: Passphrase("p"), settings: settings)
        _ = try await repository.addProvider(name: "p1", spec: .directory(path: folder.path + "/p1"), quota: nil)
        _ = try await repository.createBucket("apps", replicas: 1)
        self.repository = repository
        store = ControllerStore(catalog: repository.catalog)
        var controller = ControllerService.Settings()
        controller.pollInterval = .milliseconds(50)
        // The agents here are played by requests that send no heartbeats: a node must not be marked
        // down (after three missed ones) while a test runs slowly beside the rest of the suite.
        controller.heartbeatInterval = .seconds(600)
        controller.longPoll = longPoll
        controller.logTimeout = .seconds(20)
        let routes = self.routes
        service = ControllerService(store: store, settings: controller, grants: AgentAPI.grants(repository: repository),
                                    onRoutes: { new in routes.value.withLock { $0 = new } })
        var serverSettings = BlobServer.Settings()
        serverSettings.port = 0
        let server = BlobServer(repository: repository, settings: serverSettings)
        let api = AgentAPI(server: server, service: service, store: store)
        self.server = server
        let (addresses, continuation) = AsyncStream<String>.makeStream()
        task = Task { [service] in try await server.run(modules: [ControlAPI(server: server), api], services: [service]) { continuation.yield($0) } }
        var iterator = addresses.makeAsyncIterator()
        base = "http://" + (await iterator.next() ?? "?")
    }

    deinit { task.cancel() }

    /// Another connection to the same catalog, as the CLI in another process opens it.
    func otherStore() throws -> ControllerStore {
        ControllerStore(catalog: try Catalog(path: folder.path + "/home/" + Repository.catalogFile, modules: [ControllerSchema.schema]))
    }

    /// Stores a bundle of `size` random bytes as apps/KEY and returns its SHA-256.
    func bundle(_ key: String, size: Int = 300_000) async throws -> [UInt8] {
        let bytes = Crypto.randomBytes(size)
        _ = try await repository.put(BytesSource(bytes), bucket: "apps", key: key)
        return Crypto.sha256(bytes)
    }

    /// One request through libcurl (CurlTransport: poll, not select, so it works whatever descriptors
    /// the suite holds), held as long as a long poll needs.
    func request(_ method: String, _ path: String, auth: String? = nil, json: (some Encodable)? = nil as String?,
                 body: [UInt8]? = nil, headers: [(String, String)] = []) async throws -> (status: Int, body: Data) {
        var all = headers.map { HTTPHeader($0.0, $0.1) }
        if let auth { all.append(HTTPHeader("Authorization", auth)) }
        var payload = body
        if let json {
            payload = [UInt8](try JSONEncoder().encode(json))
            all.append(HTTPHeader("Content-Type", "application/json"))
        }
        let verb: TransferRequest.Method = switch method {
        case "GET": .get
        case "PUT": .put
        case "DELETE": .delete
        case "HEAD": .head
        default: .custom(method)
        }
        if payload == nil && method != "GET" && method != "HEAD" { payload = [] }
        let response = try await CurlEngine.shared.perform(TransferRequest(
            verb, base + path, headers: all, body: payload,
            limits: TransferLimits(connectTimeout: 10, stallSeconds: 900, stallBytesPerSecond: 1, maxResponseBytes: 64 << 20)))
        return (response.status, Data(response.body))
    }

    func join(_ name: String, token: String? = nil, advertise: String? = nil) async throws -> (status: Int, body: Data) {
        let token = try token ?? store.createJoinToken(ttl: .seconds(600), now: Catalog.now())
        return try await request("POST", "/_a67/agent/join", auth: "A67-Token " + token,
                                 json: JoinRequest(name: name, advertise: advertise, labels: [:], capacity: Self.capacity, agentVersion: "test"))
    }

    func joined(_ name: String) async throws -> JoinResponse {
        let (status, body) = try await join(name)
        #expect(status == 200)
        return try JSONDecoder().decode(JoinResponse.self, from: body)
    }

    func desired(_ node: JoinResponse, after: Int64) async throws -> DesiredState {
        let (status, body) = try await request("GET", "/_a67/agent/desired?after=\(after)", auth: "A67-Node " + node.credential)
        #expect(status == 200)
        return try JSONDecoder().decode(DesiredState.self, from: body)
    }

    /// Long-polls until the node's desired state lists an instance.
    func firstInstance(_ node: JoinResponse) async throws -> (DesiredState, DesiredInstance) {
        var generation: Int64 = 0
        for _ in 0..<20 {
            let state = try await desired(node, after: generation)
            if let instance = state.instances.first { return (state, instance) }
            generation = state.generation
        }
        throw StoreError(.notFound, "no instance came")
    }

    /// A GET signed with a new access key of a new user (an admin or not), as the CLI signs the control API's.
    func signedGet(_ path: String, query: [(String, String)], admin: Bool) async throws -> (status: Int, body: Data) {
        let user = "u" + Hex.encode(Crypto.randomBytes(4))
        _ = try repository.catalog.accounts.addUser(name: user, admin: admin)
        let key = try await repository.createAccessKey(user: user)
        let signer = SigV4Signer(accessKeyID: key.id, secretKey: key.secret, region: "us-east-1")
        let host = String(base.dropFirst("http://".count))
        let fields = signer.sign(method: "GET", path: path, query: query, headers: [("Host", host), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)],
                                 payloadHash: SigV4Signer.emptyPayloadHash)
        let target = path + "?" + query.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        return try await request("GET", target, headers: fields.filter { $0.0 != "Host" })
    }

    /// `probe`'s first non-nil answer, asked every 20 ms for up to 10 s (for what the controller does
    /// on its next pass; the bound is generous, the point is that it happens).
    /// Polls `probe` until it gives a value, for at most 2 minutes (a bound on a broken feature, not a
    /// timing assertion: the suite runs in parallel on two cores).
    func eventually<T>(_ probe: () throws -> T?) async throws -> T? {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let value = try probe() { return value }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Deploys a one-instance app through another catalog connection (as the CLI does).
    func deploy(_ app: String) async throws -> [UInt8] {
        let sha = try await bundle(app + "/1")
        let cli = try otherStore()
        let now = Catalog.now()
        _ = try cli.addVersion(manifest: AppManifest(name: app, command: ["./run"], instances: 1), bundle: "apps/\(app)/1", bundleSHA256: sha, now: now)
        try cli.deploy(app: app, version: 1, now: now)
        return sha
    }
}

final class RouteTable: Sendable {
    let value = Mutex<[String: [AppEndpoint]]>([:])
}

@Suite struct ControllerHTTPTests {
    @Test func aJoinTokenAdmitsOneNodeOnceBeforeItExpires() async throws {
        let harness = try await ControllerHarness()
        let token = try harness.store.createJoinToken(ttl: .seconds(600), now: Catalog.now())
        let (status, body) = try await harness.join("vm1", token: token)
        #expect(status == 200)
        let response = try JSONDecoder().decode(JoinResponse.self, from: body)
        // No --advertise: the address the join came from.
        #expect(response.address == "127.0.0.1")
        #expect(response.credential.hasPrefix(response.nodeID + "."))
        #expect(try await harness.join("vm2", advertise: "10.1.2.3").body.contains("10.1.2.3".utf8))

        let used = try await harness.join("vm3", token: token)
        #expect(used.status == 403)
        #expect(String(decoding: used.body, as: UTF8.self).contains("already used"))
        let old = try harness.store.createJoinToken(ttl: .seconds(1), now: Catalog.now() - 5_000_000_000)
        let expired = try await harness.join("vm3", token: old)
        #expect(expired.status == 403)
        #expect(String(decoding: expired.body, as: UTF8.self).contains("expired"))
        #expect(try await harness.join("vm3", token: Hex.encode(Crypto.randomBytes(32))).status == 401)
        #expect(try await harness.join("vm3", token: "guess").status == 401)
        #expect(try await harness.request("POST", "/_a67/agent/join", json: "{}").status == 401)
        // Nothing changed by the refusals: two nodes.
        #expect(try harness.store.nodes().map(\.name) == ["vm1", "vm2"])
    }

    @Test func theDesiredStateIsPushedWithinASecondOfACatalogChange() async throws {
        // The long poll is held 10 minutes when nothing changes: an answer with the change before then
        // was pushed by it (on this machine, within a second; the suite running in parallel on two
        // cores can stretch that, so the test asserts the push, not its latency).
        let longPoll = Duration.seconds(600)
        let harness = try await ControllerHarness(longPoll: longPoll)
        let node = try await harness.joined("vm1")
        let heartbeat = Heartbeat(used: .zero, capacity: ControllerHarness.capacity, instances: [], cachedBundles: [])
        let (status, body) = try await harness.request("POST", "/_a67/agent/heartbeat", auth: "A67-Node " + node.credential, json: heartbeat)
        #expect(status == 200)
        _ = try JSONDecoder().decode(HeartbeatReply.self, from: body)
        let empty = try await harness.desired(node, after: 0)
        #expect(empty.generation >= 1 && empty.instances.isEmpty)
        // A long poll is waiting when the CLI deploys through its own connection.
        let poll = Task { try await harness.desired(node, after: empty.generation) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        _ = try await harness.deploy("web")
        let pushed = try await poll.value
        #expect(ContinuousClock.now - started < longPoll, "it came back on the change, not at the poll's end")
        #expect(pushed.generation > empty.generation)
        #expect(pushed.instances.map(\.app) == ["web"])
        #expect(pushed.instances.first?.run == true)
    }

    @Test func aNodeTouchesOnlyItsOwnAllocationsAndForgedCredentialsAreRefused() async throws {
        let harness = try await ControllerHarness()
        let one = try await harness.joined("vm1")
        let two = try await harness.joined("vm2")
        _ = try await harness.deploy("web")
        // The controller places it on its next pass.
        let placed = try #require(try await harness.eventually { try harness.store.allocations(app: "web").first })
        let (owner, other) = placed.allocation.nodeID == one.nodeID ? (one, two) : (two, one)
        let report = InstanceReport(allocationID: placed.allocation.id, state: .running, healthy: true, port: 8080, restarts: 0,
                                    exitCode: nil, message: nil)
        let path = "/_a67/agent/allocations/" + placed.allocation.id
        #expect(try await harness.request("PUT", path, auth: "A67-Node " + other.credential, json: report).status == 403)
        #expect(try harness.store.allocation(id: placed.allocation.id).allocation.state == .pending)
        // Forged: the owner's ID with another secret.
        let forged = owner.nodeID + "." + Hex.encode(Crypto.randomBytes(32))
        #expect(try await harness.request("PUT", path, auth: "A67-Node " + forged, json: report).status == 401)
        #expect(try await harness.request("GET", "/_a67/agent/desired?after=0", auth: "A67-Node " + forged).status == 401)
        #expect(try await harness.request("PUT", path, json: report).status == 401)
        // The owner's report is taken, and the healthy instance reaches the proxy's routes.
        #expect(try await harness.request("PUT", path, auth: "A67-Node " + owner.credential, json: report).status == 204)
        #expect(try harness.store.allocation(id: placed.allocation.id).healthy)
        let routed = try await harness.eventually { harness.routes.value.withLock { $0["web"].flatMap { $0.isEmpty ? nil : $0 } } }
        #expect(routed == [AppEndpoint(allocationID: placed.allocation.id, app: "web", host: "127.0.0.1", port: 8080)])
        // A removed node's credential stops working.
        try harness.store.remove(node: other.nodeID, now: Catalog.now())
        #expect(try await harness.request("GET", "/_a67/agent/desired?after=0", auth: "A67-Node " + other.credential).status == 401)
    }

    @Test func theChunkRelayGivesSealedChunksThatOpenWithTheGrantedKeys() async throws {
        let harness = try await ControllerHarness()
        let node = try await harness.joined("vm1")
        let sha = try await harness.deploy("web")
        let (_, instance) = try await harness.firstInstance(node)
        #expect(instance.bundle.sha256 == Hex.encode(sha))
        #expect(!instance.bundle.chunks.isEmpty)
        var archive: [UInt8] = []
        for chunk in instance.bundle.chunks {
            let (status, sealed) = try await harness.request("GET", "/_a67/agent/chunks/" + chunk.id, auth: "A67-Node " + node.credential)
            #expect(status == 200)
            let id = try #require(ChunkID(hex: chunk.id))
            let key = SecretKey(bytes: try #require(Hex.decode(chunk.key)))
            archive += try ChunkSealer.open([UInt8](sealed), id: id, chunkKey: key, expectedLength: chunk.length)
        }
        #expect(Int64(archive.count) == instance.bundle.size)
        #expect(Crypto.sha256(archive) == sha)
        // A chunk of an object no grant lists: refused.
        _ = try await harness.bundle("other/1")
        let other = try harness.repository.object(bucket: "apps", key: "other/1").manifest.entries[0].id
        #expect(try await harness.request("GET", "/_a67/agent/chunks/" + other.hex, auth: "A67-Node " + node.credential).status == 403)
    }

    @Test func logsAreAskedOfTheAgentThroughItsDesiredState() async throws {
        let harness = try await ControllerHarness()
        let node = try await harness.joined("vm1")
        _ = try await harness.deploy("web")
        let (state, instance) = try await harness.firstInstance(node)
        // The operator asks through the signed route; the agent is asked through its desired state.
        let path = "/_a67/api/v1/apps/web/logs"
        let query = [("instance", instance.allocationID), ("tail", "10")]
        let logs = Task { try await harness.signedGet(path, query: query, admin: true) }
        var generation = state.generation
        var request: LogRequest?
        for _ in 0..<20 where request == nil {
            let next = try await harness.desired(node, after: generation)
            generation = next.generation
            request = next.logRequests.first
        }
        let asked = try #require(request)
        #expect(asked.allocationID == instance.allocationID && asked.tail == 10)
        #expect(try await harness.request("POST", "/_a67/agent/logs/" + asked.id, auth: "A67-Node " + node.credential,
                                          body: Array("hello\n".utf8)).status == 204)
        let answered = try await logs.value
        #expect(answered.status == 200)
        #expect(answered.body == Data("hello\n".utf8))
        // Answered once: a second post of it finds nothing waiting.
        #expect(try await harness.request("POST", "/_a67/agent/logs/" + asked.id, auth: "A67-Node " + node.credential,
                                          body: Array("again".utf8)).status == 404)
        // Only an admin's signed request reads logs.
        #expect(try await harness.signedGet(path, query: query, admin: false).status == 403)
        #expect(try await harness.request("GET", path + "?instance=" + instance.allocationID).status == 403)
        // An instance of another app is not found under this one.
        #expect(try await harness.signedGet("/_a67/api/v1/apps/api/logs", query: query, admin: true).status == 404)
    }
}
