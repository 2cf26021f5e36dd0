import Foundation
import GRDB

/// Rows that a running process holds for as long as it lives (see ProcessIdentity): leases on chunks
/// it stored and has not committed yet, which garbage collection keeps, and quota reservations of
/// uploads in flight, which every other upload of the same user counts. A holder that is gone
/// (killed, crashed) holds nothing: its rows are ignored and dropped.
extension ChunkIndex {
    // MARK: - Leases

    /// Leases `ids` to `holder`: gc deletes none of them (recorded or not) while the holder lives.
    /// `copies`: where those not recorded yet are stored (provider IDs), so that provider rm keeps a
    /// provider holding the only copy of one. Call it while holding the repository lock shared (as
    /// stores do), so that no gc or provider rm runs between storing a chunk and leasing it.
    public func lease(_ ids: [ChunkID], copies: [ChunkID: [Int64]] = [:], holder: ProcessIdentity = .current) throws {
        guard !ids.isEmpty else { return }
        try pool.write { db in
            let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO chunk_lease(chunk_id, holder) VALUES (?, ?)")
            let copy = try db.cachedStatement(sql: "INSERT OR IGNORE INTO chunk_lease_copy(chunk_id, holder, provider_id) VALUES (?, ?, ?)")
            for id in ids {
                try insert.execute(arguments: [Data(id.bytes), holder.description])
                for provider in copies[id] ?? [] { try copy.execute(arguments: [Data(id.bytes), holder.description, provider]) }
            }
        }
    }

    public func releaseLeases(_ ids: [ChunkID], holder: ProcessIdentity = .current) throws {
        guard !ids.isEmpty else { return }
        try pool.write { db in
            let delete = try db.cachedStatement(sql: "DELETE FROM chunk_lease WHERE chunk_id = ? AND holder = ?")
            let copies = try db.cachedStatement(sql: "DELETE FROM chunk_lease_copy WHERE chunk_id = ? AND holder = ?")
            for id in ids {
                try delete.execute(arguments: [Data(id.bytes), holder.description])
                try copies.execute(arguments: [Data(id.bytes), holder.description])
            }
        }
    }

    /// Leases manifest `id` to `holder`, which holds every chunk it lists too (a mount's file whose
    /// unchanged blocks a coming commit keeps), after checking, in the same transaction, that each of
    /// them is still stored. Throws `integrity` when one is not (the object was replaced elsewhere and
    /// its old chunks collected): nothing written on that base could be committed.
    public func leaseManifest(_ id: ChunkID, holder: ProcessIdentity = .current) throws {
        try pool.write { db in
            // In use by an object (the usual case), its chunks are stored; else each is checked.
            let inUse = try Int.fetchOne(db, sql: "SELECT entry_refs FROM chunk WHERE id = ?", arguments: [Data(id.bytes)]) ?? 0 > 0
            guard let body = try Data.fetchOne(db, sql: "SELECT body FROM manifest WHERE id = ?", arguments: [Data(id.bytes)]),
                  try inUse || Manifest(decoding: [UInt8](body)).entries.allSatisfy({ try Self.isStored($0.id, db) }) else {
                throw StoreError(.integrity, "the content this change is based on (manifest \(id.short)) is no longer stored: "
                    + "the object was replaced or removed elsewhere and its chunks collected")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO chunk_lease(chunk_id, holder) VALUES (?, ?)",
                           arguments: [Data(id.bytes), holder.description])
        }
    }

    /// Drops the leases of holders that are gone, and returns the chunks leased by live ones: those
    /// leased themselves and those a leased manifest lists.
    public func liveLeases() throws -> Set<ChunkID> {
        try pool.write { db in
            try Self.dropDeadLeases(db)
            return try Self.leased(db, listings: Catalog.LeasedListings())
        }
    }

    /// Whether a live lease holds chunk `id` (itself, or through a leased manifest that lists it).
    static func isLeased(_ id: ChunkID, _ db: Database, listings: Catalog.LeasedListings) throws -> Bool {
        try leased(db, listings: listings).contains(id)
    }

    static func leased(_ db: Database, listings: Catalog.LeasedListings) throws -> Set<ChunkID> {
        var ids = Set(try Data.fetchAll(db, sql: "SELECT DISTINCT chunk_id FROM chunk_lease").compactMap {
            $0.count == ChunkID.byteCount ? ChunkID(bytes: [UInt8]($0)) : nil
        })
        for row in try Row.fetchAll(db, sql: "SELECT m.id, m.body FROM manifest m WHERE m.id IN (SELECT chunk_id FROM chunk_lease)") {
            let manifest = try Catalog.chunkID(row["id"] as Data)
            ids.formUnion(try listings.chunks(of: manifest) { try Manifest(decoding: [UInt8](row["body"] as Data)).entries.map(\.id) })
        }
        return ids
    }

    static func dropDeadLeases(_ db: Database) throws {
        for holder in try String.fetchAll(db, sql: "SELECT holder FROM chunk_lease UNION SELECT holder FROM chunk_lease_copy") where !ProcessIdentity.isAlive(holder) {
            try db.execute(sql: "DELETE FROM chunk_lease WHERE holder = ?", arguments: [holder])
            try db.execute(sql: "DELETE FROM chunk_lease_copy WHERE holder = ?", arguments: [holder])
        }
    }
}

extension Catalog {
    /// The chunk lists of leased manifests, decoded once for a whole gc run.
    public final class LeasedListings: @unchecked Sendable {
        private var known: [ChunkID: Set<ChunkID>] = [:]
        private let lock = NSLock()
        public init() {}

        func chunks(of manifest: ChunkID, _ decode: () throws -> [ChunkID]) rethrows -> Set<ChunkID> {
            lock.lock()
            defer { lock.unlock() }
            if let ids = known[manifest] { return ids }
            let ids = Set(try decode())
            known[manifest] = ids
            return ids
        }
    }
}
