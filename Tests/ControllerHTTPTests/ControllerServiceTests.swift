import BackendTesting
import ChunkStore
import Compute
import Controller
@testable import ControllerHTTP
import Foundation
import Synchronization
import Testing

/// The controller's passes driven one by one with a wall clock the test moves: nodes going down,
/// drains leaving the routes before the stop, and what a long poll answers. No HTTP, no sleeps.
@Suite struct ControllerServiceTests {
    static let t0 = ControllerFixtureTime.t0
    static let second: Int64 = 1_000_000_000

    final class Clockwork: Sendable {
        let now = Mutex<Int64>(ControllerFixtureTime.t0)
        let routes = Mutex<[[String: [AppEndpoint]]]>([])
        func advance(seconds: Double) { now.withLock { $0 += Int64(seconds * 1e9) } }
    }

    struct Fixture {
        let folder: TemporaryDirectory
        let store: ControllerStore
        let service: ControllerService
        let clockwork = Clockwork()

        init() throws {
            folder = try TemporaryDirectory()
            store = ControllerStore(catalog: try Catalog(path: folder.path + "/catalog.db", create: true, modules: [ControllerSchema.schema]))
            var settings = ControllerService.Settings()
            settings.heartbeatInterval = .seconds(1)
            settings.longPoll = .milliseconds(50)
            let clockwork = self.clockwork
            service = ControllerService(store: store, settings: settings, now: { clockwork.now.withLock { $0 } },
                                        grants: { version in
                                            // One chunk per bundle, named after it.
                                            BundleGrant(sha256: Hex.encode(version.bundleSHA256), size: 1,
                                                        chunks: [GrantedChunk(id: Hex.encode(version.bundleSHA256), key: String(repeating: "0", count: 64), length: 1)])
                                        },
                                        onRoutes: { routes in clockwork.routes.withLock { $0.append(routes) } })
        }

        var now: Int64 { clockwork.now.withLock { $0 } }

        func join(_ name: String) throws -> Node {
            let token = try store.createJoinToken(ttl: .seconds(60), now: now)
            return try store.register(token: token, name: name, address: "10.0.0.9", labels: [:], capacity: ControllerServiceTests.capacity,
                                      agentVersion: "test", now: now).node
        }

        var lastRoutes: [String: [AppEndpoint]]? { clockwork.routes.withLock { $0.last } }
    }

    static let capacity = Resources(memoryBytes: 1 << 30, cpuMillis: 2000, diskBytes: 10 << 30)

    @Test func aNodeSilentForThreeHeartbeatsIsDownAndItsNextHeartbeatBringsItBack() async throws {
        let fixture = try Fixture()
        let node = try fixture.join("vm1")
        try await fixture.service.pass()
        fixture.clockwork.advance(seconds: 2.9)
        try await fixture.service.pass()
        #expect(try fixture.store.node(id: node.id).state == .ready)
        // Noticed on the next pass (a second later at most, nothing else having changed).
        fixture.clockwork.advance(seconds: 1)
        try await fixture.service.pass()
        #expect(try fixture.store.node(id: node.id).state == .down)
        #expect(try fixture.store.events().contains { $0.kind == .nodeState && $0.message.contains("no heartbeat for 3 s") })
        let resized = Resources(memoryBytes: 2 << 30, cpuMillis: 4000, diskBytes: 10 << 30)
        let used = Resources(memoryBytes: 1 << 20, cpuMillis: 10, diskBytes: 1 << 20)
        _ = try await fixture.service.heartbeat(node: node, Heartbeat(used: used, capacity: resized, instances: [], cachedBundles: []))
        let back = try fixture.store.node(id: node.id)
        #expect(back.state == .ready && back.capacity == resized && back.used == used)
    }

