import Foundation
import GRDB

/// Rows that a running process holds for as long as it lives (see ProcessIdentity): leases on chunks
/// it stored and has not committed yet, which garbage collection keeps, and quota reservations of
/// uploads in flight, which every other upload of the same user counts. A holder that is gone
/// (killed, crashed) holds nothing: its rows are ignored and dropped.
extension Catalog {
    // MARK: - Leases

    /// Leases `ids` to `holder`: gc deletes none of them (recorded or not) while the holder lives.
    /// Call it while holding the repository lock shared (as stores do), so that no gc runs between
    /// storing a chunk and leasing it.
    public func lease(_ ids: [ChunkID], holder: ProcessIdentity = .current) throws {
        guard !ids.isEmpty else { return }
        try pool.write { db in
            let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO chunk_lease(chunk_id, holder) VALUES (?, ?)")
            for id in ids { try insert.execute(arguments: [Data(id.bytes), holder.description]) }
        }
    }

    public func releaseLeases(_ ids: [ChunkID], holder: ProcessIdentity = .current) throws {
        guard !ids.isEmpty else { return }
        try pool.write { db in
            let delete = try db.cachedStatement(sql: "DELETE FROM chunk_lease WHERE chunk_id = ? AND holder = ?")
            for id in ids { try delete.execute(arguments: [Data(id.bytes), holder.description]) }
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
            return try Self.leased(db, listings: LeasedListings())
        }
    }

    /// Whether a live lease holds chunk `id` (itself, or through a leased manifest that lists it).
    static func isLeased(_ id: ChunkID, _ db: Database, listings: LeasedListings) throws -> Bool {
        try leased(db, listings: listings).contains(id)
    }

    static func leased(_ db: Database, listings: LeasedListings) throws -> Set<ChunkID> {
        var ids = Set(try Data.fetchAll(db, sql: "SELECT DISTINCT chunk_id FROM chunk_lease").compactMap {
            $0.count == ChunkID.byteCount ? ChunkID(bytes: [UInt8]($0)) : nil
        })
        for row in try Row.fetchAll(db, sql: "SELECT m.id, m.body FROM manifest m WHERE m.id IN (SELECT chunk_id FROM chunk_lease)") {
            let manifest = try chunkID(row["id"] as Data)
            ids.formUnion(try listings.chunks(of: manifest) { try Manifest(decoding: [UInt8](row["body"] as Data)).entries.map(\.id) })
        }
        return ids
    }

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

    static func dropDeadLeases(_ db: Database) throws {
        for holder in try String.fetchAll(db, sql: "SELECT DISTINCT holder FROM chunk_lease") where !ProcessIdentity.isAlive(holder) {
            try db.execute(sql: "DELETE FROM chunk_lease WHERE holder = ?", arguments: [holder])
        }
    }

    // MARK: - Quota reservations

    /// Reserves room under `user`'s quota so that reservation `id` (nil: a new one) holds `total`
    /// bytes, checked and recorded in one transaction: the user's stored bytes (objects and parts)
    /// plus every live reservation, this one's new size included, must stay within the quota.
    /// Returns the reservation's ID, or nil when the user has no quota. Throws `quotaExceeded`.
    public func reserveQuota(user: Int64, total: Int64, reservation id: Int64?, holder: ProcessIdentity = .current) throws -> Int64? {
        try pool.write { db in
            guard let quota = try Int64.fetchOne(db, sql: "SELECT quota FROM user WHERE id = ?", arguments: [user]) else {
                return nil
            }
            let reservations = try Row.fetchAll(db, sql: "SELECT id, bytes, holder FROM quota_reservation WHERE user_id = ?",
                                                arguments: [user])
            var others: Int64 = 0
            for row in reservations where row["id"] as Int64 != id {
                if ProcessIdentity.isAlive(row["holder"]) {
                    others += row["bytes"] as Int64
                } else {
                    try db.execute(sql: "DELETE FROM quota_reservation WHERE id = ?", arguments: [row["id"] as Int64])
                }
            }
            let stored = try Self.storedBytes(user: user, db)
            guard stored + others + total <= quota else {
                let left = max(0, quota - stored - others)
                throw StoreError(.quotaExceeded, "the quota of \(try Self.userName(user, db)) would be exceeded: \(left) bytes are left of \(quota)"
                    + " (\(others) more are reserved by uploads in flight); delete objects or raise it (a67 user quota)")
            }
            if let id, try Bool.fetchOne(db, sql: "SELECT 1 FROM quota_reservation WHERE id = ?", arguments: [id]) == true {
                try db.execute(sql: "UPDATE quota_reservation SET bytes = ? WHERE id = ?", arguments: [total, id])
                return id
            }
            try db.execute(sql: "INSERT INTO quota_reservation(user_id, bytes, holder, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [user, total, holder.description, Self.now()])
            return db.lastInsertedRowID
        }
    }

    /// Lowers a reservation (what it held is stored now, or was dropped); never refused.
    public func shrinkReservation(_ id: Int64, to total: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE quota_reservation SET bytes = MIN(bytes, ?) WHERE id = ?", arguments: [max(0, total), id])
        }
    }

