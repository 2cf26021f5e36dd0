/// Where an app's instances go: filter -> score -> pick, as a pure function of the nodes, the
/// allocations already made and the request, so the controller can run it anywhere (a deploy, a
/// scale, a node lost) and tests can table it.
///
/// Filter, in this order; a node's first failed check is the reason it is counted under when nothing
/// fits (static facts before passing ones, so that the explanation says what freeing room would not
/// fix):
/// 1. the node is ready;
/// 2. its labels meet every constraint;
/// 3. with distinct nodes, it runs no live instance of the app (those already there and those
///    placed earlier in the same call);
/// 4. it has the memory, CPU and disk an instance asks for free (see `free room` below).
///
/// Score:
/// - spread (the default): fewest live instances of the app, then the most free room after placing;
/// - binpack: the least free room after placing;
/// - either way, plus `localityWeight` times the share of the bundle's chunks the node caches.
/// Free room is the mean, over memory, CPU and disk (those the node has any of), of what would be
/// left free as a share of capacity, so it runs from 0 to 1.
///
/// Pick: the highest score; equal scores go to the smallest node ID. Instances are placed one by one,
/// and each placement is counted (its resources, its instance, its node now caching the bundle)
/// before the next is scored. The nodes are sorted by ID first, and allocations only ever summed, so
/// the same nodes and allocations in any order give the same decision.
///
/// Free room on a node is its capacity minus the larger, per resource, of what its agent reports in
/// use and what the allocations holding resources there reserve; then minus what this call placed.
/// Neither number alone is safe: the report lags (an instance placed a second ago uses nothing yet,
/// and its reservation is a promise), and reservations miss what an instance uses beyond its share
/// and what the system itself uses. Taking the larger never counts a running instance twice. What it
/// misses is the system's own use on top of reservations that have not started yet: agents report
/// within seconds, so that gap closes at the next heartbeat.
public enum Scheduler {
    /// What caching all of a bundle's chunks adds to a node's score, where free room runs from 0 to 1:
    /// among nodes within 10 points of free room of each other, the one that need not fetch the bundle
    /// wins; a node with much more room still wins, and under spread a node with fewer instances of
    /// the app always does.
    public static let localityWeight = 0.1

    /// Places `request.instances` instances of `request.app` on `nodes`, given the `allocations`
    /// already made (of every app; those on nodes not listed are ignored). See `Scheduler` for the
    /// rules. Stops at the first instance that fits nowhere and explains why.
    public static func place(_ request: PlacementRequest, nodes: [SchedulerNode], allocations: [Allocation])
        -> PlacementDecision
    {
        let byNode = Dictionary(grouping: allocations, by: \.nodeID)
        var views = nodes.sorted { $0.id < $1.id }.map { NodeView($0, allocations: byNode[$0.id] ?? [], request: request) }
        var placements: [Placement] = []
        for instance in 0..<max(0, request.instances) {
            var best: (index: Int, score: Score)?
            var rejections: [Rejection] = []
            for index in views.indices {
                if let rejection = views[index].rejection(for: request) {
                    rejections.append(rejection)
                    continue
                }
                let score = views[index].score(for: request)
                if best.map({ score > $0.score }) ?? true {
                    best = (index, score)  // strictly greater: a tie keeps the smaller ID, seen first
                }
            }
            guard let best else {
                return PlacementDecision(app: request.app, requested: request.instances, placements: placements,
                                         explanation: PlacementExplanation(rejections: rejections))
            }
            views[best.index].place(request)
            placements.append(Placement(instance: instance, nodeID: views[best.index].node.id))
        }
        return PlacementDecision(app: request.app, requested: request.instances, placements: placements, explanation: nil)
    }

    /// How good a node is for the next instance; higher is better, compared in order.
    struct Score: Comparable {
        /// Spread: minus the app's live instances on the node. Binpack: 0.
        var primary: Int
        /// Free room after placing (spread) or used room after placing (binpack), plus locality.
        var secondary: Double

