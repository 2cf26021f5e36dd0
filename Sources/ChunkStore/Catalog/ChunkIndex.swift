import Foundation
import GRDB

/// The chunk index: every chunk with its sizes, wanted replicas, reference counts and locations,
/// each manifest's body, the orphans seen on providers, and (ChunkIndex+Leases, ChunkIndex+References)
/// the leases of running processes and the audit of reference counts. One of the catalog's aggregates
/// (see Catalog): `catalog.chunks`.
public struct ChunkIndex: Sendable {
    let pool: DatabasePool
}

extension ChunkIndex {
    // MARK: - Chunks

    /// The locations of a chunk the catalog knows to be stored, or nil. Answers dedupe from the catalog,
    /// never by asking providers.
    ///
    /// A synchronous read (microseconds): GRDB's async read keeps its reader connection until the
    /// awaiting task resumes, so with every cooperative thread blocked in a synchronous read (a
    /// server under load) the readers never come back. The catalog uses no async reads for that reason.
    public func locations(_ id: ChunkID) async throws -> [Int64]? { try storedLocations(of: id) }

    private func storedLocations(of id: ChunkID) throws -> [Int64]? {
        try pool.read { db in
            let ids = try Int64.fetchAll(db, sql: "SELECT provider_id FROM chunk_location WHERE chunk_id = ?",
                                         arguments: [Data(id.bytes)])
            return ids.isEmpty ? nil : ids
        }
    }

    /// Records chunks that are durably stored (refcount 0 until a manifest refers to them).
    public func record(_ chunks: [StoredChunk]) async throws {
        guard !chunks.isEmpty else { return }
        try await pool.write { db in try Self.insert(chunks, db) }
    }

    static func insert(_ chunks: [StoredChunk], _ db: Database) throws {
        let now = Catalog.now()
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
                (try Catalog.chunkID(row["chunk_id"] as Data), row["provider_id"] as Int64)
            }
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

    static func placement(_ row: Row) throws -> Catalog.ChunkPlacement {
        let list: String = row["providers"] ?? ""
        return Catalog.ChunkPlacement(id: try Catalog.chunkID(row["id"]), plainSize: row["plain_size"], sealedSize: row["sealed_size"],
                              want: row["want"], providers: list.split(separator: ",").compactMap { Int64($0) }.sorted())
    }

    /// How many replicas a chunk that wants `want` can have: no more than there are failure groups
    /// among the active providers.
    static let reachableWant = """
        MIN(c.want, (SELECT COUNT(DISTINCT COALESCE(p.fault_group, p.name)) FROM provider p WHERE p.state = '\(ProviderState.active.rawValue)'))
        """

    /// Chunks still in use (by an object or a deleted object in the trash) with fewer recorded replicas
    /// than they should have (capped by the number of failure groups), fewest first.
    public func underReplicated() throws -> [Catalog.ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.refcount > 0 OR c.entry_refs > 0
                GROUP BY c.id HAVING COUNT(l.provider_id) < \(Self.reachableWant) ORDER BY COUNT(l.provider_id), c.id
                """).map(Self.placement)
        }
    }

    /// Every chunk in use (by an object or by a deleted object in the trash), with its locations.
    public func inUse() throws -> [Catalog.ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.refcount > 0 OR c.entry_refs > 0 GROUP BY c.id ORDER BY c.id
                """).map(Self.placement)
        }
    }

    /// Every chunk with a copy on `provider`.
    public func placements(on provider: Int64) throws -> [Catalog.ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + """
                WHERE c.id IN (SELECT chunk_id FROM chunk_location WHERE provider_id = ?) GROUP BY c.id ORDER BY c.id
                """, arguments: [provider]).map(Self.placement)
        }
    }

    /// Every chunk the catalog records, with its locations.
    public func all() throws -> [Catalog.ChunkPlacement] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.placementSelect + " GROUP BY c.id ORDER BY c.id").map(Self.placement)
        }
    }

    // MARK: - Garbage collection

    /// Chunks nothing refers to, recorded before `cutoff` (nanoseconds since 1970).
    public func unreferenced(recordedBefore cutoff: Int64) throws -> [Catalog.ChunkPlacement] {
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
    public func forgetUnreferenced(_ id: ChunkID, listings: Catalog.LeasedListings = Catalog.LeasedListings()) throws -> Bool {
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
    public func ids(on provider: Int64) throws -> Set<ChunkID> {
        try pool.read { db in
            Set(try Data.fetchAll(db, sql: "SELECT chunk_id FROM chunk_location WHERE provider_id = ?", arguments: [provider])
                .map { try Catalog.chunkID($0) })
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

    public func replicationSummary() throws -> Catalog.ReplicationSummary {
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
            return Catalog.ReplicationSummary(byReplicas: by, underReplicatedChunks: underChunks, underReplicatedBytes: underBytes,
                                      trashObjects: trash["n"], trashBytes: trash["bytes"])
        }
    }

    // MARK: - Inside transactions (of any aggregate)

    /// Whether chunk `id` is recorded with a copy on at least one provider: what a commit needs of
    /// every chunk it makes part of an object (a chunk whose copies were all forgotten, by a provider's
    /// removal or by gc, would make an object that cannot be read).
    static func isStored(_ id: ChunkID, _ db: Database) throws -> Bool {
        try Bool.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM chunk_location WHERE chunk_id = ? LIMIT 1"),
                          arguments: [Data(id.bytes)]) == true
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

    /// Records a manifest's body (if the catalog lacks it); returns the object size it describes.
    @discardableResult
    static func insertManifest(_ id: ChunkID, body: [UInt8], _ db: Database) throws -> Int64 {
        let manifest = try Manifest(decoding: body)
        try db.cachedStatement(sql: "INSERT INTO manifest(id, size, chunk_count, body) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING")
            .execute(arguments: [Data(id.bytes), manifest.size, manifest.entries.count, Data(body)])
        return manifest.size
    }
}

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

    public struct ReplicationSummary: Sendable {
        /// Chunks in use by how many replicas they have: [replicas: (chunks, sealed bytes)].
        public let byReplicas: [Int: (chunks: Int, bytes: Int64)]
        public let underReplicatedChunks: Int
        public let underReplicatedBytes: Int64
        public let trashObjects: Int
        public let trashBytes: Int64
    }
}
