import Foundation

/// What a node agent and the controller say to each other: JSON bodies over HTTP(S) under
/// `/_a67/agent` on `a67 serve` (ARCHITECTURE.md "The agent protocol"). Every request but the join
/// carries the node's credential as `Authorization: A67-Node NODEID.SECRET`; the join carries the
/// one-use token as `Authorization: A67-Token TOKEN`. The agent always calls the controller (it may
/// sit behind NAT); the controller never calls the agent.
///
/// | Method and path | Body | Answer |
/// |---|---|---|
/// | POST join | `JoinRequest` | `JoinResponse` |
/// | POST heartbeat | `Heartbeat` | `HeartbeatReply` |
/// | GET desired?after=G | | `DesiredState` with a generation above G, held up to 25 s (long poll) |
/// | PUT allocations/ID | `InstanceReport` | 204 (403 when the allocation is another node's) |
/// | GET chunks/HEX | | the sealed chunk (403 unless a bundle granted to this node lists it) |
/// | POST logs/REQUEST | the log's bytes | 204 |
public enum AgentProtocol {
    /// The path prefix, under the server's `/_a67`.
    public static let prefix = "/_a67/agent"
    /// The authorization scheme of a node's requests.
    public static let nodeScheme = "A67-Node"
    /// The authorization scheme of a join.
    public static let tokenScheme = "A67-Token"
    /// How long the controller holds a desired-state request open when nothing changed.
    public static let longPoll: Duration = .seconds(25)
    /// The environment variable an instance finds its port in.
    public static let portVariable = "PORT"
}

/// The join: who the node is and what it offers.
public struct JoinRequest: Sendable, Hashable, Codable {
    /// `--name`: a DNS label, unique among the nodes.
    public var name: String
    /// `--advertise`: where the node's instances are reached (an address, no port); nil means the
    /// address the controller sees the join come from.
    public var advertise: String?
    public var labels: [String: String]
    /// What the node offers apps: its memory, CPUs (thousandths) and the data folder's disk.
    public var capacity: Resources
    public var agentVersion: String

    public init(name: String, advertise: String?, labels: [String: String], capacity: Resources, agentVersion: String) {
        self.name = name
        self.advertise = advertise
        self.labels = labels
        self.capacity = capacity
        self.agentVersion = agentVersion
    }
}

/// The controller's answer to a join: the node's identity and its credential (shown this once).
public struct JoinResponse: Sendable, Hashable, Codable {
    public var nodeID: String
    /// "NODEID.SECRET": kept by the agent in its data folder (mode 0600), never in argv or logs.
    public var credential: String
    /// The address the controller recorded for the node.
    public var address: String
    /// How often the agent should send heartbeats, in seconds.
    public var heartbeatSeconds: Double

    public init(nodeID: String, credential: String, address: String, heartbeatSeconds: Double) {
        self.nodeID = nodeID
        self.credential = credential
        self.address = address
        self.heartbeatSeconds = heartbeatSeconds
    }
}

/// What the agent reports about one instance it runs (or ran).
public struct InstanceReport: Sendable, Hashable, Codable {
    public var allocationID: String
    public var state: Allocation.State
    /// Its health check passes (healthy threshold reached, unhealthy threshold not since).
    public var healthy: Bool
    /// The host port it listens on, once assigned.
    public var port: Int?
    public var restarts: Int
    public var exitCode: Int32?
    /// Why it is not running or not healthy, in words ("exited with status 1; restarting in 4 s").
    public var message: String?

    public init(allocationID: String, state: Allocation.State, healthy: Bool, port: Int?, restarts: Int, exitCode: Int32?,
                message: String?) {
        self.allocationID = allocationID
        self.state = state
        self.healthy = healthy
        self.port = port
        self.restarts = restarts
        self.exitCode = exitCode
        self.message = message
    }
}

/// The agent's periodic report.
public struct Heartbeat: Sendable, Hashable, Codable {
    /// What is in use on the node now (from /proc and the data folder's file system).
    public var used: Resources
    public var capacity: Resources
    /// Every instance the agent knows of.
    public var instances: [InstanceReport]
    /// SHA-256s (hex) of the bundles the agent holds unpacked: the scheduler's locality.
    public var cachedBundles: [String]

    public init(used: Resources, capacity: Resources, instances: [InstanceReport], cachedBundles: [String]) {
        self.used = used
        self.capacity = capacity
        self.instances = instances
        self.cachedBundles = cachedBundles
    }
}

public struct HeartbeatReply: Sendable, Hashable, Codable {
    /// The generation of the node's desired state now: when above the agent's, it asks for it.
    public var generation: Int64

    public init(generation: Int64) { self.generation = generation }
}

/// One chunk of a bundle the agent may fetch, with the key that opens it (and nothing else).
public struct GrantedChunk: Sendable, Hashable, Codable {
    /// The chunk ID, 64 hex digits.
    public var id: String
    /// Its chunk key (FORMAT.md "Keys"), 64 hex digits.
    public var key: String
    /// Its plaintext length.
    public var length: Int

    public init(id: String, key: String, length: Int) {
        self.id = id
        self.key = key
        self.length = length
    }
}

/// A bundle the agent may fetch: its chunks in order, and the SHA-256 the whole archive must have.
public struct BundleGrant: Sendable, Hashable, Codable {
    /// SHA-256 of the archive, 64 hex digits.
    public var sha256: String
    public var size: Int64
    public var chunks: [GrantedChunk]

    public init(sha256: String, size: Int64, chunks: [GrantedChunk]) {
        self.sha256 = sha256
        self.size = size
        self.chunks = chunks
    }
}

/// One instance the node should run (or stop).
public struct DesiredInstance: Sendable, Equatable, Codable {
    public var allocationID: String
    public var app: String
    public var version: Int
    /// False: stop it (the stop signal, then SIGKILL after the grace) and report it stopped.
    public var run: Bool
    public var manifest: AppManifest
    public var bundle: BundleGrant

    public init(allocationID: String, app: String, version: Int, run: Bool, manifest: AppManifest, bundle: BundleGrant) {
        self.allocationID = allocationID
        self.app = app
        self.version = version
        self.run = run
        self.manifest = manifest
        self.bundle = bundle
    }
}

/// A request for an instance's log: the agent posts its last `tail` lines to logs/ID.
public struct LogRequest: Sendable, Hashable, Codable {
    public var id: String
    public var allocationID: String
    public var tail: Int

    public init(id: String, allocationID: String, tail: Int) {
        self.id = id
        self.allocationID = allocationID
        self.tail = tail
    }
}

/// Everything a node should be running: the agent makes its instances match it.
public struct DesiredState: Sendable, Equatable, Codable {
    /// Increases with every change of this node's desired state.
    public var generation: Int64
    public var instances: [DesiredInstance]
    public var logRequests: [LogRequest]

    public init(generation: Int64, instances: [DesiredInstance], logRequests: [LogRequest]) {
        self.generation = generation
        self.instances = instances
        self.logRequests = logRequests
    }
}

/// One instance the app proxy may send an app's traffic to: healthy, not draining. The controller
/// publishes the whole table whenever it changes; the proxy routes by it.
public struct AppEndpoint: Sendable, Hashable, Codable {
    public var allocationID: String
    public var app: String
    /// The node's advertised address (an IP or host name, no port).
    public var host: String
    public var port: Int

    public init(allocationID: String, app: String, host: String, port: Int) {
        self.allocationID = allocationID
        self.app = app
        self.host = host
        self.port = port
    }
}
