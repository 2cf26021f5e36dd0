/// One instance placed: the `instance`-th of the request (from 0) goes to node `nodeID`.
public struct Placement: Sendable, Hashable {
    public var instance: Int
    public var nodeID: String

    public init(instance: Int, nodeID: String) {
        self.instance = instance
        self.nodeID = nodeID
    }
}

/// What `Scheduler.place` decided: the instances it placed, in order, and why the rest did not fit.
public struct PlacementDecision: Sendable, Hashable, CustomStringConvertible {
    public var app: String
    /// How many instances the request asked for.
    public var requested: Int
    public var placements: [Placement]
    /// Why the first instance left over fit on no node; nil when every instance was placed. The
    /// instances after it were not tried: nothing changed between them, so they would fail alike.
    public var explanation: PlacementExplanation?

    public init(app: String, requested: Int, placements: [Placement], explanation: PlacementExplanation?) {
        self.app = app
        self.requested = requested
        self.placements = placements
        self.explanation = explanation
    }

    /// How many instances were not placed.
    public var unplaced: Int { requested - placements.count }

    /// "placed 3 of 3 instances of web", or "placed 1 of 3 instances of web; 2 did not fit: 3 nodes:
    /// 2 lack 512 MiB free memory, 1 has label region=us (needs region=eu)".
    public var description: String {
        let placed = "placed \(placements.count) of \(requested) instance\(requested == 1 ? "" : "s") of \(app)"
        guard let explanation, unplaced > 0 else { return placed }
        return placed + "; \(unplaced) did not fit: \(explanation)"
    }
}

/// Why an instance fit on no node: every node given, counted by the first check it failed.
public struct PlacementExplanation: Sendable, Hashable, CustomStringConvertible {
    /// A number of nodes that failed the same check in the same way.
    public struct Reason: Sendable, Hashable, CustomStringConvertible {
        public var rejection: Rejection
        public var nodes: Int

        public init(rejection: Rejection, nodes: Int) {
            self.rejection = rejection
            self.nodes = nodes
        }

        /// "2 lack 512 MiB free memory".
        public var description: String { rejection.phrase(nodes: nodes) }
    }

    /// How many nodes there were.
    public var nodes: Int
    /// Most nodes first; equal counts in the order the checks run, then by text.
    public var reasons: [Reason]

    /// Counts `rejections` (one per node) into reasons, in the order `reasons` documents.
    public init(rejections: [Rejection]) {
        var counts: [Rejection: Int] = [:]
        for rejection in rejections { counts[rejection, default: 0] += 1 }
        nodes = rejections.count
        reasons = counts.map { Reason(rejection: $0.key, nodes: $0.value) }.sorted {
            ($1.nodes, $0.rejection.check, $0.description) < ($0.nodes, $1.rejection.check, $1.description)
        }
    }

    /// One line per reason, for a list: ["2 lack 512 MiB free memory", "1 is draining"].
    public var lines: [String] { reasons.map(\.description) }

    /// "3 nodes: 2 lack 512 MiB free memory, 1 has label region=us (needs region=eu)"; "no nodes".
    public var description: String {
        nodes == 0 ? "no nodes" : "\(nodes) node\(nodes == 1 ? "" : "s"): " + lines.joined(separator: ", ")
    }
}

/// Why one node cannot take an instance: the first of the scheduler's checks it fails, in the order
/// they run (ready, constraints, distinct nodes, memory, CPU, disk).
public enum Rejection: Sendable, Hashable {
    /// The node is not ready; the word says what it is instead ("draining").
    case notReady(String)
    /// The node's label does not meet the constraint: `actual` is its value, nil when it has none.
    case unmetConstraint(Constraint, actual: String?)
    /// Distinct nodes were asked for and the node already runs a live instance of the app.
    case alreadyRunsApp(String)
    /// Less free memory than an instance asks for (the amount asked, in bytes).
    case lacksMemory(Int64)
    /// Less free CPU than an instance asks for (thousandths of a core).
    case lacksCPU(Int)
    /// Less free disk than an instance asks for (bytes).
    case lacksDisk(Int64)

    /// The position of the check in the order they run.
    var check: Int {
        switch self {
        case .notReady: 0
        case .unmetConstraint: 1
        case .alreadyRunsApp: 2
        case .lacksMemory: 3
        case .lacksCPU: 4
        case .lacksDisk: 5
        }
    }

    /// The reason for `nodes` nodes, as a phrase that starts with the count: "1 is draining",
    /// "2 lack 512 MiB free memory", "1 has no label region (needs region=eu)".
    public func phrase(nodes: Int) -> String {
        let one = nodes == 1
        let verb: String
        switch self {
        case .notReady(let state): verb = (one ? "is " : "are ") + state
        case .unmetConstraint(let constraint, let actual?):
            verb = (one ? "has" : "have") + " label \(constraint.label)=\(actual) (needs \(constraint))"
        case .unmetConstraint(let constraint, nil):
            verb = (one ? "has" : "have") + " no label \(constraint.label) (needs \(constraint))"
        case .alreadyRunsApp(let app):
            verb = (one ? "already runs an instance" : "already run instances") + " of \(app) (distinct nodes)"
        case .lacksMemory(let bytes): verb = (one ? "lacks " : "lack ") + HumanUnits.bytes(bytes) + " free memory"
        case .lacksCPU(let millis): verb = (one ? "lacks " : "lack ") + HumanUnits.cores(millis: millis) + " of free CPU"
        case .lacksDisk(let bytes): verb = (one ? "lacks " : "lack ") + HumanUnits.bytes(bytes) + " free disk"
        }
        return "\(nodes) \(verb)"
    }
}
