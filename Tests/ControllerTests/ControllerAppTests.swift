import BackendTesting
import ChunkStore
import Compute
import Controller
import GRDB
import Testing

/// Apps, versions, allocations, the event log, and the tables' life in the catalog.
@Suite struct ControllerAppTests {
    let t0 = ControllerFixture.t0
    let sha = [UInt8](repeating: 7, count: 32)

    func manifest(_ name: String, memory: Int64 = 256 << 20) -> AppManifest {
        AppManifest(name: name, command: ["./serve"], resources: Resources(memoryBytes: memory, cpuMillis: 500))
    }

    @Test func versionsAreNumberedPerAppFromOne() throws {
        let fixture = try ControllerFixture()
        #expect(try fixture.store.addVersion(manifest: manifest("web"), bundle: "apps/web/1", bundleSHA256: sha, now: t0) == 1)
        #expect(try fixture.store.addVersion(manifest: manifest("api"), bundle: "apps/api/1", bundleSHA256: sha, now: t0) == 1)
        #expect(try fixture.store.addVersion(manifest: manifest("web", memory: 1 << 30), bundle: "apps/web/2", bundleSHA256: sha, now: t0 + 1) == 2)
        let versions = try fixture.store.versions(app: "web")
        #expect(versions.map(\.number) == [1, 2] && versions.map(\.bundle) == ["apps/web/1", "apps/web/2"])
        #expect(versions[1].manifest == manifest("web", memory: 1 << 30) && versions[1].bundleSHA256 == sha)
        #expect(versions[1].state == .stored && versions[1].createdAt == t0 + 1)
        #expect(try fixture.store.apps() == ["api", "web"])
        #expect(fixture.errorCode { _ = try fixture.store.addVersion(manifest: manifest("web"), bundle: "b", bundleSHA256: [1], now: t0) }
            == .invalidArgument)
        try fixture.store.removeApp("web", now: t0 + 2)
        #expect(fixture.errorCode { _ = try fixture.store.versions(app: "web") } == .notFound)
        #expect(try fixture.store.apps() == ["api"])
    }

    @Test func allocationsComeFromPlacementsAndOnlyTheirNodeChangesThem() throws {
        let fixture = try ControllerFixture()
        let one = try fixture.join("vm1").node
        let two = try fixture.join("vm2").node
        _ = try fixture.store.addVersion(manifest: manifest("web"), bundle: "apps/web/1", bundleSHA256: sha, now: t0)
        let decision = PlacementDecision(app: "web", requested: 2, placements: [Placement(instance: 0, nodeID: one.id),
                                                                                 Placement(instance: 1, nodeID: two.id)],
                                         explanation: nil)
        let placed = try fixture.store.place(decision, version: 1, now: t0 + 1)
        #expect(placed.map(\.nodeID) == [one.id, two.id] && placed.allSatisfy { $0.state == .pending && $0.version == 1 })
        #expect(placed[0].resources == manifest("web").resources)
        #expect(try fixture.store.allocations(node: one.id).map(\.allocation) == [placed[0]])
        #expect(try fixture.store.allocations(app: "web").map(\.allocation.id) == placed.map(\.id).sorted())

        // vm2 may not read or change vm1's allocation: refused as not found, like one that is not there.
        #expect(fixture.errorCode { _ = try fixture.store.update(allocation: placed[0].id, node: two.id, .init(state: .running), now: t0) }
            == .notFound)
        #expect(fixture.errorCode { _ = try fixture.store.update(allocation: "a-none", node: one.id, .init(state: .running), now: t0) }
            == .notFound)
        let running = try fixture.store.update(allocation: placed[0].id, node: one.id,
                                               AllocationChange(state: .running, port: 31000, restarts: 1, exitCode: 137), now: t0 + 2)
        #expect(running.allocation.state == .running && running.port == 31000 && running.restarts == 1 && running.exitCode == 137)
        #expect(try fixture.store.allocations(node: one.id) == [running] && running.updatedAt == t0 + 2)
        #expect(try fixture.store.allocations(node: two.id).map(\.allocation.state) == [.pending])

        for refused in [AllocationChange(restarts: 0), AllocationChange(port: 0)] {
            #expect(fixture.errorCode { _ = try fixture.store.update(allocation: placed[0].id, node: one.id, refused, now: t0) } != nil)
        }
        _ = try fixture.store.update(allocation: placed[0].id, node: one.id, AllocationChange(state: .stopped), now: t0 + 3)
        #expect(fixture.errorCode { _ = try fixture.store.update(allocation: placed[0].id, node: one.id, .init(state: .running), now: t0) }
            == .conflict)
        // An app with an instance that holds a node's resources is stopped first, and removed once none does.
        #expect(try fixture.store.removeApp("web", now: t0) == false)
        #expect(try fixture.store.status(app: "web").stopped)
        #expect(fixture.errorCode { try fixture.store.start(app: "web", now: t0) } == .conflict)
        // Removing vm2 fails its instance, and the reconciler forgets the app.
        try fixture.store.remove(node: two.id, now: t0 + 4)
        #expect(try fixture.store.allocations(node: two.id).map(\.allocation.state) == [.failed])
        let plan = Reconciler.plan(try fixture.store.reconcileInput(now: t0 + 5))
        #expect(plan == [.forget(app: "web")])
        try fixture.store.apply(plan, now: t0 + 5)
        #expect(try fixture.store.apps().isEmpty)
        #expect(try fixture.store.allocations(node: one.id).isEmpty)
    }

    @Test func placingOnANodeNoLongerReadyIsRefused() throws {
        let fixture = try ControllerFixture()
        let node = try fixture.join("vm1").node
        _ = try fixture.store.addVersion(manifest: manifest("web"), bundle: "b", bundleSHA256: sha, now: t0)
        try fixture.store.setState(node: node.id, .draining, reason: "drain", now: t0)
        let decision = PlacementDecision(app: "web", requested: 1, placements: [Placement(instance: 0, nodeID: node.id)], explanation: nil)
        #expect(fixture.errorCode { _ = try fixture.store.place(decision, version: 1, now: t0) } == .conflict)
        #expect(fixture.errorCode { _ = try fixture.store.place(decision, version: 9, now: t0) } == .notFound)
        #expect(try fixture.store.allocations(app: "web").isEmpty)
    }

    @Test func everyChangeIsAnEventAtItsTimeInNanoseconds() throws {
        let fixture = try ControllerFixture()
        let node = try fixture.join("vm1", at: t0).node
        _ = try fixture.store.addVersion(manifest: manifest("web"), bundle: "b", bundleSHA256: sha, now: t0 + 1)
        let decision = PlacementDecision(app: "web", requested: 1, placements: [Placement(instance: 0, nodeID: node.id)], explanation: nil)
        let allocation = try fixture.store.place(decision, version: 1, now: t0 + 2)[0]
        _ = try fixture.store.update(allocation: allocation.id, node: node.id, .init(state: .running), now: t0 + 3)
        // The same report again changes nothing and records nothing.
        _ = try fixture.store.update(allocation: allocation.id, node: node.id, .init(state: .running), now: t0 + 4)
        try fixture.store.setState(node: node.id, .draining, reason: "drain", now: t0 + 5)
        try fixture.store.remove(node: node.id, now: t0 + 6)
        try fixture.store.removeApp("web", now: t0 + 7)

        let events = try fixture.store.events()
        #expect(events.map(\.kind) == [.tokenCreated, .nodeJoined, .versionAdded, .allocationPlaced, .allocationChanged, .nodeState,
                                       .allocationChanged, .nodeRemoved, .appRemoved])
        #expect(events.map(\.at) == [t0, t0, t0 + 1, t0 + 2, t0 + 3, t0 + 5, t0 + 6, t0 + 6, t0 + 7])
        #expect(events[2].subject == "web/1" && events[4].subject == allocation.id && events[4].message == "pending -> running")
        // Paged by ID.
        let page = try fixture.store.events(since: events[3].id, limit: 2)
        #expect(page == Array(events[4...5]))
    }

    @Test func theTablesSurviveAReopenAndAreAddedToAStoreOnlyCatalog() throws {
        let folder = try TemporaryDirectory()
        let path = folder.path + "/catalog.db"
        // A catalog made before the compute half: the store's tables only.
        try Catalog(path: path, create: true).close()
        let registered: NodeRegistration
        do {
            let catalog = try Catalog(path: path, modules: [ControllerSchema.schema])
            let store = ControllerStore(catalog: catalog)
            let token = try store.createJoinToken(ttl: .seconds(60), now: t0)
            registered = try store.register(token: token, name: "vm1", address: "a", labels: ["disk": "ssd"], capacity: ControllerFixture.capacity,
                                            agentVersion: "1", now: t0)
            _ = try store.addVersion(manifest: manifest("web"), bundle: "b", bundleSHA256: sha, now: t0)
            let applied = try catalog.database.read { db in
                try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations WHERE identifier LIKE 'controller %'")
            }
            #expect(applied == ControllerSchema.schema.migrations.map(\.identifier))
            #expect(applied.count == 2)
            try catalog.close()
        }
        let reopened = ControllerStore(catalog: try Catalog(path: path, modules: [ControllerSchema.schema]))
        #expect(try reopened.nodes() == [registered.node])
        #expect(try reopened.authenticate(credential: registered.credential)?.labels == ["disk": "ssd"])
        #expect(try reopened.versions(app: "web").map(\.manifest) == [manifest("web")])
    }

    /// The state columns take only their enums' values, whatever writes them.
    @Test(arguments: ["UPDATE controller_node SET state = 'lost'", "UPDATE controller_allocation SET state = 'paused'",
                      "UPDATE controller_version SET state = 'old'", "UPDATE controller_node SET credential_hash = NULL",
                      "INSERT INTO controller_event(at, kind, subject, message) VALUES (0, 'node.lost', 's', 'm')"])
    func stateColumnsAreChecked(_ sql: String) throws {
        let fixture = try ControllerFixture()
        let node = try fixture.join("vm1").node
        _ = try fixture.store.addVersion(manifest: manifest("web"), bundle: "b", bundleSHA256: sha, now: t0)
        let decision = PlacementDecision(app: "web", requested: 1, placements: [Placement(instance: 0, nodeID: node.id)], explanation: nil)
        _ = try fixture.store.place(decision, version: 1, now: t0)
        #expect(throws: DatabaseError.self) { try fixture.catalog.database.write { db in try db.execute(sql: sql) } }
    }
}
