import ChunkStore
import Compute
import Foundation
import Testing

private let MiB: Int64 = 1 << 20
private let GiB: Int64 = 1 << 30
private let small = Resources(memoryBytes: 512 * MiB, cpuMillis: 500)

/// A node with 4 GiB, 4 cores and 20 GiB of disk unless told otherwise.
private func node(_ id: String, memory: Int64 = 4 * GiB, cpu: Int = 4000, used: Resources = .zero,
                  labels: [String: String] = [:], readiness: SchedulerNode.Readiness = .ready,
                  cached: Set<ChunkID> = []) -> SchedulerNode {
    SchedulerNode(id: id, readiness: readiness, labels: labels,
                  capacity: Resources(memoryBytes: memory, cpuMillis: cpu, diskBytes: 20 * GiB), used: used,
                  cachedChunks: cached)
}

private func alloc(_ id: String, _ app: String, on nodeID: String, memory: Int64 = 512 * MiB, cpu: Int = 500,
                   state: Allocation.State = .running, at second: Double = 0) -> Allocation {
    Allocation(id: id, app: app, version: 1, nodeID: nodeID, resources: Resources(memoryBytes: memory, cpuMillis: cpu),
               state: state, createdAt: Date(timeIntervalSince1970: second))
}

private func chunk(_ n: UInt8) -> ChunkID { ChunkID(bytes: [UInt8](repeating: n, count: ChunkID.byteCount)) }
private let bundle: Set<ChunkID> = [chunk(1), chunk(2), chunk(3), chunk(4)]

/// A placement to check: the nodes chosen, in order, and the explanation (nil: everything fit).
struct PlacementCase: Sendable, CustomTestStringConvertible {
    let name: String
    let nodes: [SchedulerNode]
    var allocations: [Allocation] = []
    let request: PlacementRequest
    let placed: [String]
    var explanation: String? = nil
    var testDescription: String { name }
}

private func web(_ instances: Int, _ resources: Resources = small, constraints: [Constraint] = [], distinct: Bool = false,
                 strategy: PlacementRequest.Strategy = .spread, chunks: Set<ChunkID> = []) -> PlacementRequest {
    PlacementRequest(app: "web", instances: instances, resources: resources, constraints: constraints,
                     distinctNodes: distinct, strategy: strategy, bundleChunks: chunks)
}

@Suite struct SchedulerTests {
    static let strategies: [PlacementCase] = [
        PlacementCase(name: "spread takes the node with the most free room",
                      nodes: [node("a"), node("b"), node("c")],
                      allocations: [alloc("x1", "db", on: "a", memory: GiB), alloc("x2", "db", on: "c", memory: 2 * GiB)],
                      request: web(1), placed: ["b"]),
        PlacementCase(name: "binpack takes the node with the least room left",
                      nodes: [node("a"), node("b"), node("c")],
                      allocations: [alloc("x1", "db", on: "a", memory: GiB), alloc("x2", "db", on: "c", memory: 2 * GiB)],
                      request: web(1, strategy: .binpack), placed: ["c"]),
        PlacementCase(name: "spread puts one instance on each equal node, then starts again",
                      nodes: [node("a"), node("b"), node("c")], request: web(4), placed: ["a", "b", "c", "a"]),
        PlacementCase(name: "binpack fills one node first",
                      nodes: [node("a", memory: GiB), node("b", memory: GiB)], request: web(3, strategy: .binpack),
                      placed: ["a", "a", "b"]),
        PlacementCase(name: "spread counts the app's instances already placed before free room",
                      nodes: [node("a"), node("b"), node("c", memory: 2 * GiB)],
                      allocations: [alloc("w1", "web", on: "a"), alloc("w2", "web", on: "b")],
                      request: web(1), placed: ["c"]),
        PlacementCase(name: "instances that stopped or failed no longer count for spread",
                      nodes: [node("a", memory: GiB), node("b")],
                      allocations: [alloc("w1", "web", on: "a", state: .stopped), alloc("w2", "web", on: "a", state: .failed),
                                    alloc("w3", "web", on: "b")],
                      request: web(1), placed: ["a"]),
    ]

    @Test(arguments: strategies) func spreadAndBinpack(_ c: PlacementCase) { check(c) }