    public func releaseReservation(_ id: Int64) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM quota_reservation WHERE id = ?", arguments: [id]) }
    }

    /// The bytes a user's buckets hold: objects and the parts of unfinished multipart uploads.
    static func storedBytes(user: Int64, _ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: """
            SELECT COALESCE((SELECT SUM(i.size) FROM inode i JOIN bucket b ON b.id = i.bucket_id
                             WHERE b.owner_id = ?1 AND i.kind = 'f' AND i.link_of IS NULL), 0)
                 + COALESCE((SELECT SUM(p.size) FROM upload u JOIN bucket b ON b.id = u.bucket_id
                             JOIN upload_part p ON p.upload_id = u.id WHERE b.owner_id = ?1), 0)
            """, arguments: [user]) ?? 0
    }

    static func userName(_ user: Int64, _ db: Database) throws -> String {
        try String.fetchOne(db, sql: "SELECT name FROM user WHERE id = ?", arguments: [user]) ?? "user \(user)"
    }
}

/// Room reserved under a bucket owner's quota for one upload (or one mount's open files), the one
/// mechanism S3, the mount and the CLI share. It grows as bytes arrive (each step checked against
/// the quota and every other live reservation in one catalog transaction, so that concurrent uploads
/// cannot together exceed it) and is released once what it covered is stored, or dropped.
public final class QuotaReservation: Sendable {
    let catalog: Catalog
    let user: Int64?
    /// Room is taken in steps of at least this many bytes, so that a stream does not write the
    /// catalog for every piece.
    let step: Int64
    private struct State {
        var id: Int64?
        var reserved: Int64 = 0
        /// The owner had no quota when last asked: not asked again before this (a quota set meanwhile
        /// binds a long-running mount within a second).
        var unlimitedUntil: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// `user`: the bucket's owner (nil: a bucket nobody owns, no quota).
    public init(catalog: Catalog, user: Int64?, step: Int64 = 8 << 20) {
        self.catalog = catalog
        self.user = user
        self.step = step
    }

    /// Makes sure `total` bytes are reserved; throws `quotaExceeded` when the quota has no room for them.
    public func cover(_ total: Int64) throws {
        guard let user else { return }
        try state.withLock { s in
            if let until = s.unlimitedUntil, ContinuousClock.now < until { return }
            guard total > s.reserved || s.unlimitedUntil != nil else { return }
            // A step ahead when there is room for it, else exactly what is needed.
            let generous = max(total, s.reserved + step)
            do {
                try take(generous, user: user, &s)
            } catch let error as StoreError where error.code == .quotaExceeded && generous > total {
                try take(total, user: user, &s)
            }
        }
    }

    private func take(_ total: Int64, user: Int64, _ s: inout State) throws {
        if let id = try catalog.reserveQuota(user: user, total: total, reservation: s.id) {
            s.id = id
            s.reserved = total
            s.unlimitedUntil = nil
        } else {
            s.unlimitedUntil = .now + .seconds(1)
        }
    }

    /// What is still to be stored is `total` bytes (the rest is in the catalog's usage now).
    public func shrink(to total: Int64) {
        state.withLock { s in
            guard let id = s.id, total < s.reserved else { return }
            try? catalog.shrinkReservation(id, to: total)
            s.reserved = max(0, total)
        }
    }

    public func release() {
        state.withLock { s in
            if let id = s.id { try? catalog.releaseReservation(id) }
            s = State()
        }
    }

    deinit {
        if let id = state.withLock({ $0.id }) { try? catalog.releaseReservation(id) }
    }
}

import Synchronization
