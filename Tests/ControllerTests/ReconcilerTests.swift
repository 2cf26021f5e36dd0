import ChunkStore
import Compute
@testable import Controller
import Foundation
import Testing

/// The reconciler as a pure function: facts in, actions out, tabled step by step.
@Suite struct ReconcilerTests {
    static let t0 = ControllerFixture.t0
    static let second: Int64 = 1_000_000_000
    static let small = Resources(memoryBytes: 1 << 30, cpuMillis: 1000, diskBytes: 10 << 30)

    static func node(_ id: String, state: NodeState = .ready, capacity: Resources = small) -> Node {
        Node(id: id, name: id, address: "10.0.0.\(id.count)", labels: [:], capacity: capacity, used: .zero, state: state,
             lastHeartbeat: t0, agentVersion: "test", createdAt: t0)
    }

    /// An app whose versions all ask for `instances` instances of 128 MiB, rolled one at a time, proven
    /// after 10 s, failed after 60 s.
    static func manifest(instances: Int = 2, autoRevert: Bool = true, memory: Int64 = 128 << 20) -> AppManifest {
        AppManifest(name: "web", command: ["./run"], instances: instances, resources: Resources(memoryBytes: memory, cpuMillis: 100),
                    update: UpdatePolicy(maxParallel: 1, minHealthyTime: .seconds(10), healthyDeadline: .seconds(60), autoRevert: autoRevert))
    }

    static func app(version: Int?, states: [AppVersion.State], instances: Int? = nil, stopped: Bool = false, deployment: Deployment? = nil,
                    manifest: AppManifest = manifest(), problem: String? = nil) -> AppIntent {
        AppIntent(name: "web", desiredVersion: version, desiredInstances: instances, stopped: stopped,
                  versions: states.enumerated().map { VersionSummary(number: $0.offset + 1, manifest: manifest, state: $0.element) },
                  deployment: deployment, placementProblem: problem)
    }

    static func deployment(_ version: Int, from: Int?, at: Int64 = t0, state: Deployment.State = .running) -> Deployment {
        Deployment(id: 7, app: "web", version: version, fromVersion: from, state: state, message: nil, createdAt: at, finishedAt: nil)
    }

    /// An instance placed at `placed` (seconds after t0), healthy since `healthy` (seconds after t0) or not.
    static func instance(_ id: String, version: Int, on node: String = "n1", state: Allocation.State = .running, placed: Int64 = 0,
                         healthy: Int64? = nil, desired: AllocationRecord.Desired = .run, drainAt: Int64? = nil) -> AllocationRecord {
        AllocationRecord(allocation: Allocation(id: id, app: "web", version: version, nodeID: node, resources: manifest().resources, state: state,
                                                createdAt: Date(timeIntervalSince1970: Double(t0 + placed * second) / 1e9)),
                         port: 8000, restarts: 0, exitCode: nil, updatedAt: t0, desired: desired, healthy: healthy != nil,
                         healthySince: healthy.map { t0 + $0 * second }, drainAt: drainAt.map { t0 + $0 * second }, message: nil)
    }

    static func plan(_ app: AppIntent, _ allocations: [AllocationRecord], nodes: [Node] = [node("n1"), node("n2")], at seconds: Int64)
        -> [ReconcileAction]
    {
        Reconciler.plan(Reconciler.Input(apps: [app], allocations: allocations, nodes: nodes, now: t0 + seconds * second))
    }

    /// The placements of a plan, as (version, node IDs).
    static func placed(_ actions: [ReconcileAction]) -> [(Int, [String])] {
        actions.compactMap { if case .place(let decision, let version) = $0 { (version, decision.placements.map(\.nodeID)) } else { nil } }
    }

    static func drained(_ actions: [ReconcileAction]) -> [String] {
        actions.compactMap { if case .drain(let id, _) = $0 { id } else { nil } }
    }

    static func stopped(_ actions: [ReconcileAction]) -> [String] {
        actions.compactMap { if case .stop(let id, _) = $0 { id } else { nil } }
    }

    @Test func aFirstDeployPlacesEveryInstanceAtOnceSpreadOverTheNodes() {
        let actions = Self.plan(Self.app(version: 1, states: [.stored], deployment: Self.deployment(1, from: nil)), [], at: 1)
        let placements = Self.placed(actions)
        #expect(placements.count == 1)
        #expect(placements.first?.0 == 1)
        #expect(placements.first.map { Set($0.1) } == ["n1", "n2"])
        #expect(Self.drained(actions).isEmpty)
    }

