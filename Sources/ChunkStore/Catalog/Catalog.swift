import Foundation
import GRDB

/// The local catalog: one SQLite database in WAL mode (GRDB over the system libsqlite3).
///
/// It holds the providers, the buckets, each bucket's namespace as an inode table (so that the S3
/// key `a/b/c.txt` and the mount path `/a/b/c.txt` are one row, and renaming a folder is one row
/// update), every chunk with its sizes, reference count and locations, and each manifest's body.
/// Schema changes are migrations (Catalog+Schema.swift); a database is never rewritten by hand.
public final class Catalog: Sendable {
    public let path: String
    let pool: DatabasePool
    /// Commits are not synced one by one (synchronous=NORMAL): they survive the process's crash,
    /// and `sync` makes them survive the machine's. For the mount, whose every create is a commit.
    public let relaxed: Bool

    /// Opens (and migrates) the catalog at `path`, creating it when `create` is set. `readOnly` opens
    /// it without migrating or writing (to diagnose a repository that cannot be opened for work).
    public init(path: String, create: Bool = false, relaxed: Bool = false, readOnly: Bool = false) throws {
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
            if !readOnly { try Self.migrator.migrate(pool) }
        } catch let error as DatabaseError {
            throw StoreError(.io, "cannot open the catalog \(path): \(error.message ?? error.description)")
        }
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

    // MARK: - Providers