    static let resources: [PlacementCase] = [
        PlacementCase(name: "room runs out in the middle of the call",
                      nodes: [node("a", memory: GiB), node("b", memory: GiB)], request: web(5),
                      placed: ["a", "b", "a", "b"], explanation: "2 nodes: 2 lack 512 MiB free memory"),
        PlacementCase(name: "reported use counts when it is above the reservations",
                      nodes: [node("a", memory: GiB, used: Resources(memoryBytes: 600 * MiB)), node("b", memory: GiB)],
                      allocations: [alloc("x", "db", on: "b", memory: 100 * MiB)],
                      request: web(2), placed: ["b"], explanation: "2 nodes: 2 lack 512 MiB free memory"),
        PlacementCase(name: "reservations count when they are above reported use",
                      nodes: [node("a", memory: GiB, used: Resources(memoryBytes: 100 * MiB)), node("b", memory: GiB)],
                      allocations: [alloc("x", "db", on: "a", memory: 600 * MiB)],
                      request: web(1, strategy: .binpack), placed: ["b"]),
        PlacementCase(name: "a stopping instance holds its room, a stopped one does not",
                      nodes: [node("a", memory: GiB), node("b", memory: GiB)],
                      allocations: [alloc("x", "db", on: "a", memory: 768 * MiB, state: .stopping),
                                    alloc("y", "db", on: "b", memory: 768 * MiB, state: .stopped)],
                      request: web(3), placed: ["b", "b"], explanation: "2 nodes: 2 lack 512 MiB free memory"),
        PlacementCase(name: "CPU and disk are checked as well as memory",
                      nodes: [node("a", cpu: 1000), node("b", cpu: 8000)],
                      request: web(3, Resources(memoryBytes: 64 * MiB, cpuMillis: 1500, diskBytes: 8 * GiB)),
                      placed: ["b", "b"], explanation: "2 nodes: 1 lacks 1.5 cores of free CPU, 1 lacks 8 GiB free disk"),
        PlacementCase(name: "a node overcommitted in what the app does not ask for still takes it",
                      nodes: [node("a", cpu: 1000, used: Resources(cpuMillis: 1800))],
                      request: web(1, Resources(memoryBytes: 64 * MiB)), placed: ["a"]),
        PlacementCase(name: "a busy node's load does not count against CPU; reservations do",
                      nodes: [node("a", cpu: 1000, used: Resources(cpuMillis: 2700)), node("b", cpu: 1000)],
                      allocations: [alloc("x", "db", on: "b", memory: 64 * MiB, cpu: 800)],
                      request: web(2, Resources(memoryBytes: 64 * MiB, cpuMillis: 500)), placed: ["a", "a"],
                      explanation: nil),
    ]

    @Test(arguments: resources) func freeResources(_ c: PlacementCase) { check(c) }

    static let filters: [PlacementCase] = [
        PlacementCase(name: "a constraint with = takes only matching nodes",
                      nodes: [node("a", labels: ["region": "us"]), node("b", labels: ["region": "eu"]), node("c")],
                      request: web(2, constraints: [Constraint(label: "region", value: "eu")]), placed: ["b", "b"]),
        PlacementCase(name: "a constraint with != takes nodes with another value or none",
                      nodes: [node("a", labels: ["disk": "hdd"]), node("b", labels: ["disk": "ssd"]), node("c")],
                      request: web(2, constraints: [Constraint(label: "disk", op: .notEquals, value: "hdd")]),
                      placed: ["b", "c"]),
        PlacementCase(name: "every constraint must hold",
                      nodes: [node("a", labels: ["region": "eu", "disk": "hdd"]), node("b", labels: ["region": "eu", "disk": "ssd"])],
                      request: web(1, constraints: [Constraint(label: "region", value: "eu"),
                                                    Constraint(label: "disk", op: .notEquals, value: "hdd")]),
                      placed: ["b"]),
        PlacementCase(name: "distinct nodes counts instances already there and those placed in the call",
                      nodes: [node("a"), node("b"), node("c")], allocations: [alloc("w1", "web", on: "a")],
                      request: web(3, distinct: true), placed: ["b", "c"],
                      explanation: "3 nodes: 3 already run instances of web (distinct nodes)"),
        PlacementCase(name: "distinct nodes ignores a stopping instance and other apps",
                      nodes: [node("a"), node("b")],
                      allocations: [alloc("w1", "web", on: "a", state: .stopping), alloc("d1", "db", on: "b")],
                      request: web(2, distinct: true), placed: ["a", "b"]),
        PlacementCase(name: "nodes that are not ready are skipped",
                      nodes: [node("a", readiness: .notReady("draining")), node("b", readiness: .notReady("down")), node("c")],
                      request: web(2), placed: ["c", "c"]),
        PlacementCase(name: "no ready node at all",
                      nodes: [node("a", readiness: .notReady("draining")), node("b", readiness: .notReady("down"))],
                      request: web(1), placed: [], explanation: "2 nodes: 1 is down, 1 is draining"),
    ]

    @Test(arguments: filters) func constraintsDistinctAndReadiness(_ c: PlacementCase) { check(c) }

