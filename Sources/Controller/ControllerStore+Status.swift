import ChunkStore
import Compute
import Foundation
import GRDB

/// `a67 app status NAME --json`: what the app should run, what it runs, and why not.
public struct AppStatus: Sendable, Codable, Equatable {
    public struct Version: Sendable, Codable, Equatable {
        public var number: Int
        /// stored, deployed, superseded or failed.
        public var state: String
        /// The bundle's object in the store and its SHA-256 (hex).
        public var bundle: String
        public var bundleSHA256: String
        /// Nanoseconds since 1970.
        public var createdAt: Int64
    }

    public struct Instance: Sendable, Codable, Equatable {
        public var id: String
        public var version: Int
        public var node: String
        public var nodeID: String
        /// pending, starting, running, stopping, stopped or failed.
        public var state: String
        /// run, drain or stop: what the controller wants of it.
        public var desired: String
        public var healthy: Bool
        public var port: Int?
        public var restarts: Int
        public var exitCode: Int32?
        public var message: String?
        /// Nanoseconds since 1970.
        public var createdAt: Int64
    }

    public var name: String
    /// The version it should run; nil before its first deploy.
    public var desiredVersion: Int?
    /// The instances it should run now (0 when stopped).
    public var desiredInstances: Int
    public var stopped: Bool
    /// How many instances are healthy and taking traffic.
    public var healthyInstances: Int
    public var versions: [Version]
    /// The latest deployment: its state and message say how a deploy went ("reverted: ...").
    public var deployment: Deployment?
    /// Instances that still hold a node's resources, and the last 20 that ended.
    public var instances: [Instance]
    /// The scheduler's explanation when instances could not be placed.
    public var placementProblem: String?
}

/// One line of `a67 app ls`.
public struct AppSummary: Sendable, Codable, Equatable {
    public var name: String
    public var version: Int?
    /// Its latest deployment's state (running, succeeded, failed, reverted, cancelled), nil before any.
    public var deployment: String?
    public var desiredInstances: Int
    public var healthyInstances: Int
    public var stopped: Bool
}

/// One line of `a67 node ls`.
public struct NodeSummary: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var address: String
    public var state: String
    public var labels: [String: String]
    public var capacity: Resources
    /// What its agent last reported in use.
    public var used: Resources
    /// What its allocations reserve.
    public var reserved: Resources
    /// How many instances (of any app) it holds, and of how many apps.
    public var instances: Int
    public var apps: Int
    /// Nanoseconds since 1970 of its last heartbeat; nil before the first.
    public var lastSeen: Int64?
    public var agentVersion: String
}

extension ControllerStore {
    /// `a67 app status NAME`; not found for an unknown app.
    public func status(app: String) throws -> AppStatus {
        try pool.read { db in
            let intent = try Self.intent(db, app)
            let versions = try Self.versionSummaries(db, appID: intent.id, app: app)
            let appIntent = AppIntent(name: app, desiredVersion: intent.desiredVersion, desiredInstances: intent.desiredInstances,
                                      stopped: intent.stopped, versions: versions)
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM controller_version WHERE app_id = ? ORDER BY number
                """, arguments: [intent.id])
            let names = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, name FROM controller_node")
                .map { ($0["id"] as String, $0["name"] as String) })
            let live = try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.app_id = ? AND a.state IN \(Self.holdingStates) ORDER BY a.created_at, a.id",
                                        arguments: [intent.id]).map(Self.allocation)
            let ended = try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.app_id = ? AND a.state NOT IN \(Self.holdingStates) ORDER BY a.updated_at DESC, a.id LIMIT 20",
                                         arguments: [intent.id]).map(Self.allocation)
            return AppStatus(
                name: app, desiredVersion: intent.desiredVersion, desiredInstances: appIntent.wantedInstances, stopped: intent.stopped,
                healthyInstances: live.count(where: { $0.healthy && $0.desired == .run && $0.allocation.state == .running }),
                versions: rows.map { row in
                    AppStatus.Version(number: row["number"], state: row["state"], bundle: row["bundle"],
                                      bundleSHA256: Hex.encode([UInt8](row["bundle_sha256"] as Data)), createdAt: row["created_at"])
                },
                deployment: try Row.fetchOne(db, sql: "SELECT * FROM controller_deployment WHERE app_id = ? ORDER BY id DESC LIMIT 1",
                                             arguments: [intent.id]).map { try Self.deployment($0, app: app) },
                instances: (live + ended).map { record in
                    let a = record.allocation
                    return AppStatus.Instance(id: a.id, version: a.version, node: names[a.nodeID] ?? a.nodeID, nodeID: a.nodeID,
                                              state: a.state.rawValue, desired: record.desired.rawValue, healthy: record.healthy,
                                              port: record.port, restarts: record.restarts, exitCode: record.exitCode, message: record.message,
                                              createdAt: Reconciler.nanoseconds(a.createdAt))
                },
                placementProblem: intent.placementProblem)
        }
    }

    /// `a67 app ls`: every app, by name.
    public func appSummaries() throws -> [AppSummary] {
        try apps().map { name in
            let status = try status(app: name)
            return AppSummary(name: name, version: status.desiredVersion, deployment: status.deployment?.state.rawValue,
                              desiredInstances: status.desiredInstances, healthyInstances: status.healthyInstances, stopped: status.stopped)
        }
    }

    /// `a67 node ls`: the nodes in the cluster, by name; with `includingRemoved`, the removed ones
    /// too (`a67 node ls --all`: their rows stay so that allocations and events still name them).
    public func nodeSummaries(includingRemoved: Bool = false) throws -> [NodeSummary] {
        try pool.read { db in
            let filter = includingRemoved ? "" : "WHERE state != 'removed'"
            let nodes = try Row.fetchAll(db, sql: "SELECT * FROM controller_node \(filter) ORDER BY name").map(Self.node)
            let holding = try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.state IN \(Self.holdingStates)").map(Self.allocation)
            let byNode = Dictionary(grouping: holding, by: \.allocation.nodeID)
            return nodes.map { node in
                let mine = byNode[node.id] ?? []
                return NodeSummary(id: node.id, name: node.name, address: node.address, state: node.state.rawValue, labels: node.labels,
                                   capacity: node.capacity, used: node.used,
                                   reserved: mine.reduce(Resources.zero) { $0 + $1.allocation.resources },
                                   instances: mine.count, apps: Set(mine.map(\.allocation.app)).count, lastSeen: node.lastHeartbeat,
                                   agentVersion: node.agentVersion)
            }
        }
    }
}