    @Test(arguments: [
        // (failures, seconds since the latest, placed?)
        (0, 0, true), (1, 0, false), (1, 1, true), (2, 1, false), (2, 2, true), (4, 7, false), (4, 8, true),
        (30, 59, false), (30, 60, true),
    ])
    func failedInstancesAreReplacedWithABackoff(failures: Int, since: Int64, placed: Bool) {
        var app = Self.app(version: 1, states: [.deployed])
        app.recentFailures = Array(repeating: Self.t0 + 100 * Self.second - since * Self.second, count: failures)
        let actions = Self.plan(app, [Self.instance("a", version: 1, on: "n1", healthy: 0)], at: 100)
        #expect(Self.placed(actions).isEmpty == !placed, "\(failures) failures, the latest \(since) s ago")
    }

    @Test func scalingUpPlacesTheMissingAndScalingDownDrainsTheNewest() {
        let running = [Self.instance("a", version: 1, on: "n1", healthy: 0), Self.instance("b", version: 1, on: "n2", placed: 5, healthy: 6)]
        let up = Self.plan(Self.app(version: 1, states: [.deployed], instances: 3), running, at: 100)
        #expect(Self.placed(up).map(\.1.count) == [1])
        let down = Self.plan(Self.app(version: 1, states: [.deployed], instances: 1), running, at: 100)
        #expect(Self.placed(down).isEmpty)
        #expect(Self.drained(down) == ["b"])
        // Steady: nothing to do.
        #expect(Self.plan(Self.app(version: 1, states: [.deployed]), running, at: 100).isEmpty)
    }

    /// A drained instance is stopped once it is out of the routes and the proxy has no request in
    /// flight to it; while it has, it keeps running, up to the drain timeout.
    @Test func aDrainedInstanceStopsOnceItsRequestsAreAnsweredOrAtTheTimeout() {
        let app = Self.app(version: 1, states: [.deployed], instances: 1)
        let facts = [Self.instance("keep", version: 1, on: "n1", healthy: 0),
                     Self.instance("gone", version: 1, on: "n2", healthy: 0, desired: .drain, drainAt: 100)]
        func stopped(at seconds: Double, busy: Set<String>) -> [String] {
            let now = Self.t0 + Int64(seconds * Double(Self.second))
            return Self.stopped(Reconciler.plan(Reconciler.Input(apps: [app], allocations: facts, nodes: [Self.node("n1"), Self.node("n2")],
                                                                 now: now, busy: busy)))
        }
        let table: [(seconds: Double, busy: Set<String>, stopped: [String])] = [
            (100.2, [], []),            // just drained: the routes without it may not be everywhere yet
            (100.6, [], ["gone"]),      // out of the routes, nothing in flight: stop
            (100.6, ["gone"], []),      // a request still in flight: keep it running
            (125, ["gone"], []),
            (125, ["keep"], ["gone"]),  // another instance's requests do not hold it
            (130, ["gone"], ["gone"]),  // the drain timeout: stop whatever it still serves
        ]
        for row in table {
            #expect(stopped(at: row.seconds, busy: row.busy) == row.stopped, "at \(row.seconds) s, busy \(row.busy)")
        }
    }

