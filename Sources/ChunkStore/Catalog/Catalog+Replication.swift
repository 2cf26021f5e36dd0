import Foundation
import GRDB

/// What the Replicator's maintenance (repair, drain, scrub, gc, undelete, status) asks of the catalog.
extension Catalog {
    /// A chunk with where it is and how many replicas it should have.
    public struct ChunkPlacement: Sendable, Equatable {
        public let id: ChunkID
        public let plainSize: Int
        public let sealedSize: Int
        public let want: Int
        public let providers: [Int64]
        public init(id: ChunkID, plainSize: Int, sealedSize: Int, want: Int, providers: [Int64]) {
            self.id = id
            self.plainSize = plainSize
            self.sealedSize = sealedSize
            self.want = want
            self.providers = providers
        }
    }

    // MARK: - Locations

    /// Forgets that `provider` holds `chunk` (its copy is missing or damaged, or was moved away): the
    /// chunk then counts as under-replicated until repair stores it again. Unless `evenLast`, the last
    /// recorded copy is kept: a provider that answers "not found" by mistake must not erase the record.
    public func forgetLocation(_ chunk: ChunkID, provider: Int64, evenLast: Bool = false) throws {
        try pool.write { db in
            let key = Data(chunk.bytes)
            if !evenLast, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM chunk_location WHERE chunk_id = ?", arguments: [key]) ?? 0 <= 1 {
                return
            }
            try db.execute(sql: "DELETE FROM chunk_location WHERE chunk_id = ? AND provider_id = ?", arguments: [key, provider])
        }
    }

    /// Records new copies of a known chunk.
    public func addLocations(_ chunk: ChunkID, providers: [Int64]) throws {
        try pool.write { db in
            for provider in providers {
                try db.execute(sql: "INSERT OR IGNORE INTO chunk_location(chunk_id, provider_id) VALUES (?, ?)",
                               arguments: [Data(chunk.bytes), provider])
            }
        }
    }

    static let placementSelect = """
        SELECT c.id, c.plain_size, c.sealed_size, c.want, group_concat(l.provider_id) AS providers
        FROM chunk c LEFT JOIN chunk_location l ON l.chunk_id = c.id

        """

    static func placement(_ row: Row) throws -> ChunkPlacement {
        let list: String = row["providers"] ?? ""
        return ChunkPlacement(id: try chunkID(row["id"]), plainSize: row["plain_size"], sealedSize: row["sealed_size"],
                              want: row["want"], providers: list.split(separator: ",").compactMap { Int64($0) }.sorted())
    }

    /// How many replicas a chunk that wants `want` can have: no more than there are failure groups
    /// among the active providers.
    static let reachableWant = """
        MIN(c.want, (SELECT COUNT(DISTINCT COALESCE(p.fault_group, p.name)) FROM provider p WHERE p.state = 'active'))
        """

    /// Chunks still in use (by an object or a deleted object in the trash) with fewer recorded replicas
    /// than they should have (capped by the number of failure groups), fewest first.
    public func underReplicated() throws -> [ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.refcount > 0 OR c.entry_refs > 0
                GROUP BY c.id HAVING COUNT(l.provider_id) < \(Self.reachableWant) ORDER BY COUNT(l.provider_id), c.id
                """).map(Self.placement)
        }
    }

    /// Every chunk in use (by an object or by a deleted object in the trash), with its locations.
    public func chunksInUse() throws -> [ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.refcount > 0 OR c.entry_refs > 0 GROUP BY c.id ORDER BY c.id
                """).map(Self.placement)
        }
    }

    /// Every chunk with a copy on `provider`.
    public func chunks(on provider: Int64) throws -> [ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.id IN (SELECT chunk_id FROM chunk_location WHERE provider_id = ?) GROUP BY c.id ORDER BY c.id
                """, arguments: [provider]).map(Self.placement)
        }
    }

    /// Every chunk the catalog records, with its locations.
    public func allChunks() throws -> [ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + " GROUP BY c.id ORDER BY c.id").map(Self.placement)
        }
    }

    // MARK: - Providers

    public func setProviderState(_ provider: Int64, _ state: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE provider SET state = ? WHERE id = ?", arguments: [state, provider])
            try Self.providersChanged(db)
        }
    }

    public func setProviderHealth(_ provider: Int64, _ health: ProviderHealthRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE provider SET health_breaker = ?, health_latency = ?, health_error_rate = ?, health_requests = ?,
                       health_checked_at = ?, health_problem = ? WHERE id = ?
                """, arguments: [health.breaker, health.latencySeconds, health.errorRate, health.requests, health.checkedAt,
                                 health.problem, provider])
        }
    }

    /// Removes a provider from the catalog with every location it held. Refuses while it holds the
    /// only copy of a chunk in use, or leased by a running process (a mount's block not yet committed).
    public func removeProvider(_ provider: Int64, name: String) throws {
        try pool.write { db in
            try Self.dropDeadLeases(db)
            let sole = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM chunk_location l JOIN chunk c ON c.id = l.chunk_id
                WHERE l.provider_id = ?
                  AND (c.refcount > 0 OR c.entry_refs > 0 OR EXISTS (SELECT 1 FROM chunk_lease k WHERE k.chunk_id = c.id))
                  AND (SELECT COUNT(*) FROM chunk_location o WHERE o.chunk_id = l.chunk_id) = 1
                """, arguments: [provider]) ?? 0
            guard sole == 0 else {
                throw StoreError(.conflict, "provider \(name) holds the only copy of \(sole) chunk(s) in use: run a67 provider drain \(name) first, which moves them to the other providers")
            }
            try db.execute(sql: "DELETE FROM chunk_location WHERE provider_id = ?", arguments: [provider])
            try db.execute(sql: "DELETE FROM orphan WHERE provider_id = ?", arguments: [provider])
            try db.execute(sql: "DELETE FROM provider WHERE id = ?", arguments: [provider])
            try Self.providersChanged(db)
        }
    }

    // MARK: - Trash

    public struct TrashEntry: Sendable, Equatable {
        public let id: Int64
        public let bucket: String
        public let key: String
        public let size: Int64
        /// Nanoseconds since 1970.
        public let deletedAt: Int64
    }

    /// Deleted objects still in the trash, newest first; of one bucket (and key) when given.
    public func trash(bucket: BucketRecord? = nil, key: String? = nil) throws -> [TrashEntry] {
        try pool.read { db in
            var sql = "SELECT t.id, b.name, t.key, t.size, t.deleted_at FROM trash t JOIN bucket b ON b.id = t.bucket_id"
            var arguments: StatementArguments = []
            if let bucket {
                sql += " WHERE t.bucket_id = ?"
                arguments += [bucket.id]
                if let key {
                    sql += " AND t.key = ?"
                    arguments += [key]
                }
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY t.deleted_at DESC, t.id DESC", arguments: arguments).map { row in
                TrashEntry(id: row["id"], bucket: row["name"], key: row["key"], size: row["size"], deletedAt: row["deleted_at"])
            }
        }
    }

    /// Brings back the most recently deleted object at `segments`. Refuses when an object is there now.
    @discardableResult
    public func undelete(bucket: BucketRecord, segments: [String]) throws -> TrashEntry {
        let key = segments.joined(separator: "/")
        return try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT id, manifest, size, mtime, mode, uid, gid, deleted_at FROM trash WHERE bucket_id = ? AND key = ?
                ORDER BY deleted_at DESC, id DESC LIMIT 1
                """, arguments: [bucket.id, key]) else {
                throw StoreError(.notFound, "\(bucket.name)/\(key) is not in the trash: a67 undelete --list \(bucket.name) shows what can be brought back")
            }
            if try Self.resolve(bucket: bucket, segments, db) != nil {
                throw StoreError(.conflict, "\(bucket.name)/\(key) exists now: remove or rename it first, then undelete")
            }
            let now = Self.now()
            let owner = (uid: UInt32(row["uid"] as Int64), gid: UInt32(row["gid"] as Int64), mode: UInt32(row["mode"] as Int64))
            let parent = try Self.makeFolders(bucket: bucket, segments.dropLast(), now: now, owner: owner, db)
            try db.execute(sql: """
                INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime, manifest)
                VALUES (?, ?, ?, 'f', ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [bucket.id, parent, segments.last!, owner.mode, owner.uid, owner.gid, row["size"] as Int64,
                                 row["mtime"] as Int64, now, row["manifest"] as Data])
            // The trash entry's reference moves back to the namespace entry.
            try db.execute(sql: "DELETE FROM trash WHERE id = ?", arguments: [row["id"] as Int64])
            return TrashEntry(id: row["id"], bucket: bucket.name, key: key, size: row["size"], deletedAt: row["deleted_at"])
        }
    }

    /// Drops trash entries deleted before `cutoff` (nanoseconds since 1970); their chunks lose the
    /// reference. Returns how many were dropped.
    public func purgeTrash(deletedBefore cutoff: Int64) throws -> Int {
        try pool.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, manifest FROM trash WHERE deleted_at < ?", arguments: [cutoff])
            for row in rows {
                try Self.adjustManifest(try Self.chunkID(row["manifest"]), by: -1, db)
                try db.execute(sql: "DELETE FROM trash WHERE id = ?", arguments: [row["id"] as Int64])
            }
            return rows.count
        }
    }

    // MARK: - Garbage collection

    /// Chunks nothing refers to, recorded before `cutoff` (nanoseconds since 1970).
    public func unreferencedChunks(recordedBefore cutoff: Int64) throws -> [ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.refcount = 0 AND c.entry_refs = 0 AND c.created_at < ? GROUP BY c.id ORDER BY c.id
                """, arguments: [cutoff]).map(Self.placement)
        }
    }

    /// Forgets a chunk once its copies are deleted, if it is still unreferenced (a put may have
    /// reused it since it was chosen). Returns whether it was forgotten.
    /// Nor if a live process leases it by now (a mount that started rewriting a file whose old content
    /// was replaced elsewhere leases that content's manifest without the repository lock).
    public func forgetUnreferencedChunk(_ id: ChunkID, listings: LeasedListings = LeasedListings()) throws -> Bool {
        try pool.write { db in
            let key = Data(id.bytes)
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM chunk WHERE id = ? AND refcount = 0 AND entry_refs = 0",
                                    arguments: [key]) == true,
                  try !Self.isLeased(id, db, listings: listings) else { return false }
            try db.execute(sql: "DELETE FROM chunk_location WHERE chunk_id = ?", arguments: [key])
            try db.execute(sql: "DELETE FROM manifest WHERE id = ?", arguments: [key])
            try db.execute(sql: "DELETE FROM chunk WHERE id = ?", arguments: [key])
            return true
        }
    }

    /// The chunk IDs recorded at `provider`, as a set for the orphan sweep.
    public func chunkIDs(on provider: Int64) throws -> Set<ChunkID> {
        try pool.read { db in
            Set(try Data.fetchAll(db, sql: "SELECT chunk_id FROM chunk_location WHERE provider_id = ?", arguments: [provider])
                .map { try Self.chunkID($0) })
        }
    }

    /// Notes objects seen on `provider` that the catalog does not place there, and returns those first
    /// seen at or before `cutoff`. Names no longer seen are forgotten.
    public func noteOrphans(_ names: [String], provider: Int64, now: Int64, cutoff: Int64) throws -> [String] {
        try pool.write { db in
            let seen = Set(names)
            var known: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, first_seen FROM orphan WHERE provider_id = ?", arguments: [provider]) {
                known[row["name"]] = row["first_seen"]
            }
            for (name, _) in known where !seen.contains(name) {
                try db.execute(sql: "DELETE FROM orphan WHERE provider_id = ? AND name = ?", arguments: [provider, name])
            }
            var expired: [String] = []
            for name in names {
                if let first = known[name] {
                    if first <= cutoff { expired.append(name) }
                } else {
                    try db.execute(sql: "INSERT INTO orphan(provider_id, name, first_seen) VALUES (?, ?, ?)",
                                   arguments: [provider, name, now])
                    if now <= cutoff { expired.append(name) }
                }
            }
            return expired
        }
    }

    public func forgetOrphan(_ name: String, provider: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM orphan WHERE provider_id = ? AND name = ?", arguments: [provider, name])
        }
    }

    // MARK: - Status

    public struct ReplicationSummary: Sendable {
        /// Chunks in use by how many replicas they have: [replicas: (chunks, sealed bytes)].
        public let byReplicas: [Int: (chunks: Int, bytes: Int64)]
        public let underReplicatedChunks: Int
        public let underReplicatedBytes: Int64
        public let trashObjects: Int
        public let trashBytes: Int64
    }

    public func replicationSummary() throws -> ReplicationSummary {
        try pool.read { db in
            var by: [Int: (chunks: Int, bytes: Int64)] = [:]
            var underChunks = 0
            var underBytes: Int64 = 0
            for row in try Row.fetchAll(db, sql: """
                SELECT n, n < want AS under, COUNT(*) AS chunks, SUM(sealed_size) AS bytes FROM (
                    SELECT c.sealed_size, \(Self.reachableWant) AS want, COUNT(l.provider_id) AS n FROM chunk c
                    LEFT JOIN chunk_location l ON l.chunk_id = c.id
                    WHERE c.refcount > 0 OR c.entry_refs > 0 GROUP BY c.id)
                GROUP BY n, under
                """) {
                let n: Int = row["n"], chunks: Int = row["chunks"], bytes: Int64 = row["bytes"]
                let before = by[n] ?? (0, 0)
                by[n] = (before.chunks + chunks, before.bytes + bytes)
                if row["under"] as Bool {
                    underChunks += chunks
                    underBytes += bytes
                }
            }
            let trash = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM trash")!
            return ReplicationSummary(byReplicas: by, underReplicatedChunks: underChunks, underReplicatedBytes: underBytes,
                                      trashObjects: trash["n"], trashBytes: trash["bytes"])
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
}
