import Foundation
import GRDB

/// Accounts: users, their access keys for the blob API (a key's secret is stored sealed; the server
/// opens it to check signatures), their quotas and the reservations of uploads in flight under them.
/// One of the catalog's aggregates (see Catalog): `catalog.accounts`.
public struct Accounts: Sendable {
    let pool: DatabasePool
}

extension Accounts {
    public func addUser(name: String, admin: Bool = false, quota: Int64? = nil) throws -> UserRecord {
        try Names.validateUser(name)
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM user WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "a user named \(name) already exists (a67 user ls lists them)")
            }
            let now = Catalog.now()
            try db.execute(sql: "INSERT INTO user(name, admin, quota, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [name, admin, quota, now])
            return UserRecord(id: db.lastInsertedRowID, name: name, admin: admin, quota: quota, createdAt: now)
        }
    }

    public func users() throws -> [UserRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, admin, quota, created_at FROM user ORDER BY name").map(Self.user)
        }
    }

    public func user(named name: String) throws -> UserRecord {
        let row = try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name, admin, quota, created_at FROM user WHERE name = ?", arguments: [name])
        }
        guard let row else { throw StoreError(.notFound, "no user named \(name): a67 user ls lists them, a67 user add \(name) makes one") }
        return Self.user(row)
    }

    public func user(id: Int64) throws -> UserRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name, admin, quota, created_at FROM user WHERE id = ?", arguments: [id]).map(Self.user)
        }
    }

    static func user(_ row: Row) -> UserRecord {
        UserRecord(id: row["id"], name: row["name"], admin: row["admin"], quota: row["quota"], createdAt: row["created_at"])
    }

    /// Sets (or with nil removes) a user's quota.
    public func setQuota(user name: String, bytes: Int64?) throws {
        let user = try self.user(named: name)
        try pool.write { db in
            try db.execute(sql: "UPDATE user SET quota = ? WHERE id = ?", arguments: [bytes, user.id])
        }
    }

    /// What the user's buckets hold: object sizes plus the parts of unfinished uploads.
    public func usage(user: Int64) throws -> UsageRecord {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS buckets,
                       COALESCE(SUM((SELECT COUNT(*) FROM inode i WHERE i.bucket_id = b.id AND i.kind = 'f')), 0) AS objects
                FROM bucket b WHERE b.owner_id = ?
                """, arguments: [user])!
            // The bytes a quota counts: the same sum as the reservations check (Accounts.reserveQuota).
            return UsageRecord(buckets: row["buckets"], objects: row["objects"], bytes: try Self.storedBytes(user: user, db))
        }
    }

    // MARK: - Access keys

    public func addAccessKey(id: String, user: Int64, sealedSecret: [UInt8]) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO access_key(id, user_id, sealed_secret, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, user, Data(sealedSecret), Catalog.now()])
        }
    }

    public func accessKey(_ id: String) throws -> AccessKeyRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT k.id, k.user_id, u.name, k.sealed_secret, k.created_at FROM access_key k JOIN user u ON u.id = k.user_id
                WHERE k.id = ?
                """, arguments: [id]).map(Self.accessKey)
        }
    }

    public func accessKeys(user: Int64? = nil) throws -> [AccessKeyRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT k.id, k.user_id, u.name, k.sealed_secret, k.created_at FROM access_key k JOIN user u ON u.id = k.user_id
                WHERE ? IS NULL OR k.user_id = ? ORDER BY u.name, k.created_at
                """, arguments: [user, user]).map(Self.accessKey)
        }
    }

    static func accessKey(_ row: Row) -> AccessKeyRecord {
        AccessKeyRecord(id: row["id"], userID: row["user_id"], userName: row["name"],
                        sealedSecret: [UInt8](row["sealed_secret"] as Data), createdAt: row["created_at"])
    }

    public func removeAccessKey(_ id: String) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM access_key WHERE id = ?", arguments: [id])
            guard db.changesCount == 1 else {
                throw StoreError(.notFound, "no access key \(id): a67 key ls lists them")
            }
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
                           arguments: [user, total, holder.description, Catalog.now()])
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

extension Names {
    /// User names: 1 to 64 characters of letters, digits, `.`, `-`, `_` and `@`.
    public static func validateUser(_ name: String) throws {
        let ok = (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f
                || c == 0x2e || c == 0x40
        }
        guard ok else { throw StoreError(.invalidArgument, "invalid user name \"\(name)\": use 1 to 64 letters, digits, '.', '-', '_' or '@'") }
    }
}
