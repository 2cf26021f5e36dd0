import GRDB

/// The migrations one module contributes to the catalog database: ChunkStore's own tables
/// (`CatalogSchema.store`), and later the controller's and the SQL router's, each owning its tables.
///
/// Every schema change is a new migration appended to its module's list; existing ones never change,
/// and an identifier once released is never renamed (GRDB records the identifiers a database has
/// applied and runs the others, in order). ChunkStore's identifiers are the bare "vN: ..." ones of the
/// first releases; another module's start with its name ("controller v1: ..."), so that two modules
/// never collide. GRDB opens a catalog with applied migrations it does not know, but that does not
/// make it safe for an older binary: after v8 (times in nanoseconds) an older one misreads
/// `provider.created_at`. Catalogs are not meant to go back to an older a67.
///
/// Modules are migrated in the order given to `Catalog.init`, ChunkStore's first: a module's
/// migrations may refer to the tables of the modules before it, never after.
public struct CatalogSchema: Sendable {
    public struct Migration: Sendable {
        public let identifier: String
        public let migrate: @Sendable (Database) throws -> Void
    }

    /// The module's name, the prefix of its migrations' identifiers (empty for ChunkStore's).
    public let module: String
    public private(set) var migrations: [Migration] = []

    public init(module: String) {
        self.module = module
    }

    /// Appends migration `name` (its identifier is "MODULE name"; for ChunkStore's, `name`).
    public mutating func register(_ name: String, migrate: @escaping @Sendable (Database) throws -> Void) {
        migrations.append(Migration(identifier: module.isEmpty ? name : module + " " + name, migrate: migrate))
    }

    /// One migrator over the given modules' migrations, in order.
    static func migrator(_ schemas: [CatalogSchema]) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for schema in schemas {
            for migration in schema.migrations {
                migrator.registerMigration(migration.identifier, migrate: migration.migrate)
            }
        }
        return migrator
    }
}
