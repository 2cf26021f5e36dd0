import ChunkStore
import Compute
import Foundation
import GRDB

/// What the controller's loop reads and writes: the reconciler's input, its actions applied, the
/// newest event (the cheap poll that notices another process's change) and the nodes' desired-state
/// generations.
extension ControllerStore {
    /// The ID of the newest event, 0 when there is none: every change made through this store, by any
    /// process, appends one, so a poll of this number notices them all.
    public func lastEventID() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM controller_event") ?? 0 }
    }

    /// Everything the reconciler decides on: the apps' intents, versions and latest deployments, the
    /// allocations that still hold a node's resources, and the nodes in the cluster.
    public func reconcileInput(now: Int64) throws -> Reconciler.Input {
        try pool.read { db in
            let apps = try Row.fetchAll(db, sql: "SELECT * FROM controller_app ORDER BY name").map { row -> AppIntent in
                let appID: Int64 = row["id"]
                let name: String = row["name"]
                return AppIntent(name: name, desiredVersion: row["desired_version"], desiredInstances: row["desired_instances"],
                                 stopped: row["stopped"], versions: try Self.versionSummaries(db, appID: appID, app: name),
                                 deployment: try Row.fetchOne(db, sql: "SELECT * FROM controller_deployment WHERE app_id = ? ORDER BY id DESC LIMIT 1",
                                                              arguments: [appID]).map { try Self.deployment($0, app: name) },
                                 placementProblem: row["placement_problem"], removing: row["removing"],
                                 recentFailures: try Int64.fetchAll(db, sql: """
                                     SELECT updated_at FROM controller_allocation WHERE app_id = ? AND state = 'failed' AND updated_at > ?
                                     """, arguments: [appID, now - Reconciler.failureWindow]))
            }
            let allocations = try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.state IN \(Self.holdingStates) ORDER BY a.created_at, a.id")
                .map(Self.allocation)
            let nodes = try Row.fetchAll(db, sql: "SELECT * FROM controller_node WHERE state != 'removed' ORDER BY name").map(Self.node)
            return Reconciler.Input(apps: apps, allocations: allocations, nodes: nodes, now: now)
        }
    }

    static func versionSummaries(_ db: Database, appID: Int64, app: String) throws -> [VersionSummary] {
        try Row.fetchAll(db, sql: "SELECT number, manifest, state FROM controller_version WHERE app_id = ? ORDER BY number", arguments: [appID])
            .map { row in
                let number: Int = row["number"]
                guard let state = AppVersion.State(rawValue: row["state"]) else {
                    throw StoreError(.integrity, "the catalog's version \(number) of \(app) has unknown state \(row["state"] as String)")
                }
                return VersionSummary(number: number, manifest: try decode(AppManifest.self, row["manifest"], "manifest of \(app) version \(number)"),
                                      state: state)
            }
    }

    /// Carries out the reconciler's actions in one transaction, each recording its event. Refused as a
    /// whole (and nothing changed) when one no longer holds, e.g. a placement on a node that stopped
    /// being ready meanwhile: the caller reconciles again on fresh facts.
    public func apply(_ actions: [ReconcileAction], now: Int64) throws {
        guard !actions.isEmpty else { return }
        try pool.write { db in
            for action in actions {
                switch action {
                case .place(let decision, let version):
                    _ = try Self.insertPlacements(db, decision, version: version, now: now)
                case .placementProblem(let app, let message):
                    try db.execute(sql: "UPDATE controller_app SET placement_problem = ? WHERE name = ?", arguments: [message, app])
                    try Self.record(db, message == nil ? .appChanged : .placementFailed, app, message ?? "every instance of \(app) is placed", at: now)
                case .drain(let id, let reason):
                    try db.execute(sql: "UPDATE controller_allocation SET desired = 'drain', drain_at = ?, updated_at = ? WHERE id = ? AND desired = 'run'",
                                   arguments: [now, now, id])
                    if db.changesCount > 0 { try Self.record(db, .allocationDesired, id, "drain: \(reason)", at: now) }
                case .stop(let id, let reason):
                    try db.execute(sql: "UPDATE controller_allocation SET desired = 'stop', updated_at = ? WHERE id = ? AND desired != 'stop'",
                                   arguments: [now, id])
                    if db.changesCount > 0 { try Self.record(db, .allocationDesired, id, "stop: \(reason)", at: now) }
                case .finishDeployment(let id, let app, let state, let message):
                    try db.execute(sql: "UPDATE controller_deployment SET state = ?, message = ?, finished_at = ? WHERE id = ? AND state = 'running'",
                                   arguments: [state.rawValue, message, now, id])
                    if db.changesCount > 0 { try Self.record(db, .deploymentFinished, app, "deployment \(state.rawValue): \(message)", at: now) }
                case .setVersionState(let app, let version, let state):
                    try db.execute(sql: """
                        UPDATE controller_version SET state = ? WHERE app_id = ? AND number = ? AND state != ?
                        """, arguments: [state.rawValue, try Self.appID(db, app), version, state.rawValue])
                    if db.changesCount > 0 { try Self.record(db, .versionState, "\(app)/\(version)", "version \(version) of \(app): \(state.rawValue)", at: now) }
                case .forget(let app):
                    // Only if nothing of it holds a node's resources still (an instance may have been placed meanwhile).
                    if let appID = try Int64.fetchOne(db, sql: "SELECT id FROM controller_app WHERE name = ? AND removing = 1", arguments: [app]),
                       try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM controller_allocation WHERE app_id = ? AND state IN \(Self.holdingStates)",
                                        arguments: [appID]) == 0 {
                        try db.execute(sql: "DELETE FROM controller_app WHERE id = ?", arguments: [appID])
                        try Self.record(db, .appRemoved, app, "app \(app) removed with its versions, its instances stopped", at: now)
                    }
                case .revert(let app, let version):
                    try db.execute(sql: "UPDATE controller_app SET desired_version = ? WHERE name = ?", arguments: [version, app])
                    try Self.record(db, .appChanged, app, "reverted to version \(version) by itself (auto_revert)", at: now)
                }
            }
        }
    }

    // MARK: - Desired-state generations

    /// Every node's desired-state generation (removed nodes left out).
    public func generations() throws -> [String: Int64] {
        try pool.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, generation FROM controller_node WHERE state != 'removed'")
                .map { ($0["id"] as String, $0["generation"] as Int64) })
        }
    }

    /// Increases node `id`'s desired-state generation by one and returns the new one. Records no event:
    /// a generation follows changes that have their own.
    public func bumpGeneration(node id: String) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "UPDATE controller_node SET generation = generation + 1 WHERE id = ?", arguments: [id])
            return try Int64.fetchOne(db, sql: "SELECT generation FROM controller_node WHERE id = ?", arguments: [id]) ?? 0
        }
    }

    /// The allocation with ID `id` (any node's), or not found.
    public func allocation(id: String) throws -> AllocationRecord {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: Self.allocationSelect + " WHERE a.id = ?", arguments: [id]) else {
                throw StoreError(.notFound, "no allocation \(id) (a67 app status APP lists an app's instances)")
            }
            return try Self.allocation(row)
        }
    }

    /// Version `number` of `app`, or not found.
    public func version(app: String, number: Int) throws -> AppVersion {
        guard let version = try versions(app: app).first(where: { $0.number == number }) else {
            throw StoreError(.notFound, "no version \(number) of \(app) (a67 app status \(app) lists its versions)")
        }
        return version
    }
}
