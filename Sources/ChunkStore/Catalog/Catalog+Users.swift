import Foundation
import GRDB

/// Users and their access keys, for the blob API. A key's secret is stored sealed; the server
/// opens it to check signatures.
extension Catalog {
    public func addUser(name: String, admin: Bool = false, quota: Int64? = nil) throws -> UserRecord {
        try Names.validateUser(name)
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM user WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "a user named \(name) already exists (a67 user ls lists them)")
            }
            let now = Self.now()
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
            // The bytes a quota counts: the same sum as the reservations check (Catalog+Leases).
            return UsageRecord(buckets: row["buckets"], objects: row["objects"], bytes: try Self.storedBytes(user: user, db))
        }
    }

    // MARK: - Access keys

    public func addAccessKey(id: String, user: Int64, sealedSecret: [UInt8]) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO access_key(id, user_id, sealed_secret, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, user, Data(sealedSecret), Self.now()])
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

    /// Gives a bucket to a user (nil: to the repository's owner only).
    public func setBucketOwner(_ bucket: String, owner: Int64?) throws {
        let record = try self.bucket(bucket)
        try pool.write { db in
            try db.execute(sql: "UPDATE bucket SET owner_id = ? WHERE id = ?", arguments: [owner, record.id])
        }
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
