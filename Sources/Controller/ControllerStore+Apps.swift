import ChunkStore
import Compute
import Foundation
import GRDB

extension ControllerStore {
    /// Records a new version of the app the manifest names (creating the app with its first version)
    /// and returns its number: 1, 2, ... per app. `bundle` is the bundle's object in the store and
    /// `bundleSHA256` its archive's SHA-256 (32 bytes), which the agent checks after fetching it.
    public func addVersion(manifest: AppManifest, bundle: String, bundleSHA256: [UInt8], now: Int64) throws -> Int {
        guard bundleSHA256.count == 32 else {
            throw StoreError(.invalidArgument, "a bundle's SHA-256 is 32 bytes, not \(bundleSHA256.count) (version of \(manifest.name))")
        }
        let manifestJSON = try Self.json(manifest)
        return try pool.write { db in
            let app = manifest.name
            let appID: Int64
            if let existing = try Int64.fetchOne(db, sql: "SELECT id FROM controller_app WHERE name = ?", arguments: [app]) {
                appID = existing
            } else {
                try db.execute(sql: "INSERT INTO controller_app(name, created_at) VALUES (?, ?)", arguments: [app, now])
                appID = db.lastInsertedRowID
            }
            let number = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(number), 0) + 1 FROM controller_version WHERE app_id = ?",
                                          arguments: [appID]) ?? 1
            try db.execute(sql: """
                INSERT INTO controller_version(app_id, number, manifest, bundle, bundle_sha256, state, created_at)
                VALUES (?, ?, ?, ?, ?, 'stored', ?)
                """, arguments: [appID, number, manifestJSON, bundle, Data(bundleSHA256), now])
            try Self.record(db, .versionAdded, "\(app)/\(number)", "version \(number) of \(app) stored (bundle \(bundle))", at: now)
            return number
        }
    }

    /// The app's versions, oldest first; not found when there is no such app.
    public func versions(app: String) throws -> [AppVersion] {
        try pool.read { db in
            let appID = try Self.appID(db, app)
            return try Row.fetchAll(db, sql: "SELECT * FROM controller_version WHERE app_id = ? ORDER BY number", arguments: [appID]).map { row in
                let number: Int = row["number"]
                guard let state = AppVersion.State(rawValue: row["state"]) else {
                    throw StoreError(.integrity, "the catalog's version \(number) of \(app) has unknown state \(row["state"] as String)")
                }
                return AppVersion(app: app, number: number,
                                  manifest: try Self.decode(AppManifest.self, row["manifest"], "manifest of \(app) version \(number)"),
                                  bundle: row["bundle"], bundleSHA256: [UInt8](row["bundle_sha256"] as Data), state: state, createdAt: row["created_at"])
            }
        }
    }

    /// The names of the apps, sorted.
    public func apps() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM controller_app ORDER BY name") }
    }

    /// Forgets an app: its versions, deployments and allocations; the bundles stay in the store. While
    /// any of its instances still holds a node's resources, the app is stopped instead and marked for
    /// removal: the controller drains and stops its instances and then forgets it (`Reconciler`,
    /// `ReconcileAction.forget`). Returns whether it is gone now.
    @discardableResult
    public func removeApp(_ app: String, now: Int64) throws -> Bool {
        try pool.write { db in
            let appID = try Self.appID(db, app)
            let holding = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM controller_allocation WHERE app_id = ? AND state IN \(Self.holdingStates)
                """, arguments: [appID]) ?? 0
            guard holding == 0 else {
                if try Bool.fetchOne(db, sql: "SELECT removing FROM controller_app WHERE id = ?", arguments: [appID]) != true {
                    try db.execute(sql: "UPDATE controller_app SET stopped = 1, removing = 1 WHERE id = ?", arguments: [appID])
                    try Self.record(db, .appChanged, app, "removal asked: its \(holding) instance\(holding == 1 ? "" : "s") are drained "
                        + "and stopped first, then \(app) is removed", at: now)
                }
                return false
            }
            try db.execute(sql: "DELETE FROM controller_app WHERE id = ?", arguments: [appID])
            try Self.record(db, .appRemoved, app, "app \(app) removed with its versions", at: now)
            return true
        }
    }

    static func appID(_ db: Database, _ app: String) throws -> Int64 {
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM controller_app WHERE name = ?", arguments: [app]) else {
            throw StoreError(.notFound, "no app named \(app) (a67 app ls lists them)")
        }
        return id
    }
}