        static func < (a: Score, b: Score) -> Bool { (a.primary, a.secondary) < (b.primary, b.secondary) }
    }

    /// The scheduler's running view of one node during a call.
    struct NodeView {
        let node: SchedulerNode
        /// Capacity minus the larger of reported use and reservations (CPU: reservations only), minus
        /// this call's placements.
        var free: Resources
        /// Live instances of the request's app.
        var instances: Int
        /// The share of the request's bundle chunks the node caches, 0 to 1.
        var locality: Double

        init(_ node: SchedulerNode, allocations: [Allocation], request: PlacementRequest) {
            self.node = node
            let reserved = allocations.filter(\.state.holdsResources).reduce(Resources.zero) { $0 + $1.resources }
            // Memory and disk: the larger of reported use and reservations (reports lag; reservations
            // miss overuse). CPU is compressible (a busy machine slows instances, never kills them) and
            // what a node reports of it is a load average that swings with everything else the machine
            // runs, so CPU counts reservations only.
            var taken = Resources.largest(node.used, reserved)
            taken.cpuMillis = reserved.cpuMillis
            free = node.capacity - taken
            instances = allocations.count(where: { $0.app == request.app && $0.state.isLive })
            locality = request.bundleChunks.isEmpty ? 0
                : Double(request.bundleChunks.intersection(node.cachedChunks).count) / Double(request.bundleChunks.count)
        }

        /// The first check the node fails for one more instance, or nil when it can take it.
        func rejection(for request: PlacementRequest) -> Rejection? {
            if case .notReady(let state) = node.readiness { return .notReady(state) }
            if let unmet = request.constraints.first(where: { !$0.isSatisfied(by: node.labels) }) {
                return .unmetConstraint(unmet, actual: node.labels[unmet.label])
            }
            if request.distinctNodes && instances > 0 { return .alreadyRunsApp(request.app) }
            // An amount not asked for is never short, even where the node is overcommitted.
            let need = request.resources
            if need.memoryBytes > 0 && need.memoryBytes > free.memoryBytes { return .lacksMemory(need.memoryBytes) }
            if need.cpuMillis > 0 && need.cpuMillis > free.cpuMillis { return .lacksCPU(need.cpuMillis) }
            if need.diskBytes > 0 && need.diskBytes > free.diskBytes { return .lacksDisk(need.diskBytes) }
            return nil
        }

        func score(for request: PlacementRequest) -> Score {
            let room = Self.freeShare(of: free - request.resources, in: node.capacity)
            let bonus = Scheduler.localityWeight * locality
            switch request.strategy {
            case .spread: return Score(primary: -instances, secondary: room + bonus)
            case .binpack: return Score(primary: 0, secondary: (1 - room) + bonus)
            }
        }

        /// Counts one more instance of the request here.
        mutating func place(_ request: PlacementRequest) {
            free = free - request.resources
            instances += 1
            locality = 1  // the agent fetches the bundle to run it
        }

        /// The mean share of capacity left free, over the resources the node has any of.
        static func freeShare(of free: Resources, in capacity: Resources) -> Double {
            let pairs = [(Double(free.memoryBytes), Double(capacity.memoryBytes)),
                         (Double(free.cpuMillis), Double(capacity.cpuMillis)),
                         (Double(free.diskBytes), Double(capacity.diskBytes))].filter { $0.1 > 0 }
            guard !pairs.isEmpty else { return 0 }
            return pairs.map { min(max($0.0 / $0.1, 0), 1) }.reduce(0, +) / Double(pairs.count)
        }
    }
}

extension Resources {
    /// Per resource, the larger of the two amounts.
    static func largest(_ a: Resources, _ b: Resources) -> Resources {
        Resources(memoryBytes: max(a.memoryBytes, b.memoryBytes), cpuMillis: max(a.cpuMillis, b.cpuMillis),
                  diskBytes: max(a.diskBytes, b.diskBytes))
    }
}