    static let locality: [PlacementCase] = [
        PlacementCase(name: "caching the bundle breaks a tie, over the smaller ID",
                      nodes: [node("a"), node("b", cached: bundle)], request: web(1, chunks: bundle), placed: ["b"]),
        PlacementCase(name: "caching the bundle wins a near tie (a has 3 points more room)",
                      nodes: [node("a"), node("b", used: Resources(memoryBytes: 400 * MiB), cached: bundle)],
                      request: web(1, chunks: bundle), placed: ["b"]),
        PlacementCase(name: "caching does not beat much more free room",
                      nodes: [node("a"), node("b", used: Resources(memoryBytes: 3 * GiB, cpuMillis: 3000), cached: bundle)],
                      request: web(1, chunks: bundle), placed: ["a"]),
        PlacementCase(name: "caching does not override spread of the same app",
                      nodes: [node("a"), node("b", cached: bundle)], allocations: [alloc("w1", "web", on: "b")],
                      request: web(1, chunks: bundle), placed: ["a"]),
        PlacementCase(name: "more of the bundle cached is better",
                      nodes: [node("a", cached: [chunk(1), chunk(2)]), node("b", cached: [chunk(1), chunk(2), chunk(3)]),
                              node("c", cached: [chunk(9)])],
                      request: web(1, chunks: bundle), placed: ["b"]),
        PlacementCase(name: "binpack breaks ties by locality too",
                      nodes: [node("a"), node("b", cached: bundle)], request: web(2, strategy: .binpack, chunks: bundle),
                      placed: ["b", "b"]),
        PlacementCase(name: "a node that took an instance counts as caching the bundle for the next one",
                      nodes: [node("a"), node("c", memory: 5 * GiB)], allocations: [alloc("w1", "web", on: "c")],
                      request: web(2, chunks: bundle), placed: ["a", "a"]),
    ]

    @Test(arguments: locality) func localityBreaksTies(_ c: PlacementCase) { check(c) }

    static let explanations: [PlacementCase] = [
        PlacementCase(name: "memory and a label",
                      nodes: [node("a", memory: 256 * MiB, labels: ["region": "eu"]),
                              node("b", memory: 256 * MiB, labels: ["region": "eu"]), node("c", labels: ["region": "us"])],
                      request: web(1, constraints: [Constraint(label: "region", value: "eu")]), placed: [],
                      explanation: "3 nodes: 2 lack 512 MiB free memory, 1 has label region=us (needs region=eu)"),
        PlacementCase(name: "a missing label, a != constraint, the first failing check counts",
                      nodes: [node("a"), node("b", labels: ["region": "eu", "disk": "hdd"]),
                              node("c", labels: ["region": "us"], readiness: .notReady("draining")),
                              node("d", memory: GiB, labels: ["region": "eu", "disk": "hdd"])],
                      request: web(1, constraints: [Constraint(label: "region", value: "eu"),
                                                    Constraint(label: "disk", op: .notEquals, value: "hdd")]),
                      placed: [],
                      explanation: "4 nodes: 2 have label disk=hdd (needs disk!=hdd), 1 is draining, 1 has no label region (needs region=eu)"),
        PlacementCase(name: "one node, big sizes",
                      nodes: [node("a", memory: 2 * GiB)], request: web(1, Resources(memoryBytes: 3 * GiB)),
                      placed: [], explanation: "1 node: 1 lacks 3 GiB free memory"),
        PlacementCase(name: "one core",
                      nodes: [node("a", cpu: 500)], request: web(1, Resources(cpuMillis: 1000)),
                      placed: [], explanation: "1 node: 1 lacks 1 core of free CPU"),
        PlacementCase(name: "no nodes at all", nodes: [], request: web(2), placed: [], explanation: "no nodes"),
    ]

    @Test(arguments: explanations) func explanationStrings(_ c: PlacementCase) { check(c) }

    @Test func decisionDescription() {
        let partial = Scheduler.place(web(3), nodes: [node("a", memory: GiB), node("b", memory: 256 * MiB, labels: ["region": "us"])],
                                      allocations: [alloc("x", "db", on: "a")])
        #expect(partial.unplaced == 2)
        #expect(partial.placements == [Placement(instance: 0, nodeID: "a")])
        #expect(partial.explanation?.lines == ["2 lack 512 MiB free memory"])
        #expect("\(partial)" == "placed 1 of 3 instances of web; 2 did not fit: 2 nodes: 2 lack 512 MiB free memory")
        let full = Scheduler.place(web(1), nodes: [node("a")], allocations: [])
        #expect("\(full)" == "placed 1 of 1 instance of web")
        #expect(full.explanation == nil && full.placements == [Placement(instance: 0, nodeID: "a")])
        #expect(Scheduler.place(web(0), nodes: [], allocations: []).placements.isEmpty)
    }