    public func addProvider(name: String, kind: String, config: String, quota: Int64?, sealedSecret: [UInt8]? = nil,
                            group: String? = nil) throws -> ProviderRecord {
        try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM provider WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "a provider named \(name) already exists; pick another name")
            }
            try db.execute(sql: """
                INSERT INTO provider(name, kind, config, quota, created_at, sealed_secret, fault_group) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [name, kind, config, quota, Date().timeIntervalSince1970, sealedSecret.map { Data($0) }, group])
            let id = db.lastInsertedRowID
            try Self.providersChanged(db)
            return ProviderRecord(id: id, name: name, kind: kind, config: config, quota: quota, usedBytes: 0,
                                  chunkCount: 0, sealedSecret: sealedSecret, group: group ?? name)
        }
    }

    /// Every provider, with the bytes and chunks the catalog places on it.
    public func providers() throws -> [ProviderRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT p.id, p.name, p.kind, p.config, p.quota, p.sealed_secret, p.fault_group, p.state,
                       p.health_breaker, p.health_latency, p.health_error_rate, p.health_requests, p.health_checked_at,
                       p.health_problem,
                       COALESCE(SUM(c.sealed_size), 0) AS used, COUNT(c.id) AS chunks
                FROM provider p
                LEFT JOIN chunk_location l ON l.provider_id = p.id
                LEFT JOIN chunk c ON c.id = l.chunk_id
                GROUP BY p.id ORDER BY p.name
                """).map { row in
                var health: ProviderHealthRecord?
                if let breaker = row["health_breaker"] as String? {
                    health = ProviderHealthRecord(breaker: breaker, latencySeconds: row["health_latency"],
                                                  errorRate: row["health_error_rate"] ?? 0, requests: row["health_requests"] ?? 0,
                                                  checkedAt: row["health_checked_at"] ?? 0, problem: row["health_problem"])
                }
                return ProviderRecord(id: row["id"], name: row["name"], kind: row["kind"], config: row["config"], quota: row["quota"],
                                      usedBytes: row["used"], chunkCount: row["chunks"],
                                      sealedSecret: (row["sealed_secret"] as Data?).map { [UInt8]($0) },
                                      group: row["fault_group"] ?? row["name"], state: row["state"], health: health)
            }
        }
    }

    /// A counter every change to the providers (added, draining, removed) raises in the same
    /// transaction. Long-running processes read it before placing a chunk (one indexed read) and
    /// reload their providers when it moved.
    public func providersVersion() throws -> Int64 {
        try pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", arguments: [Self.providersVersionKey]) ?? 0
        }
    }

    static let providersVersionKey = "providers_version"

    static func providersChanged(_ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO meta(key, value) VALUES (?, '1')
            ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
            """, arguments: [providersVersionKey])
    }

    // MARK: - Buckets

    public func createBucket(_ name: String, replicas: Int, minReplicas: Int = 1, owner: Int64? = nil) throws -> BucketRecord {
        try Names.validateBucket(name)
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM bucket WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "bucket \(name) already exists")
            }
            let now = Self.now()
            try db.execute(sql: "INSERT INTO bucket(name, replicas, min_replicas, created_at, owner_id) VALUES (?, ?, ?, ?, ?)",
                           arguments: [name, replicas, minReplicas, now, owner])
            let bucketID = db.lastInsertedRowID
            try db.execute(sql: """
                INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime)
                VALUES (?, NULL, '', 'd', ?, ?, ?, 0, ?, ?)
                """, arguments: [bucketID, 0o755, getuid(), getgid(), now, now])
            let root = db.lastInsertedRowID
            try db.execute(sql: "UPDATE bucket SET root_inode = ? WHERE id = ?", arguments: [root, bucketID])
            return BucketRecord(id: bucketID, name: name, rootInode: root, replicas: replicas, createdAt: now, minReplicas: minReplicas,
                                ownerID: owner)
        }
    }

    public func buckets() throws -> [BucketSummary] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT b.id, b.name, b.root_inode, b.replicas, b.created_at, b.min_replicas, b.owner_id,
                       (SELECT COUNT(*) FROM inode i WHERE i.bucket_id = b.id AND i.kind = 'f') AS objects,
                       (SELECT COALESCE(SUM(size), 0) FROM inode i WHERE i.bucket_id = b.id AND i.kind = 'f') AS bytes
                FROM bucket b ORDER BY b.name
                """).map { row in
                BucketSummary(bucket: BucketRecord(id: row["id"], name: row["name"], rootInode: row["root_inode"],
                                                   replicas: row["replicas"], createdAt: row["created_at"],
                                                   minReplicas: row["min_replicas"], ownerID: row["owner_id"]),
                              objects: row["objects"], bytes: row["bytes"])
            }
        }
    }

    public func bucket(_ name: String) throws -> BucketRecord {
        try Names.validateBucket(name)
        let row = try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name, root_inode, replicas, created_at, min_replicas, owner_id FROM bucket WHERE name = ?",
                             arguments: [name])
        }
        guard let row else {
            throw StoreError(.notFound, "no bucket named \(name): a67 bucket ls lists them, a67 bucket create \(name) makes it")
        }
        return BucketRecord(id: row["id"], name: row["name"], rootInode: row["root_inode"], replicas: row["replicas"],
                            createdAt: row["created_at"], minReplicas: row["min_replicas"], ownerID: row["owner_id"])
    }

    /// Removes an empty bucket; refuses one that holds anything.
    public func removeBucket(_ name: String) throws {
        let bucket = try self.bucket(name)
        try pool.write { db in
            let entries = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM inode WHERE bucket_id = ? AND parent_id IS NOT NULL",
                                           arguments: [bucket.id]) ?? 0
            guard entries == 0 else {
                throw StoreError(.conflict, "bucket \(name) is not empty (\(entries) entries): remove its objects first (a67 ls \(name) --recursive)")
            }
            // Unfinished multipart uploads go with it, releasing their parts' chunks.
            for upload in try String.fetchAll(db, sql: "SELECT id FROM upload WHERE bucket_id = ?", arguments: [bucket.id]) {
                try Self.dropUpload(upload, db)
            }
            // Its deleted objects go with it: they could not be brought back into a bucket that is gone.
            for manifest in try Data.fetchAll(db, sql: "SELECT manifest FROM trash WHERE bucket_id = ?", arguments: [bucket.id]) {
                try Self.adjustManifest(try Self.chunkID(manifest), by: -1, db)
            }
            try db.execute(sql: "DELETE FROM trash WHERE bucket_id = ?", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM xattr WHERE inode_id IN (SELECT id FROM inode WHERE bucket_id = ?)", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM inode WHERE bucket_id = ?", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM bucket WHERE id = ?", arguments: [bucket.id])
        }
    }

    // MARK: - Chunks

    /// The locations of a chunk the catalog knows to be stored, or nil. Answers dedupe from the catalog,
    /// never by asking providers.
    ///
    /// A synchronous read (microseconds): GRDB's async read keeps its reader connection until the
    /// awaiting task resumes, so with every cooperative thread blocked in a synchronous read (a
    /// server under load) the readers never come back. The catalog uses no async reads for that reason.
    public func chunkLocations(_ id: ChunkID) async throws -> [Int64]? { try locations(of: id) }

    private func locations(of id: ChunkID) throws -> [Int64]? {
        try pool.read { db in
            let ids = try Int64.fetchAll(db, sql: "SELECT provider_id FROM chunk_location WHERE chunk_id = ?",
                                         arguments: [Data(id.bytes)])
            return ids.isEmpty ? nil : ids
        }
    }

    /// Records chunks that are durably stored (refcount 0 until a manifest refers to them).
    public func recordChunks(_ chunks: [StoredChunk]) async throws {
        guard !chunks.isEmpty else { return }
        try await pool.write { db in try Self.insert(chunks, db) }
    }

    static func insert(_ chunks: [StoredChunk], _ db: Database) throws {
        let now = now()
        for chunk in chunks {
            try db.execute(sql: """
                INSERT INTO chunk(id, plain_size, sealed_size, created_at, want) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET want = MAX(want, excluded.want)
                """, arguments: [Data(chunk.id.bytes), chunk.plainSize, chunk.sealedSize, now, chunk.want])
            for provider in chunk.providers {
                try db.execute(sql: "INSERT OR IGNORE INTO chunk_location(chunk_id, provider_id) VALUES (?, ?)",
                               arguments: [Data(chunk.id.bytes), provider])
            }
        }
    }

    /// Every (chunk, provider) pair the catalog records, for checks that each one is really there.
    public func allLocations() throws -> [(chunk: ChunkID, provider: Int64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT chunk_id, provider_id FROM chunk_location").map { row in
                (try Self.chunkID(row["chunk_id"] as Data), row["provider_id"] as Int64)
            }
        }
    }

    // MARK: - Objects

    /// Makes an object visible: records its last chunks and manifest, creates the folders of its key,
    /// points the key's entry at the manifest (replacing an older object) and adjusts reference counts,
    /// all in one transaction. Every chunk the manifest lists must already be recorded.
    /// With `upload`, the multipart upload whose parts the manifest lists is forgotten in the same
    /// transaction (its parts' references pass to the object).
    /// With `condition`, the key's current object must meet it (checked in the same transaction);
    /// when it does not, `ObjectConditionFailed` is thrown and only `chunks` are recorded (unreferenced,
    /// for gc), the upload is kept.
    public func commitObject(bucket: BucketRecord, segments: [String], manifestID: ChunkID, manifest: Manifest,
                             chunks: [StoredChunk], owner: (uid: UInt32, gid: UInt32, mode: UInt32),
                             releasing upload: String? = nil, condition: ObjectCondition? = nil) async throws {
        let body = manifest.encoded
        let refused = try await pool.write { db -> ObjectConditionFailed? in
            // The bucket may have been removed while the object's chunks were stored.
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM bucket WHERE id = ?", arguments: [bucket.id]) == true else {
                throw StoreError(.notFound, "no bucket named \(bucket.name): it was removed while the object was being stored")
            }
            if let upload, try Bool.fetchOne(db, sql: "SELECT 1 FROM upload WHERE id = ?", arguments: [upload]) != true {
                throw StoreError(.notFound, "no multipart upload \(upload) (it was completed or aborted)")
            }
            try Self.insert(chunks, db)
            if let condition, let failure = condition.failure(current: try Self.currentETag(bucket: bucket, segments, db)) {
                return failure
            }
            let distinct = Set(manifest.entries.map(\.id))
            let missing = try distinct.filter { id in
                try !Self.isStored(id, db)
            }
            guard missing.isEmpty else {
                throw StoreError(.internal, "object commit refused: \(missing.count) of its chunks are not recorded as stored")
            }
            try db.execute(sql: "INSERT INTO manifest(id, size, chunk_count, body) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                           arguments: [Data(manifestID.bytes), manifest.size, manifest.entries.count, Data(body)])
            let now = Self.now()
            let parent = try Self.makeFolders(bucket: bucket, segments.dropLast(), now: now, owner: owner, db)
            let name = segments.last!
            var replaced = false
            if let named = try Row.fetchOne(db, sql: "SELECT id, COALESCE(link_of, id) AS file FROM inode WHERE parent_id = ? AND name = ?",
                                            arguments: [parent, name]),
               let existing = try Row.fetchOne(db, sql: "SELECT id, kind, manifest, special FROM inode WHERE id = ?",
                                               arguments: [named["file"] as Int64]) {
                let kind: String = existing["kind"]
                if kind == "d" {
                    throw StoreError(.conflict, "\(bucket.name)/\(segments.joined(separator: "/")) is a folder; an object cannot replace it")
                }
                if kind == "f" && existing["special"] == nil {
                    // A file's new content: every name of it (hard links made in a mount) sees the object.
                    try db.execute(sql: "UPDATE inode SET manifest = ?, size = ?, mtime = ?, ctime = ? WHERE id = ?",
                                   arguments: [Data(manifestID.bytes), manifest.size, now, now, existing["id"] as Int64])
                    try Self.adjustManifest(manifestID, by: 1, db)
                    if let old = existing["manifest"] as Data? { try Self.adjustManifest(try Self.chunkID(old), by: -1, db) }
                    replaced = true
                } else {
                    // A symlink or special file made in a mount is no object; the object takes its name, as S3
                    // overwrites any key (and as rename(2) onto it would). Its other names, if any, keep it.
                    try Self.dropName(named["id"], trash: false, now: now, db)
                }
            }
            if !replaced {
                try db.execute(sql: """
                    INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime, manifest)
                    VALUES (?, ?, ?, 'f', ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [bucket.id, parent, name, owner.mode, owner.uid, owner.gid, manifest.size, now, now,
                                     Data(manifestID.bytes)])
                try Self.adjustManifest(manifestID, by: 1, db)
            }
            if let upload { try Self.dropUpload(upload, db) }
            return nil
        }
        if let refused { throw refused }
    }

    /// The object at `segments`, or `notFound`.
    public func object(bucket: BucketRecord, segments: [String]) throws -> ObjectRecord {
        let row = try pool.read { db -> Row? in
            guard let row = try Self.resolve(bucket: bucket, segments, db) else { return nil }
            // A hard link's extra name reads as the file it names.
            let id = try Int64.fetchOne(db, sql: "SELECT COALESCE(link_of, id) FROM inode WHERE id = ?", arguments: [row]) ?? row
            return try Row.fetchOne(db, sql: """
                SELECT i.id, i.kind, i.size, i.mtime, i.manifest, i.special, m.body FROM inode i
                LEFT JOIN manifest m ON m.id = i.manifest WHERE i.id = ?
                """, arguments: [id])
        }
        let key = segments.joined(separator: "/")
        guard let row else {
            throw StoreError(.notFound, "no object \(bucket.name)/\(key): a67 ls \(bucket.name) lists what is there")
        }
        guard let id = row["manifest"] as Data?, row["kind"] as String == "f" else {
            throw StoreError(.notFound, "\(bucket.name)/\(key) is \(Self.whatIsNot(kind: row["kind"], special: row["special"])), not an object")
        }
        guard let body = row["body"] as Data? else {
            throw StoreError(.internal, "object \(bucket.name)/\(key) has no manifest in the catalog")
        }
        return ObjectRecord(key: key, size: row["size"], mtime: row["mtime"], manifestID: try Self.chunkID(id),
                            manifest: try Manifest(decoding: [UInt8](body)))
    }

    /// Removes the object at `segments`, and the folders that existed only because of it. The object
    /// goes to the bucket's trash, still holding its chunks, until `purgeTrash` drops it (a67 gc, after
    /// the retention period); `undelete` brings it back. With `condition`, the object must meet it
    /// (checked in the same transaction), else `ObjectConditionFailed` and nothing changes.
    public func removeObject(bucket: BucketRecord, segments: [String], condition: ObjectCondition? = nil) throws {
        try pool.write { db in
            let key = segments.joined(separator: "/")
            if let condition, let failure = condition.failure(current: try Self.currentETag(bucket: bucket, segments, db)) {
                throw failure
            }
            guard let id = try Self.resolve(bucket: bucket, segments, db),
                  let row = try Row.fetchOne(db, sql: """
                      SELECT i.kind, i.parent_id, t.manifest, t.special FROM inode i JOIN inode t ON t.id = COALESCE(i.link_of, i.id)
                      WHERE i.id = ?
                      """, arguments: [id]) else {
                throw StoreError(.notFound, "no object \(bucket.name)/\(key)")
            }
            guard row["kind"] as String == "f", row["manifest"] != nil else {
                let what = Self.whatIsNot(kind: row["kind"], special: row["special"])
                throw StoreError(.notFound, "\(bucket.name)/\(key) is \(what), not an object\(what == "a folder" ? "" : ": remove it in the mount")")
            }
            // The namespace entry's reference moves to the trash entry: the chunks stay referenced.
            // A file with other names (hard links made in a mount) keeps its content under those.
            try Self.dropName(id, trash: true, now: Self.now(), db)
            // Prune implicit folders left empty, up to the root.
            var parent: Int64? = row["parent_id"]
            while let folder = parent, folder != bucket.rootInode {
                let info = try Row.fetchOne(db, sql: "SELECT parent_id, implicit FROM inode WHERE id = ?", arguments: [folder])
                guard let info, info["implicit"] as Bool,
                      try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM inode WHERE parent_id = ?", arguments: [folder]) == 0 else { break }
                try db.execute(sql: "DELETE FROM inode WHERE id = ?", arguments: [folder])
                parent = info["parent_id"]
            }
        }
    }

    /// Lists a bucket the way S3 does: entries whose key starts with `prefix`, in byte order of key.
    /// Without `recursive`, keys below the next `/` after the prefix collapse into one folder entry.
    /// With `startAfter`, only entries that sort after it (folders: whose whole key range does).
    public func list(bucket: BucketRecord, prefix: String, recursive: Bool, startAfter: String? = nil,
                     visit: (ListEntry) throws -> Void) throws {
        let folderPath = prefix.lastIndex(of: "/").map { String(prefix[..<$0]) } ?? ""
        let namePrefix = prefix.lastIndex(of: "/").map { String(prefix[prefix.index(after: $0)...]) } ?? prefix
        let segments = folderPath.isEmpty ? [] : folderPath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        try pool.read { db in
            guard let folder = try Self.resolve(bucket: bucket, segments, db),
                  try String.fetchOne(db, sql: "SELECT kind FROM inode WHERE id = ?", arguments: [folder]) == "d" else { return }
            let base = folderPath.isEmpty ? "" : folderPath + "/"
            try Self.walk(folder: folder, base: base, namePrefix: namePrefix, recursive: recursive,
                          startAfter: startAfter.map { Array($0.utf8) }, db, visit)
        }
    }

    /// The attributes (content type, ETag, user metadata) of each manifest, from the catalog's copies.
    public func attributes(of manifests: [ChunkID]) throws -> [ChunkID: [String: String]] {
        try pool.read { db in
            var out: [ChunkID: [String: String]] = [:]
            for id in Set(manifests) {
                guard let body = try Data.fetchOne(db, sql: "SELECT body FROM manifest WHERE id = ?", arguments: [Data(id.bytes)]) else { continue }
                out[id] = try Manifest(decoding: [UInt8](body)).attributes
            }
            return out
        }
    }

    /// One page of a listing: at most `limit` entries after `startAfter`, and whether more follow.
    public func listPage(bucket: BucketRecord, prefix: String, recursive: Bool, startAfter: String?,
                         limit: Int) throws -> (entries: [ListEntry], truncated: Bool) {
        struct PageFull: Error {}
        var entries: [ListEntry] = []
        var truncated = false
        do {
            try list(bucket: bucket, prefix: prefix, recursive: recursive, startAfter: startAfter) { entry in
                if entries.count >= limit {
                    truncated = true
                    throw PageFull()
                }
                entries.append(entry)
            }
        } catch is PageFull {}
        return (entries, truncated)
    }

    /// Children in key order: a folder sorts as its name followed by `/`, which makes a depth-first
    /// walk come out in exactly the byte order of full keys, as S3 lists them.
    private static func walk(folder: Int64, base: String, namePrefix: String, recursive: Bool, startAfter: [UInt8]?,
                             _ db: Database, _ visit: (ListEntry) throws -> Void) throws {
        let rows = try Row.fetchAll(db, sql: """
            SELECT i.id, i.name, i.kind, COALESCE(t.size, i.size) AS size, COALESCE(t.mtime, i.mtime) AS mtime,
                   COALESCE(t.manifest, i.manifest) AS manifest
            FROM inode i LEFT JOIN inode t ON t.id = i.link_of
            WHERE i.parent_id = ? AND (i.kind = 'd' OR COALESCE(t.manifest, i.manifest) IS NOT NULL) AND substr(i.name, 1, length(?)) = ?
            ORDER BY CAST(i.name || CASE i.kind WHEN 'd' THEN '/' ELSE '' END AS BLOB)
            """, arguments: [folder, namePrefix, namePrefix])
        for row in rows {
            let name: String = row["name"]
            let kind: String = row["kind"]
            if kind == "d" {
                let key = base + name + "/"
                if recursive {
                    var after = startAfter
                    if let start = startAfter {
                        if start.starts(with: key.utf8) {
                            // The listing resumes inside this folder.
                        } else if key.utf8.lexicographicallyPrecedes(start) {
                            continue
                        } else {
                            after = nil
                        }
                    }
                    try walk(folder: row["id"], base: key, namePrefix: "", recursive: true, startAfter: after, db, visit)
                } else {
                    if let start = startAfter, !start.lexicographicallyPrecedes(key.utf8) { continue }
                    try visit(ListEntry(key: key, isFolder: true, size: 0, mtime: row["mtime"]))
                }
            } else {
                let key = base + name
                if let start = startAfter, !start.lexicographicallyPrecedes(key.utf8) { continue }
                try visit(ListEntry(key: key, isFolder: false, size: row["size"], mtime: row["mtime"],
                                    manifestID: (row["manifest"] as Data?).flatMap { try? Self.chunkID($0) }))
            }
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

    // MARK: - Helpers inside transactions

    /// A chunk ID read from the catalog; a row that is not 32 bytes is damage, not a crash.
    static func chunkID(_ data: Data) throws -> ChunkID {
        guard data.count == ChunkID.byteCount else {
            throw StoreError(.integrity, "the catalog holds a chunk ID of \(data.count) bytes: the catalog is damaged")
        }
        return ChunkID(bytes: [UInt8](data))
    }

    /// What a namespace entry that is not an object is, for messages: "a folder", "a symbolic link
    /// (made in a mount)", "a FIFO (made in a mount)"... (`special`: a special file's st_mode type bits).
    /// With `object`, a regular file is "an object".
    static func whatIsNot(kind: String, special: Int64?, object: Bool = false) -> String {
        switch (kind, special.map { $0 & 0o170000 }) {
        case ("d", _): return "a folder"
        case ("l", _): return "a symbolic link (made in a mount)"
        case (_, 0o010000?): return "a FIFO (made in a mount)"
        case (_, 0o140000?): return "a socket (made in a mount)"
        case (_, 0o020000?): return "a character device (made in a mount)"
        case (_, 0o060000?): return "a block device (made in a mount)"
        case (_, _?): return "a special file (made in a mount)"
        default: return object ? "an object" : "a file with no content recorded"
        }
    }

    /// Whether chunk `id` is recorded with a copy on at least one provider: what a commit needs of
    /// every chunk it makes part of an object (a chunk whose copies were all forgotten, by a provider's
    /// removal or by gc, would make an object that cannot be read).
    static func isStored(_ id: ChunkID, _ db: Database) throws -> Bool {
        try Bool.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM chunk_location WHERE chunk_id = ? LIMIT 1"),
                          arguments: [Data(id.bytes)]) == true
    }

    /// Now, in nanoseconds since 1970 (the catalog's times).
    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000_000) }

    /// The inode at `segments` below the bucket's root, or nil.
    static func resolve(bucket: BucketRecord, _ segments: [String], _ db: Database) throws -> Int64? {
        var current = bucket.rootInode
        for segment in segments {
            guard let next = try Int64.fetchOne(db, sql: "SELECT id FROM inode WHERE parent_id = ? AND name = ?",
                                                arguments: [current, segment]) else { return nil }
            current = next
        }
        return current
    }

    /// Finds or creates (as implicit folders) each folder of `segments`; returns the last one's inode.
    static func makeFolders(bucket: BucketRecord, _ segments: ArraySlice<String>, now: Int64,
                            owner: (uid: UInt32, gid: UInt32, mode: UInt32), _ db: Database) throws -> Int64 {
        var current = bucket.rootInode
        var path: [String] = []
        for segment in segments {
            path.append(segment)
            if let row = try Row.fetchOne(db, sql: "SELECT id, kind FROM inode WHERE parent_id = ? AND name = ?",
                                          arguments: [current, segment]) {
                guard row["kind"] as String == "d" else {
                    let special = try Int64.fetchOne(db, sql: "SELECT t.special FROM inode i JOIN inode t ON t.id = COALESCE(i.link_of, i.id) WHERE i.id = ?",
                                                     arguments: [row["id"] as Int64])
                    throw StoreError(.conflict, "\(bucket.name)/\(path.joined(separator: "/")) is \(whatIsNot(kind: row["kind"], special: special, object: true)), so it cannot also be a folder")
                }
                current = row["id"]
            } else {
                try db.execute(sql: """
                    INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime, implicit)
                    VALUES (?, ?, ?, 'd', ?, ?, ?, 0, ?, ?, 1)
                    """, arguments: [bucket.id, current, segment, 0o755, owner.uid, owner.gid, now, now])
                current = db.lastInsertedRowID
            }
        }
        return current
    }

    /// Adds `delta` to a manifest chunk's `entry_refs` (the number of namespace entries pointing at it).
    /// When that goes from 0 to 1 or from 1 to 0, each distinct data chunk the manifest lists gains or
    /// loses one `refcount`. The two counts are separate columns because one chunk row can be both a
    /// manifest and a data chunk (a file whose bytes equal a manifest's encoding has the same ID).
    static func adjustManifest(_ id: ChunkID, by delta: Int, _ db: Database) throws {
        let key = Data(id.bytes)
        guard let before = try Int.fetchOne(try db.cachedStatement(sql: "SELECT entry_refs FROM chunk WHERE id = ?"), arguments: [key]) else {
            throw StoreError(.internal, "manifest chunk \(id.short) is not recorded")
        }
        let after = before + delta
        guard after >= 0 else { throw StoreError(.internal, "manifest chunk \(id.short) reference count would go negative") }
        try db.cachedStatement(sql: "UPDATE chunk SET entry_refs = ? WHERE id = ?").execute(arguments: [after, key])
        guard (before == 0) != (after == 0) else { return }
        guard let body = try Data.fetchOne(db, sql: "SELECT body FROM manifest WHERE id = ?", arguments: [key]) else {
            throw StoreError(.internal, "manifest \(id.short) has no body in the catalog")
        }
        let change = after > 0 ? 1 : -1
        for chunk in Set(try Manifest(decoding: [UInt8](body)).entries.map(\.id)) {
            try db.execute(sql: "UPDATE chunk SET refcount = refcount + ? WHERE id = ?", arguments: [change, Data(chunk.bytes)])
        }
    }
}