    /// A rolling update from version 1 to 2 with max_parallel 1: each step's facts, and what it does.
    @Test func aRollingUpdateReplacesOneAtATimeGatedOnProvenHealth() {
        let app = Self.app(version: 2, states: [.deployed, .stored], deployment: Self.deployment(2, from: 1, at: Self.t0 + 100 * Self.second))
        let old = [Self.instance("o1", version: 1, on: "n1", healthy: 0), Self.instance("o2", version: 1, on: "n2", healthy: 0)]
        // Step 1: one new instance is placed; nothing old goes yet.
        let step1 = Self.plan(app, old, at: 100)
        #expect(Self.placed(step1).map(\.0) == [2])
        #expect(Self.placed(step1).first?.1.count == 1)
        #expect(Self.drained(step1).isEmpty)
        // Step 2: it is healthy but not yet for min_healthy_time: nothing moves.
        let new1 = Self.instance("n1a", version: 2, on: "n1", placed: 100, healthy: 105)
        let step2 = Self.plan(app, old + [new1], at: 110)
        #expect(Self.placed(step2).isEmpty)
        #expect(Self.drained(step2).isEmpty)
        // Step 3: proven: one old instance is drained (never fewer than 2 healthy) and the next new one placed.
        let step3 = Self.plan(app, old + [new1], at: 115)
        #expect(Self.drained(step3).count == 1)
        #expect(Self.placed(step3).map(\.1.count) == [1])
        // Step 4: the drained one, with no request in flight, is stopped.
        let drainedOld = Self.instance("o1", version: 1, on: "n1", healthy: 0, desired: .drain, drainAt: 115)
        let new2 = Self.instance("n2a", version: 2, on: "n2", placed: 115, healthy: 120)
        let step4 = Self.plan(app, [drainedOld, old[1], new1, new2], at: 118)
        #expect(Self.stopped(step4) == ["o1"])
        #expect(Self.drained(step4).isEmpty)
        // Step 5: both new ones proven: the last old one is drained, and the deployment succeeds.
        let step5 = Self.plan(app, [old[1], new1, new2], at: 131)
        #expect(Self.drained(step5) == ["o2"])
        #expect(step5.contains(.finishDeployment(id: 7, app: "web", state: .succeeded, message: "version 2 runs 2 healthy instances")))
        #expect(step5.contains(.setVersionState(app: "web", version: 2, state: .deployed)))
        #expect(step5.contains(.setVersionState(app: "web", version: 1, state: .superseded)))
    }

