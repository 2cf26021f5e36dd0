import Foundation
import GRDB

/// The local catalog: one SQLite database in WAL mode (GRDB over the system libsqlite3), and the
/// composition root of its aggregates, each a type with one job over the shared database pool:
///
/// - `chunks` (ChunkIndex): chunks, their locations and reference counts, manifests, orphans, leases,
///   and the audit of reference counts;
/// - `namespace` (Namespace): buckets, inodes, extended attributes, the trash, objects and listings;
/// - `accounts` (Accounts): users, access keys, quotas and quota reservations;
/// - `uploads` (Uploads): unfinished multipart uploads and their parts;
/// - `providers` (ProviderRegistry): providers, their state and recorded health.
///
/// The catalog itself keeps what concerns the whole database: opening and migrating it, the
/// repository's settings (`meta`), statistics, backups and durability.
///
/// A transaction that spans aggregates (an object's commit records its chunks, points an inode at its
/// manifest and adjusts reference counts) belongs to the aggregate whose operation it is, the one the
/// caller names (`namespace.commitObject`). It reaches the other aggregates' tables only through their
/// static `…(_ db: Database)` helpers (`ChunkIndex.insert`, `ChunkIndex.adjustManifest`,
/// `Uploads.dropUpload`...), which run inside the caller's transaction; an aggregate never calls
/// another's instance methods, which would open a second transaction.
///
/// Schema changes are migrations, each owned by the module that owns its tables (CatalogSchema);
/// a database is never rewritten by hand.
public final class Catalog: Sendable {
    public let path: String
    let pool: DatabasePool
    /// Commits are not synced one by one (synchronous=NORMAL): they survive the process's crash,
    /// and `sync` makes them survive the machine's. For the mount, whose every create is a commit.
    public let relaxed: Bool

    public let chunks: ChunkIndex
    public let namespace: Namespace
    public let accounts: Accounts
    public let uploads: Uploads
    public let providers: ProviderRegistry

    /// Opens (and migrates) the catalog at `path`, creating it when `create` is set. `readOnly` opens
    /// it without migrating or writing (to diagnose a repository that cannot be opened for work).
    /// `modules`: the schemas of other modules that keep their tables in the catalog (the controller,
    /// the SQL router), migrated after ChunkStore's own (`CatalogSchema.store`).
    public init(path: String, create: Bool = false, relaxed: Bool = false, readOnly: Bool = false,
                modules: [CatalogSchema] = []) throws {
        self.relaxed = relaxed
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw StoreError(.notInitialized, "no catalog at \(path): run a67 init first (or set A67_HOME)")
        }
        self.path = path
        if !readOnly { try Self.checkWritable(path) }
        if create {
            // Readable by the owner only (SQLite gives its -wal and -shm files the same mode).
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { Glibc.close(fd) }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(60)
        configuration.foreignKeysEnabled = true
        configuration.label = "a67-catalog"
        configuration.readonly = readOnly
        // Enough readers for a server's concurrent requests (each read is short; see chunkLocations).
        configuration.maximumReaderCount = 16
        if relaxed {
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            if !readOnly { try CatalogSchema.migrator([.store] + modules).migrate(pool) }
        } catch let error as DatabaseError {
            throw StoreError(.io, "cannot open the catalog \(path): \(error.message ?? error.description)")
        }
        chunks = ChunkIndex(pool: pool)
        namespace = Namespace(pool: pool, relaxed: relaxed)
        accounts = Accounts(pool: pool)
        uploads = Uploads(pool: pool)
        providers = ProviderRegistry(pool: pool)
    }

    /// Every command writes beside the catalog (its write-ahead log and shared memory, and locks),
    /// even one that only reads, so the folder and the files must be writable: SQLite would only say
    /// "unable to open database file" or "attempt to write a readonly database".
    static func checkWritable(_ path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        for target in [folder, path, path + "-wal", path + "-shm"] where access(target, F_OK) == 0 {
            guard access(target, W_OK) != 0 else { continue }
            let failure = SystemCallError(call: "access", path: target, errno: errno)
            throw StoreError(.io, "cannot open the catalog \(path): \(target == folder ? "its folder " : "")\(target) is not writable: "
                + "\(failure.reason)\(failure.remedy). a67 writes beside the catalog (its write-ahead log and locks) for "
                + "every command, ls and stat included, so $A67_HOME must be writable")
        }
    }

    /// The database, for the modules that keep tables of their own in the catalog (`CatalogSchema`):
    /// they read and write only those, and reach ChunkStore's through its aggregates.
    public var database: DatabasePool { pool }

    /// Closes the database (before its file is replaced).
    public func close() throws { try pool.close() }

    // MARK: - Settings

    public func setting(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setSetting(_ key: String, _ value: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [key, value])
        }
    }

    // MARK: - Statistics

    public func statistics() throws -> CatalogStatistics {
        try pool.read { db in
            let objects = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM inode WHERE kind = 'f'")!
            let live = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, COALESCE(SUM(plain_size), 0) AS plain, COALESCE(SUM(sealed_size), 0) AS sealed
                FROM chunk WHERE refcount > 0
                """)!
            let all = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, COALESCE(SUM(sealed_size), 0) AS sealed,
                       COALESCE(SUM(CASE WHEN refcount = 0 AND entry_refs = 0 THEN sealed_size ELSE 0 END), 0) AS unreferenced,
                       COALESCE(SUM(CASE WHEN refcount = 0 AND entry_refs = 0 THEN 1 ELSE 0 END), 0) AS unreferencedCount
                FROM chunk
                """)!
            let replicas = try Int64.fetchOne(db, sql: """
                SELECT COALESCE(SUM(c.sealed_size), 0) FROM chunk_location l JOIN chunk c ON c.id = l.chunk_id
                """) ?? 0
            return CatalogStatistics(objects: objects["n"], logicalBytes: objects["bytes"], uniqueChunks: live["n"],
                                     uniquePlainBytes: live["plain"], uniqueSealedBytes: live["sealed"], totalChunks: all["n"],
                                     storedBytes: all["sealed"], replicaBytes: replicas,
                                     unreferencedChunks: all["unreferencedCount"], unreferencedBytes: all["unreferenced"])
        }
    }

    // MARK: - Snapshots

    /// A consistent page-for-page copy of the catalog at `path` (SQLite's backup API), for snapshots:
    /// pages that did not change stay where they were, so unchanged stretches of the file dedupe.
    public func backup(to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        let queue = try DatabaseQueue(path: path)
        try pool.backup(to: queue)
        try queue.close()
    }

    // MARK: - Durability

    /// Makes every transaction committed so far durable (a relaxed catalog's commits survive a crash
    /// of the process but not of the machine): one commit with synchronous=FULL syncs the log.
    public func sync() throws { try Self.sync(pool, relaxed: relaxed) }

    static func sync(_ pool: DatabasePool, relaxed: Bool) throws {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            defer { try? db.execute(sql: "PRAGMA synchronous = \(relaxed ? "NORMAL" : "FULL")") }
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('last_sync', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [String(Self.now())])
        }
    }

    // MARK: - Shared by every aggregate

    /// A chunk ID read from the catalog; a row that is not 32 bytes is damage, not a crash.
    static func chunkID(_ data: Data) throws -> ChunkID {
        guard data.count == ChunkID.byteCount else {
            throw StoreError(.integrity, "the catalog holds a chunk ID of \(data.count) bytes: the catalog is damaged")
        }
        return ChunkID(bytes: [UInt8](data))
    }

    /// Now, in nanoseconds since 1970 (the catalog's times).
    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000_000) }
}
