import Compute
import Foundation

/// A node's state as the controller records it.
public enum NodeState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Takes new instances.
    case ready
    /// Keeps what it runs and takes nothing new (`a67 node drain`).
    case draining
    /// Missed its heartbeats; its next heartbeat makes it ready again.
    case down
    /// Left the cluster (`a67 node rm`): its credential is revoked, and its row stays for the history.
    case removed
}

/// A machine that joined the cluster: what `a67 node ls` lists and the scheduler places on.
public struct Node: Sendable, Hashable {
    /// Stable and random ("n" and 16 hex digits); the first part of the node's credential.
    public var id: String
    /// The name given at join (`--name vm1`), unique among the nodes not removed.
    public var name: String
    /// Where the controller reaches the node's agent ("10.0.0.5:7070").
    public var address: String
    public var labels: [String: String]
    public var capacity: Resources
    /// What the agent last reported in use (zero until its first heartbeat).
    public var used: Resources
    public var state: NodeState
    /// Nanoseconds since 1970 of the last heartbeat; nil before the first.
    public var lastHeartbeat: Int64?
    public var agentVersion: String
    /// Nanoseconds since 1970.
    public var createdAt: Int64

    /// The node as the scheduler sees it: ready only in state ready; any other state is named in the
    /// scheduler's explanations ("1 is draining"). The bundle cache is not recorded here.
    public var schedulerNode: SchedulerNode {
        SchedulerNode(id: id, name: name, readiness: state == .ready ? .ready : .notReady(state.rawValue), labels: labels,
                      capacity: capacity, used: used)
    }
}

/// A node just registered, with its credential: the secret the agent presents from then on. It is
/// returned this once and stored only as its SHA-256.
public struct NodeRegistration: Sendable {
    public var node: Node
    /// "NODEID.SECRET" (the secret: 64 hex digits, 256 random bits).
    public var credential: String
}

/// One stored version of an app: its manifest and the bundle it runs.
public struct AppVersion: Sendable, Equatable {
    /// Where a version is in its life (set by deployments).
    public enum State: String, Sendable, Hashable, Codable {
        /// Stored, never deployed.
        case stored
        /// The version the app runs.
        case deployed
        /// Deployed once, replaced by a later one.
        case superseded
        /// Its deployment failed.
        case failed
    }

    public var app: String
    /// 1, 2, ... per app, never reused while the app exists.
    public var number: Int
    public var manifest: AppManifest
    /// The bundle's object in the store.
    public var bundle: String
    /// SHA-256 of the bundle's archive (32 bytes).
    public var bundleSHA256: [UInt8]
    public var state: State
    /// Nanoseconds since 1970.
    public var createdAt: Int64
}

/// What an agent reports about one of its allocations; nil fields stay as they are.
public struct AllocationChange: Sendable, Hashable {
    public var state: Allocation.State?
    /// The host port the instance listens on (1 to 65535).
    public var port: Int?
    /// How many times the agent restarted the instance (never decreases).
    public var restarts: Int?
    /// The last exit code of its process.
    public var exitCode: Int32?
    /// Whether its health check passes now.
    public var healthy: Bool?
    /// The agent's words on it ("" clears them); a change of the message alone records no event.
    public var message: String?

    public init(state: Allocation.State? = nil, port: Int? = nil, restarts: Int? = nil, exitCode: Int32? = nil,
                healthy: Bool? = nil, message: String? = nil) {
        self.state = state
        self.port = port
        self.restarts = restarts
        self.exitCode = exitCode
        self.healthy = healthy
        self.message = message
    }
}

/// An allocation with what its agent reported about it and what the controller wants of it.
public struct AllocationRecord: Sendable, Hashable {
    /// The controller's intent for an allocation.
    public enum Desired: String, Sendable, Hashable, Codable {
        /// Keep it running (and in the proxy's routes once healthy).
        case run
        /// Out of the proxy's routes since `drainAt`, still running so requests in flight finish;
        /// told to stop after the drain delay.
        case drain
        /// Its agent stops it.
        case stop
    }

    public var allocation: Allocation
    public var port: Int?
    public var restarts: Int
    public var exitCode: Int32?
    /// Nanoseconds since 1970 of its last change.
    public var updatedAt: Int64
    public var desired: Desired = .run
    /// Its health check passes (the agent's last report).
    public var healthy = false
    /// Nanoseconds since 1970 since when it has been healthy; nil while not healthy.
    public var healthySince: Int64?
    /// Nanoseconds since 1970 of when it was drained; nil unless drained or stopped after a drain.
    public var drainAt: Int64?
    /// The agent's last words on it.
    public var message: String?
}

/// One deployment: the move of an app to a version, and how it ended.
public struct Deployment: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable {
        /// Rolling out.
        case running
        /// Every instance runs the version, healthy.
        case succeeded
        /// Its instances were not healthy by the deadline, and it was not reverted.
        case failed
        /// Failed, and the app went back to its last healthy version by itself (auto_revert).
        case reverted
        /// Replaced by a later deployment before it finished.
        case cancelled
    }

    public var id: Int64
    public var app: String
    public var version: Int
    /// The version the app ran before (nil for its first deployment).
    public var fromVersion: Int?
    public var state: State
    /// Why it ended as it did, or what it is waiting for.
    public var message: String?
    /// Nanoseconds since 1970.
    public var createdAt: Int64
    public var finishedAt: Int64?
}

/// One entry of the controller's event log: every change of its state, in order.
public struct ControllerEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case tokenCreated = "token.created"
        case nodeJoined = "node.joined"
        case nodeState = "node.state"
        case nodeRemoved = "node.removed"
        case versionAdded = "version.added"
        case appRemoved = "app.removed"
        case allocationPlaced = "allocation.placed"
        case allocationChanged = "allocation.changed"
        /// An operator's intent for an app: scaled, stopped, started.
        case appChanged = "app.changed"
        case deploymentStarted = "deployment.started"
        /// A deployment succeeded, failed, was reverted or cancelled.
        case deploymentFinished = "deployment.finished"
        case versionState = "version.state"
        /// Instances did not fit on any node (the scheduler's explanation).
        case placementFailed = "placement.failed"
        /// An allocation to be drained or stopped.
        case allocationDesired = "allocation.desired"
    }

    /// Increasing: the cursor for `events(since:)`.
    public var id: Int64
    /// Nanoseconds since 1970.
    public var at: Int64
    public var kind: Kind
    /// What changed: a node's or app's name, "app/version", an allocation's ID.
    public var subject: String
    public var message: String
}
