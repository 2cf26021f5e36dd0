import BackendTesting
import ChunkStore
import Compute
@testable import Controller
import Foundation
import Testing

/// The operator's intents as the CLI writes them, the reconciler's actions applied, and the read
/// models of `app status`, `app ls` and `node ls`, on a real catalog.
@Suite struct ControllerIntentTests {
    let t0 = ControllerFixture.t0
    let sha = [UInt8](repeating: 7, count: 32)

    func manifest(instances: Int = 2) -> AppManifest {
        AppManifest(name: "web", command: ["./run"], instances: instances,
                    update: UpdatePolicy(maxParallel: 1, minHealthyTime: .seconds(1), healthyDeadline: .seconds(60)))
    }

    @Test func deployScaleStopAndStartRecordIntentsAndEvents() throws {
        let fixture = try ControllerFixture()
        #expect(fixture.errorCode { try fixture.store.scale(app: "web", instances: 3, now: t0) } == .notFound)
        _ = try fixture.store.addVersion(manifest: manifest(), bundle: "apps/web/1", bundleSHA256: sha, now: t0)
        #expect(fixture.errorCode { try fixture.store.scale(app: "web", instances: 3, now: t0) } == .conflict)
        #expect(fixture.errorCode { _ = try fixture.store.deploy(app: "web", version: 2, now: t0) } == .notFound)
        let first = try fixture.store.deploy(app: "web", version: 1, now: t0 + 1)
        #expect(first.state == .running && first.fromVersion == nil)
        #expect(fixture.errorCode { _ = try fixture.store.deploy(app: "web", version: 1, now: t0 + 2) } == .conflict)
        var status = try fixture.store.status(app: "web")
        #expect(status.desiredVersion == 1 && status.desiredInstances == 2 && !status.stopped)
        try fixture.store.scale(app: "web", instances: 5, now: t0 + 3)
        #expect(try fixture.store.status(app: "web").desiredInstances == 5)
        #expect(fixture.errorCode { try fixture.store.scale(app: "web", instances: -1, now: t0) } == .invalidArgument)
        try fixture.store.stop(app: "web", now: t0 + 4)
        status = try fixture.store.status(app: "web")
        #expect(status.stopped && status.desiredInstances == 0)
        try fixture.store.start(app: "web", now: t0 + 5)
        #expect(try fixture.store.status(app: "web").desiredInstances == 5)
        // A new version's deploy cancels the running deployment and forgets the scale.
        _ = try fixture.store.addVersion(manifest: manifest(instances: 3), bundle: "apps/web/2", bundleSHA256: sha, now: t0 + 6)
        let second = try fixture.store.deploy(app: "web", version: 2, now: t0 + 7)
        #expect(second.fromVersion == 1)
        #expect(try fixture.store.deployments(app: "web").map(\.state) == [.running, .cancelled])
        #expect(try fixture.store.status(app: "web").desiredInstances == 3)
        let kinds = try fixture.store.events().map(\.kind)
        #expect(kinds.filter { $0 == .appChanged }.count == 3)
        #expect(kinds.filter { $0 == .deploymentStarted }.count == 2)
        #expect(kinds.contains(.deploymentFinished))
    }

    @Test func rollbackGoesToTheLastVersionThatDeployedHealthy() throws {
        let fixture = try ControllerFixture()
        for n in 1...3 { _ = try fixture.store.addVersion(manifest: manifest(), bundle: "apps/web/\(n)", bundleSHA256: sha, now: t0) }
        try fixture.store.deploy(app: "web", version: 3, now: t0)
        // Nothing deployed healthy yet: nothing to roll back to without --to.
        #expect(fixture.errorCode { _ = try fixture.store.rollback(app: "web", to: nil, now: t0) } == .conflict)
        try fixture.store.apply([.setVersionState(app: "web", version: 1, state: .superseded),
                                 .setVersionState(app: "web", version: 2, state: .failed),
                                 .setVersionState(app: "web", version: 3, state: .deployed)], now: t0 + 1)
        let back = try fixture.store.rollback(app: "web", to: nil, now: t0 + 2)
        #expect(back.version == 1 && back.fromVersion == 3)
        let named = try fixture.store.rollback(app: "web", to: 2, now: t0 + 3)
        #expect(named.version == 2)
        #expect(try fixture.store.status(app: "web").versions.map(\.state) == ["superseded", "failed", "deployed"])
    }

    /// The reconciler's plan for a first deploy, applied: pending allocations on both nodes, each
    /// node's desired state changes, and `node ls` counts them.
    @Test func aPlanAppliedPlacesAndTheReadModelsShowIt() throws {
        let fixture = try ControllerFixture()
        let one = try fixture.join("vm1").node
        _ = try fixture.join("vm2")
        _ = try fixture.store.addVersion(manifest: manifest(), bundle: "apps/web/1", bundleSHA256: sha, now: t0)
        try fixture.store.deploy(app: "web", version: 1, now: t0)
        let input = try fixture.store.reconcileInput(now: t0 + 1)
        let actions = Reconciler.plan(input)
        try fixture.store.apply(actions, now: t0 + 1)
        let status = try fixture.store.status(app: "web")
        #expect(status.instances.map(\.state) == ["pending", "pending"])
        #expect(Set(status.instances.map(\.node)) == ["vm1", "vm2"])
        let nodes = try fixture.store.nodeSummaries()
        #expect(nodes.map(\.instances) == [1, 1])
        #expect(nodes.map(\.apps) == [1, 1])
        #expect(nodes.first?.reserved == AppManifest.defaultResources)
        // The agent reports it healthy: the status says so.
        let mine = try #require(status.instances.first { $0.nodeID == one.id })
        _ = try fixture.store.update(allocation: mine.id, node: one.id, AllocationChange(state: .running, port: 8080, healthy: true), now: t0 + 2)
        let after = try fixture.store.status(app: "web")
        #expect(after.healthyInstances == 1)
        #expect(try fixture.store.appSummaries() == [AppSummary(name: "web", version: 1, deployment: "running", desiredInstances: 2,
                                                                healthyInstances: 1, stopped: false)])
        // Applying the same plan again on fresh facts places nothing more.
        #expect(Reconciler.plan(try fixture.store.reconcileInput(now: t0 + 3)).isEmpty)
        // Generations start at 0 and increase.
        #expect(try fixture.store.generations()[one.id] == 0)
        #expect(try fixture.store.bumpGeneration(node: one.id) == 1)
    }

    /// A catalog made by the first schema, with events already, takes the second: the events stay and
    /// the new kinds are accepted.
    @Test func theSecondSchemaMigratesACatalogOfTheFirst() throws {
        let folder = try TemporaryDirectory()
        let path = folder.path + "/catalog.db"
        var v1 = CatalogSchema(module: "controller")
        let first = try #require(ControllerSchema.schema.migrations.first)
        v1.register(String(first.identifier.dropFirst("controller ".count)), migrate: first.migrate)
        let old = try Catalog(path: path, create: true, modules: [v1])
        _ = try ControllerStore(catalog: old).createJoinToken(ttl: .seconds(60), now: t0)
        try old.close()
        let store = ControllerStore(catalog: try Catalog(path: path, modules: [ControllerSchema.schema]))
        _ = try store.addVersion(manifest: manifest(), bundle: "b", bundleSHA256: sha, now: t0)
        try store.deploy(app: "web", version: 1, now: t0)
        #expect(try store.events().map(\.kind) == [.tokenCreated, .versionAdded, .deploymentStarted])
        #expect(try store.status(app: "web").desiredVersion == 1)
    }
}
