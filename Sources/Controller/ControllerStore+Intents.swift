import ChunkStore
import Compute
import Foundation
import GRDB

/// The operator's intents for an app, as `a67 app deploy/scale/stop/start/rollback` write them
/// straight into the catalog (from another process than `a67 serve`). Each is one transaction that
/// records an event; the controller in `a67 serve` notices the event and reconciles (`Reconciler`).
extension ControllerStore {
    /// Starts a deployment of stored version `version` of `app`: it becomes the version the app runs,
    /// with the number of instances its manifest asks for (an earlier `scale` is forgotten: the new
    /// manifest says how many), and the app runs again if it was stopped. A deployment still running
    /// is cancelled. Returns the new deployment. Refused (conflict) when the app already runs that
    /// version and no deployment of it failed; not found for an unknown app or version.
    @discardableResult
    public func deploy(app: String, version: Int, now: Int64) throws -> Deployment {
        try pool.write { db in try Self.startDeployment(db, app: app, version: version, why: "deploying", now: now) }
    }

    /// Rolls `app` back to version `to` (any kept version), or, when nil, to the latest version before
    /// the one it runs that was deployed healthy. A deployment like `deploy`.
    @discardableResult
    public func rollback(app: String, to version: Int?, now: Int64) throws -> Deployment {
        try pool.write { db in
            let intent = try Self.intent(db, app)
            let target: Int
            if let version {
                target = version
            } else {
                guard let current = intent.desiredVersion,
                      let previous = try Int.fetchOne(db, sql: """
                          SELECT MAX(number) FROM controller_version
                          WHERE app_id = ? AND number != ? AND state IN ('deployed', 'superseded')
                          """, arguments: [intent.id, current]) else {
                    throw StoreError(.conflict, "\(app) has no earlier version that deployed healthy to roll back to: "
                        + "name one with --to (a67 app status \(app) lists the versions)")
                }
                target = previous
            }
            return try Self.startDeployment(db, app: app, version: target, why: "rolling back", now: now)
        }
    }

    /// Sets how many instances of `app` run (0 to 1000), instead of its manifest's `instances`.
    /// Refused (conflict) before its first deploy.
    public func scale(app: String, instances: Int, now: Int64) throws {
        guard (0...1000).contains(instances) else {
            throw StoreError(.invalidArgument, "an app runs 0 to 1000 instances, not \(instances)")
        }
        try pool.write { db in
            let intent = try Self.intent(db, app)
            try intent.checkNotRemoving(app)
            guard intent.desiredVersion != nil else {
                throw StoreError(.conflict, "\(app) was never deployed: a67 app deploy it first, then scale it")
            }
            guard intent.desiredInstances != instances else { return }
            try db.execute(sql: "UPDATE controller_app SET desired_instances = ? WHERE id = ?", arguments: [instances, intent.id])
            try Self.record(db, .appChanged, app, "scaled to \(instances) instance\(instances == 1 ? "" : "s")", at: now)
        }
    }

    /// Stops every instance of `app` (drained first), keeping its version and instance count for `start`.
    /// Stopping a stopped app changes nothing.
    public func stop(app: String, now: Int64) throws {
        try setStopped(app, true, now: now)
    }

    /// Runs a stopped app again, with the version and instance count it had.
    public func start(app: String, now: Int64) throws {
        try setStopped(app, false, now: now)
    }

    func setStopped(_ app: String, _ stopped: Bool, now: Int64) throws {
        try pool.write { db in
            let intent = try Self.intent(db, app)
            try intent.checkNotRemoving(app)
            guard intent.stopped != stopped else { return }
            guard stopped || intent.desiredVersion != nil else {
                throw StoreError(.conflict, "\(app) was never deployed: a67 app deploy it")
            }
            try db.execute(sql: "UPDATE controller_app SET stopped = ? WHERE id = ?", arguments: [stopped, intent.id])
            try Self.record(db, .appChanged, app, stopped ? "stopped: its instances are drained and stopped" : "started again", at: now)
        }
    }

