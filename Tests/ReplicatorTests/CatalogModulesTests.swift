import BackendTesting
import ChunkStore
import Foundation
import GRDB
import Replicator
import Testing

/// A module's tables in the catalog (the controller's, the SQL router's): migrated by every opener
/// given its schema, and carried by catalog snapshots into a recovered repository.
@Suite struct CatalogModulesTests {
    static let schema: CatalogSchema = {
        var schema = CatalogSchema(module: "testapps")
        schema.register("v1: apps") { db in try db.execute(sql: "CREATE TABLE testapps_app (name TEXT PRIMARY KEY)") }
        return schema
    }()

    @Test func aModulesTablesAreMigratedAndRecoveredWithTheCatalog() async throws {
        let folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(),
                                                   catalogModules: [Self.schema], passphrase: Passphrase("p"), settings: settings)
        _ = try await repository.addProvider(name: "a", spec: .directory(path: folder.path + "/a"), quota: nil)
        try await repository.catalog.database.write { db in try db.execute(sql: "INSERT INTO testapps_app VALUES ('web')") }
        _ = try await repository.snapshotCatalog()

        let (recovered, _) = try await Repository.recover(home: folder.path + "/again", passphrase: Passphrase("p"),
                                                          from: .directory(path: folder.path + "/a"), secret: nil,
                                                          backends: DirectoryBackendFactory(), catalogModules: [Self.schema])
        let names = try await recovered.catalog.database.read { db in try String.fetchAll(db, sql: "SELECT name FROM testapps_app") }
        #expect(names == ["web"])
        // Opened again with a second migration of the module's, only that one runs.
        var next = Self.schema
        next.register("v2: replicas") { db in try db.execute(sql: "ALTER TABLE testapps_app ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1") }
        let reopened = try Repository.open(home: folder.path + "/again", backends: DirectoryBackendFactory(), catalogModules: [next],
                                           passphrase: { Passphrase("p") })
        let replicas = try await reopened.catalog.database.read { db in try Int.fetchAll(db, sql: "SELECT replicas FROM testapps_app") }
        #expect(replicas == [1])
    }
}
