import Foundation

/// One instance of an app, bound to a node: what the controller records when the scheduler places
/// it, and what the agent on that node runs.
public struct Allocation: Sendable, Hashable, Codable {
    /// Where an instance is in its life.
    public enum State: String, Sendable, Hashable, Codable {
        /// Placed; the agent has not started it yet.
        case pending
        /// Started, not yet healthy.
        case starting
        case running
        /// Told to stop; its process may still be there.
        case stopping
        case stopped
        /// Given up on (the agent stopped restarting it, or the node was lost).
        case failed

        /// Whether the instance still holds its node's resources: until its process is gone.
        public var holdsResources: Bool {
            switch self {
            case .pending, .starting, .running, .stopping: true
            case .stopped, .failed: false
            }
        }

        /// Whether it counts as one of the app's instances: for spreading, for distinct nodes and for
        /// scaling. One that is stopping does not: it is on its way out.
        public var isLive: Bool {
            switch self {
            case .pending, .starting, .running: true
            case .stopping, .stopped, .failed: false
            }
        }
    }

    /// Unique among all allocations.
    public var id: String
    public var app: String
    public var version: Int
    public var nodeID: String
    /// What the instance reserves on its node (the app's `[resources]`).
    public var resources: Resources
    public var state: State
    /// When it was placed; scaling down stops the newest first.
    public var createdAt: Date

    public init(id: String, app: String, version: Int, nodeID: String, resources: Resources, state: State,
                createdAt: Date) {
        self.id = id
        self.app = app
        self.version = version
        self.nodeID = nodeID
        self.resources = resources
        self.state = state
        self.createdAt = createdAt
    }
}
