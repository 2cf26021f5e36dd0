import ChunkStore

/// What to place: some instances of one app, each needing the same resources.
public struct PlacementRequest: Sendable, Hashable {
    /// How to choose among the nodes that fit.
    public enum Strategy: String, Sendable, Hashable, Codable {
        /// Fewest instances of this app first, then the most free room: a node lost takes the fewest
        /// instances with it. The default.
        case spread
        /// The least free room left after placing: fills nodes one at a time and keeps others empty
        /// for big instances.
        case binpack
    }

    public var app: String
    /// How many instances to place in this call.
    public var instances: Int
    /// What each instance reserves.
    public var resources: Resources
    /// Label conditions every node chosen must meet.
    public var constraints: [Constraint]
    /// At most one live instance of the app per node, counting those already there.
    public var distinctNodes: Bool
    public var strategy: Strategy
    /// The chunks of the bundle the instances run from; nodes that cache more of them are preferred
    /// among nearly equal ones. Empty: no preference.
    public var bundleChunks: Set<ChunkID>

    public init(app: String, instances: Int, resources: Resources, constraints: [Constraint] = [],
                distinctNodes: Bool = false, strategy: Strategy = .spread, bundleChunks: Set<ChunkID> = []) {
        self.app = app
        self.instances = instances
        self.resources = resources
        self.constraints = constraints
        self.distinctNodes = distinctNodes
        self.strategy = strategy
        self.bundleChunks = bundleChunks
    }
}
