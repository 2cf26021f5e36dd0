import ChunkStore

/// A node as the scheduler sees it: the facts the controller holds about one machine, copied into a
/// plain value so that placement is a pure function of them.
///
/// `used` is what the node's agent last reported (from /proc), `capacity` what it has in all. The
/// scheduler does not trust either alone: see `Scheduler.place` for how free room is computed.
public struct SchedulerNode: Sendable, Hashable {
    /// Whether new instances may go to a node.
    public enum Readiness: Sendable, Hashable {
        case ready
        /// Any other state (draining, down, suspect, ...), named by a word that reads after "is" in an
        /// explanation: "1 is draining", "2 are down".
        case notReady(String)
    }

    /// The node's stable identity; unique among the nodes given to one call. Ties between equally
    /// good nodes go to the smallest ID, so placement never depends on the order nodes are listed in.
    public var id: String
    /// The name the user gave at join (`--name vm1`); for messages only.
    public var name: String
    public var readiness: Readiness
    /// The node's labels (`--label region=eu`), which constraints are checked against.
    public var labels: [String: String]
    public var capacity: Resources
    /// What the agent last reported in use, by everything on the node (instances and the system).
    public var used: Resources
    /// The chunks the node's agent holds in its local bundle cache. Chunks rather than bundle IDs
    /// because versions of one app share most of their chunks: a node that ran version 4 already
    /// holds most of version 5, and the scheduler can see that.
    public var cachedChunks: Set<ChunkID>

    public init(id: String, name: String? = nil, readiness: Readiness = .ready, labels: [String: String] = [:],
                capacity: Resources, used: Resources = .zero, cachedChunks: Set<ChunkID> = []) {
        self.id = id
        self.name = name ?? id
        self.readiness = readiness
        self.labels = labels
        self.capacity = capacity
        self.used = used
        self.cachedChunks = cachedChunks
    }
}