    /// Scaling to zero: the instance leaves the routes at once, still running; it is told to stop
    /// after the drain delay, in a new generation of its node's desired state.
    @Test func aDrainedInstanceLeavesTheRoutesBeforeItIsToldToStop() async throws {
        let fixture = try Fixture()
        let node = try fixture.join("vm1")
        let manifest = AppManifest(name: "web", command: ["./run"], instances: 1)
        _ = try fixture.store.addVersion(manifest: manifest, bundle: "apps/web/1", bundleSHA256: Array(repeating: 1, count: 32), now: fixture.now)
        try fixture.store.deploy(app: "web", version: 1, now: fixture.now)
        try await fixture.service.pass()
        let placed = try #require(await fixture.service.desired(node: node.id, after: -1)?.instances.first)
        #expect(placed.run && placed.bundle.sha256 == String(repeating: "01", count: 32))
        #expect(fixture.service.grantedLength(node: node.id, chunk: ChunkID(bytes: Array(repeating: 1, count: 32))) == 1)
        #expect(fixture.lastRoutes == ["web": []], "a deployed app is listed with no instance until one is healthy (503, not 404)")

        fixture.clockwork.advance(seconds: 1)
        try await fixture.service.report(node: node, InstanceReport(allocationID: placed.allocationID, state: .running, healthy: true,
                                                                    port: 9000, restarts: 0, exitCode: nil, message: nil))
        try await fixture.service.pass()
        #expect(fixture.lastRoutes == ["web": [AppEndpoint(allocationID: placed.allocationID, app: "web", host: "10.0.0.9", port: 9000)]])

        try fixture.store.scale(app: "web", instances: 0, now: fixture.now)
        try await fixture.service.pass()
        #expect(fixture.lastRoutes == ["web": []])
        let draining = try #require(await fixture.service.desired(node: node.id, after: -1))
        #expect(draining.instances.map(\.run) == [true])

        fixture.clockwork.advance(seconds: 2)
        try await fixture.service.pass()
        let stopping = try #require(await fixture.service.desired(node: node.id, after: -1))
        #expect(stopping.instances.map(\.run) == [false])
        #expect(stopping.generation > draining.generation)
        // Once the agent reports it stopped, it leaves the desired state.
        try await fixture.service.report(node: node, InstanceReport(allocationID: placed.allocationID, state: .stopped, healthy: false,
                                                                    port: 9000, restarts: 0, exitCode: 0, message: nil))
        try await fixture.service.pass()
        #expect(try #require(await fixture.service.desired(node: node.id, after: -1)).instances.isEmpty)
    }

    /// Two equal nodes; the second's agent says it caches the bundle: the instance goes there.
    @Test func theNodeWhoseAgentCachesTheBundleGetsTheInstance() async throws {
        for warm in [0, 1] {
            let fixture = try Fixture()
            let nodes = [try fixture.join("vm1"), try fixture.join("vm2")]
            let sha = Array(repeating: UInt8(7), count: 32)
            _ = try await fixture.service.heartbeat(node: nodes[warm], Heartbeat(used: .zero, capacity: Self.capacity, instances: [],
                                                                                 cachedBundles: [Hex.encode(sha)]))
            _ = try fixture.store.addVersion(manifest: AppManifest(name: "web", command: ["./run"]), bundle: "apps/web/1", bundleSHA256: sha,
                                             now: fixture.now)
            try fixture.store.deploy(app: "web", version: 1, now: fixture.now)
            try await fixture.service.pass()
            #expect(try fixture.store.allocations(app: "web").map(\.allocation.nodeID) == [nodes[warm].id])
        }
    }

    @Test func aLongPollNeverAnswersAnEmptyStateBeforeTheFirstPass() async throws {
        let fixture = try Fixture()
        let node = try fixture.join("vm1")
        // Before the controller built it: nothing (the API answers 503), not an empty list.
        #expect(await fixture.service.desired(node: node.id, after: 0) == nil)
        try await fixture.service.pass()
        let first = try #require(await fixture.service.desired(node: node.id, after: 0))
        #expect(first.generation == 1)
        // Nothing changed: held, then the same generation.
        #expect(await fixture.service.desired(node: node.id, after: 1)?.generation == 1)
        // An agent ahead of the controller (a restored catalog) is answered at once with the controller's.
        #expect(await fixture.service.desired(node: node.id, after: 40)?.generation == 1)
    }
}

/// The fixed moment the controller's suites start at (as ControllerTests' fixture).
enum ControllerFixtureTime {
    static let t0: Int64 = 1_800_000_000 * 1_000_000_000
}