    /// The deployments of `app`, newest first.
    public func deployments(app: String) throws -> [Deployment] {
        try pool.read { db in
            let appID = try Self.appID(db, app)
            return try Row.fetchAll(db, sql: "SELECT * FROM controller_deployment WHERE app_id = ? ORDER BY id DESC", arguments: [appID])
                .map { try Self.deployment($0, app: app) }
        }
    }

    // MARK: - Inside a transaction

    /// What the operator asks of an app.
    struct StoredIntent {
        var id: Int64
        var desiredVersion: Int?
        var desiredInstances: Int?
        var stopped: Bool
        var placementProblem: String?
        var removing: Bool

        /// Refused (conflict) while the app is being removed.
        func checkNotRemoving(_ app: String) throws {
            guard !removing else {
                throw StoreError(.conflict, "\(app) is being removed (a67 app rm): its instances are stopping; deploy it again once it is gone")
            }
        }
    }

    static func intent(_ db: Database, _ app: String) throws -> StoredIntent {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM controller_app WHERE name = ?", arguments: [app]) else {
            throw StoreError(.notFound, "no app named \(app) (a67 app ls lists them)")
        }
        return StoredIntent(id: row["id"], desiredVersion: row["desired_version"], desiredInstances: row["desired_instances"],
                            stopped: row["stopped"], placementProblem: row["placement_problem"], removing: row["removing"])
    }

    static func startDeployment(_ db: Database, app: String, version: Int, why: String, now: Int64) throws -> Deployment {
        let intent = try intent(db, app)
        try intent.checkNotRemoving(app)
        guard let state = try String.fetchOne(db, sql: "SELECT state FROM controller_version WHERE app_id = ? AND number = ?",
                                              arguments: [intent.id, version]) else {
            throw StoreError(.notFound, "no version \(version) of \(app) (a67 app status \(app) lists its versions)")
        }
        let running = try Row.fetchOne(db, sql: """
            SELECT id, version FROM controller_deployment WHERE app_id = ? AND state = 'running' ORDER BY id DESC LIMIT 1
            """, arguments: [intent.id])
        if intent.desiredVersion == version, !intent.stopped, state != AppVersion.State.failed.rawValue, running == nil || running?["version"] == version {
            throw StoreError(.conflict, "\(app) already runs version \(version): nothing to deploy")
        }
        if let running {
            let id: Int64 = running["id"]
            try db.execute(sql: "UPDATE controller_deployment SET state = 'cancelled', message = ?, finished_at = ? WHERE id = ?",
                           arguments: ["replaced by a deployment of version \(version)", now, id])
            try record(db, .deploymentFinished, app, "deployment of version \(running["version"] as Int) cancelled: replaced by version \(version)", at: now)
        }
        try db.execute(sql: "UPDATE controller_app SET desired_version = ?, desired_instances = NULL, stopped = 0 WHERE id = ?",
                       arguments: [version, intent.id])
        try db.execute(sql: """
            INSERT INTO controller_deployment(app_id, version, from_version, state, message, created_at)
            VALUES (?, ?, ?, 'running', ?, ?)
            """, arguments: [intent.id, version, intent.desiredVersion, "\(why) to version \(version)", now])
        let id = db.lastInsertedRowID
        let from = intent.desiredVersion.map { " from version \($0)" } ?? ""
        try record(db, .deploymentStarted, app, "\(why) to version \(version)\(from)", at: now)
        return Deployment(id: id, app: app, version: version, fromVersion: intent.desiredVersion, state: .running,
                          message: "\(why) to version \(version)", createdAt: now, finishedAt: nil)
    }

    static func deployment(_ row: Row, app: String) throws -> Deployment {
        let id: Int64 = row["id"]
        guard let state = Deployment.State(rawValue: row["state"]) else {
            throw StoreError(.integrity, "the catalog's deployment \(id) of \(app) has unknown state \(row["state"] as String)")
        }
        return Deployment(id: id, app: app, version: row["version"], fromVersion: row["from_version"], state: state,
                          message: row["message"], createdAt: row["created_at"], finishedAt: row["finished_at"])
    }
}