    @Test func aVersionNotHealthyByTheDeadlineRevertsToTheLastHealthyOne() {
        let app = Self.app(version: 2, states: [.deployed, .stored], deployment: Self.deployment(2, from: 1, at: Self.t0))
        let facts = [Self.instance("o1", version: 1, on: "n1", healthy: 0), Self.instance("o2", version: 1, on: "n2", healthy: 0),
                     Self.instance("bad", version: 2, on: "n1", state: .starting, placed: 1)]
        // Before the deadline: it waits.
        let waiting = Self.plan(app, facts, at: 59)
        #expect(waiting.isEmpty)
        // At the deadline: version 2 failed, the deployment reverted, the bad instance drained, the old ones kept.
        let actions = Self.plan(app, facts, at: 60)
        #expect(actions.contains(.setVersionState(app: "web", version: 2, state: .failed)))
        #expect(actions.contains(.revert(app: "web", to: 1)))
        #expect(actions.contains {
            if case .finishDeployment(7, "web", .reverted, let message) = $0 { message.contains("reverted to version 1") } else { false }
        })
        #expect(Self.drained(actions) == ["bad"])
        #expect(Self.placed(actions).isEmpty)
    }

    @Test func withoutAutoRevertAFailedDeploymentStopsWhereItIs() {
        let manifest = Self.manifest(autoRevert: false)
        let facts = [Self.instance("o1", version: 1, on: "n1", healthy: 0), Self.instance("o2", version: 1, on: "n2", healthy: 0),
                     Self.instance("bad", version: 2, on: "n1", state: .starting, placed: 1)]
        let failing = Self.plan(Self.app(version: 2, states: [.deployed, .stored], deployment: Self.deployment(2, from: 1), manifest: manifest),
                                facts, at: 61)
        #expect(failing.contains {
            if case .finishDeployment(7, "web", .failed, let message) = $0 { message.contains("2 of 2 instances were not healthy for 10 s within 1 min") } else { false }
        })
        #expect(!failing.contains(.revert(app: "web", to: 1)))
        #expect(Self.placed(failing).isEmpty)
        #expect(Self.drained(failing).isEmpty)
        // On the next pass, the failed deployment still holds the rollout.
        let after = Self.plan(Self.app(version: 2, states: [.deployed, .failed], deployment: Self.deployment(2, from: 1, state: .failed),
                                       manifest: manifest), facts, at: 200)
        #expect(after.isEmpty)
    }

    @Test func whenNothingFitsTheExplanationIsRecordedOnceAndClearedWhenItFits() {
        let tiny = Resources(memoryBytes: 64 << 20, cpuMillis: 1000, diskBytes: 1 << 30)
        let nodes = [Self.node("n1", capacity: tiny), Self.node("n2", state: .draining)]
        let actions = Self.plan(Self.app(version: 1, states: [.stored], deployment: Self.deployment(1, from: nil)), [], nodes: nodes, at: 1)
        #expect(Self.placed(actions).isEmpty)
        let problems = actions.compactMap { if case .placementProblem("web", let message?) = $0 { message } else { nil } }
        #expect(problems.count == 1)
        let expected = problems.first ?? ""
        #expect(expected.hasPrefix("placed 0 of 2 instances of web; 2 did not fit: 2 nodes: "))
        #expect(expected.contains("1 lacks 128 MiB free memory") && expected.contains("1 is draining"))
        // Recorded already: not again.
        let again = Self.plan(Self.app(version: 1, states: [.stored], deployment: Self.deployment(1, from: nil), problem: expected), [],
                              nodes: nodes, at: 2)
        #expect(!again.contains { if case .placementProblem = $0 { true } else { false } })
        // Room again: placed, and the explanation cleared.
        let fits = Self.plan(Self.app(version: 1, states: [.stored], deployment: Self.deployment(1, from: nil), problem: expected), [], at: 3)
        #expect(fits.contains(.placementProblem(app: "web", message: nil)))
        #expect(Self.placed(fits).first?.1.count == 2)
    }

    @Test func aStoppedAppIsDrainedThenStopped() {
        let facts = [Self.instance("a", version: 1, on: "n1", healthy: 0), Self.instance("b", version: 1, on: "n2", state: .starting)]
        let actions = Self.plan(Self.app(version: 1, states: [.deployed], stopped: true), facts, at: 10)
        #expect(Set(Self.drained(actions)) == ["a", "b"])
        #expect(Self.placed(actions).isEmpty)
        let later = [Self.instance("a", version: 1, on: "n1", healthy: 0, desired: .drain, drainAt: 10),
                     Self.instance("b", version: 1, on: "n2", state: .starting, desired: .drain, drainAt: 10)]
        #expect(Self.plan(Self.app(version: 1, states: [.deployed], stopped: true), later, at: 10).isEmpty)
        #expect(Set(Self.stopped(Self.plan(Self.app(version: 1, states: [.deployed], stopped: true), later, at: 12))) == ["a", "b"])
    }

    /// Two equal nodes: the one whose agent caches the bundle's chunks gets the instance.
    @Test func aNodeThatCachesTheBundleIsPreferred() {
        let chunks: Set<ChunkID> = [ChunkID(bytes: Array(repeating: 1, count: 32)), ChunkID(bytes: Array(repeating: 2, count: 32))]
        var app = Self.app(version: 1, states: [.stored], deployment: Self.deployment(1, from: nil), manifest: Self.manifest(instances: 1))
        app.versions[0].chunks = chunks
        for warm in ["n1", "n2"] {
            let input = Reconciler.Input(apps: [app], allocations: [], nodes: [Self.node("n1"), Self.node("n2")], now: Self.t0,
                                         cachedChunks: [warm: chunks])
            #expect(Self.placed(Reconciler.plan(input)).first?.1 == [warm])
        }
    }

    @Test func anAppBeingRemovedIsDrainedThenForgotten() {
        var app = Self.app(version: 1, states: [.deployed], stopped: true)
        app.removing = true
        let facts = [Self.instance("a", version: 1, on: "n1", healthy: 0)]
        #expect(Self.drained(Self.plan(app, facts, at: 10)) == ["a"])
        #expect(Self.plan(app, [], at: 20) == [.forget(app: "web")])
    }

    @Test func aRollbackRunsLikeADeployOfTheOlderVersion() {
        // Version 3 runs; the operator rolled back to 1 (a deployment of 1 from 3): a new instance of 1 first.
        let app = Self.app(version: 1, states: [.superseded, .superseded, .deployed], deployment: Self.deployment(1, from: 3))
        let facts = [Self.instance("c1", version: 3, on: "n1", healthy: 0), Self.instance("c2", version: 3, on: "n2", healthy: 0)]
        let actions = Self.plan(app, facts, at: 5)
        #expect(Self.placed(actions).map(\.0) == [1])
        #expect(Self.drained(actions).isEmpty)
    }
}