    @Test func sameDecisionWhateverTheInputOrder() {
        let nodes = [node("d", memory: 2 * GiB), node("a"), node("c", cached: [chunk(1)]), node("b", labels: ["region": "us"])]
        let allocations = [alloc("w1", "web", on: "a"), alloc("x", "db", on: "d", memory: GiB), alloc("w2", "web", on: "c")]
        let request = web(6, chunks: bundle)
        let expected = Scheduler.place(request, nodes: nodes, allocations: allocations)
        #expect(expected.placements.count == 6)
        for order in permutations(of: nodes.indices.map { $0 }) {
            let decision = Scheduler.place(request, nodes: order.map { nodes[$0] }, allocations: allocations.reversed())
            #expect(decision == expected, "nodes in order \(order.map { nodes[$0].id })")
        }
        let full = web(40)
        let explained = Scheduler.place(full, nodes: nodes, allocations: allocations)
        #expect(explained.explanation != nil)
        #expect(Scheduler.place(full, nodes: nodes.reversed(), allocations: allocations.reversed()) == explained)
    }

    static let scaleDowns: [(name: String, keep: Int, stopped: [String])] = [
        ("nothing to stop", 6, []),
        ("the newest on the node with the most", 5, ["a3"]),
        ("then the newest among the nodes now equal", 4, ["a3", "c2"]),
        ("down to one", 1, ["a3", "c2", "a2", "c1", "b1"]),
        ("down to none", 0, ["a3", "c2", "a2", "c1", "b1", "a1"]),
    ]

    @Test(arguments: scaleDowns) func scaleDown(_ c: (name: String, keep: Int, stopped: [String])) {
        let nodes = [node("a"), node("b"), node("c")]
        let allocations = [alloc("a1", "web", on: "a", at: 1), alloc("a2", "web", on: "a", at: 5), alloc("a3", "web", on: "a", at: 6),
                           alloc("b1", "web", on: "b", at: 2), alloc("c1", "web", on: "c", at: 3), alloc("c2", "web", on: "c", at: 7),
                           alloc("c3", "web", on: "c", state: .stopping, at: 9), alloc("x", "db", on: "a", at: 10)]
        #expect(Scheduler.scaleDown(app: "web", keep: c.keep, nodes: nodes, allocations: allocations).map(\.id) == c.stopped, "\(c.name)")
        #expect(Scheduler.scaleDown(app: "web", keep: c.keep, nodes: nodes.reversed(), allocations: allocations.reversed()).map(\.id)
            == c.stopped, "\(c.name), input reversed")
    }

    @Test func scaleDownStopsInstancesOnNodesThatAreNotReadyFirst() {
        let nodes = [node("a"), node("b", readiness: .notReady("draining"))]
        let allocations = [alloc("a1", "web", on: "a", at: 1), alloc("a2", "web", on: "a", at: 2),
                           alloc("b1", "web", on: "b", at: 0), alloc("g1", "web", on: "gone", at: 0)]
        #expect(Scheduler.scaleDown(app: "web", keep: 2, nodes: nodes, allocations: allocations).map(\.id) == ["b1", "g1"])
    }

    static let units: [(Int64, String)] = [
        (100, "100 B"), (1536, "1.5 KiB"), (512 * MiB, "512 MiB"), (3 * GiB / 2, "1.5 GiB"), (GiB - 1, "1 GiB"),
        (1023 * MiB, "1023 MiB"), (128 * MiB + 100 * 1024, "128.1 MiB"), (5 << 40, "5 TiB"), (0, "0 B"),
    ]

    @Test(arguments: units) func bytesInHumanUnits(_ c: (Int64, String)) { #expect(HumanUnits.bytes(c.0) == c.1) }

    @Test func coresInHumanUnits() {
        #expect([500, 1000, 1250, 2000, 1, 0].map { HumanUnits.cores(millis: $0) }
            == ["0.5 cores", "1 core", "1.25 cores", "2 cores", "0.001 cores", "0 cores"])
    }

    private func check(_ c: PlacementCase, sourceLocation: SourceLocation = #_sourceLocation) {
        let decision = Scheduler.place(c.request, nodes: c.nodes, allocations: c.allocations)
        #expect(decision.placements.map(\.nodeID) == c.placed, sourceLocation: sourceLocation)
        #expect(decision.placements.map(\.instance) == Array(c.placed.indices), sourceLocation: sourceLocation)
        #expect(decision.explanation?.description == c.explanation, sourceLocation: sourceLocation)
        #expect(decision.unplaced == c.request.instances - c.placed.count, sourceLocation: sourceLocation)
    }
}

/// Every order of `items` (Heap's algorithm).
private func permutations<T>(of items: [T]) -> [[T]] {
    var items = items
    var result: [[T]] = []
    func generate(_ k: Int) {
        if k <= 1 { result.append(items); return }
        for i in 0..<k {
            generate(k - 1)
            items.swapAt(k % 2 == 0 ? i : 0, k - 1)
        }
    }
    generate(items.count)
    return result
}
