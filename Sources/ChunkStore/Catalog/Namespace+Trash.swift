import Foundation
import GRDB

/// The trash: objects deleted (by S3, the CLI or the mount's unlink) keep their content for the
/// retention period, until `purgeTrash` drops them (a67 gc) or `undelete` brings one back.
extension Namespace {
    /// Deleted objects still in the trash, newest first; of one bucket (and key) when given.
    public func trash(bucket: BucketRecord? = nil, key: String? = nil) throws -> [Catalog.TrashEntry] {
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
                Catalog.TrashEntry(id: row["id"], bucket: row["name"], key: row["key"], size: row["size"], deletedAt: row["deleted_at"])
            }
        }
    }

    /// Brings back the most recently deleted object at `segments`. Refuses when an object is there now.
    @discardableResult
    public func undelete(bucket: BucketRecord, segments: [String]) throws -> Catalog.TrashEntry {
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
            let now = Catalog.now()
            let owner = (uid: UInt32(row["uid"] as Int64), gid: UInt32(row["gid"] as Int64), mode: UInt32(row["mode"] as Int64))
            let parent = try Self.makeFolders(bucket: bucket, segments.dropLast(), now: now, owner: owner, db)
            try db.execute(sql: """
                INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime, manifest)
                VALUES (?, ?, ?, 'f', ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [bucket.id, parent, segments.last!, owner.mode, owner.uid, owner.gid, row["size"] as Int64,
                                 row["mtime"] as Int64, now, row["manifest"] as Data])
            // The trash entry's reference moves back to the namespace entry.
            try db.execute(sql: "DELETE FROM trash WHERE id = ?", arguments: [row["id"] as Int64])
            return Catalog.TrashEntry(id: row["id"], bucket: bucket.name, key: key, size: row["size"], deletedAt: row["deleted_at"])
        }
    }

    /// Drops trash entries deleted before `cutoff` (nanoseconds since 1970); their chunks lose the
    /// reference. Returns how many were dropped.
    public func purgeTrash(deletedBefore cutoff: Int64) throws -> Int {
        try pool.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, manifest FROM trash WHERE deleted_at < ?", arguments: [cutoff])
            for row in rows {
                try ChunkIndex.adjustManifest(try Catalog.chunkID(row["manifest"]), by: -1, db)
                try db.execute(sql: "DELETE FROM trash WHERE id = ?", arguments: [row["id"] as Int64])
            }
            return rows.count
        }
    }
}

extension Catalog {
    public struct TrashEntry: Sendable, Equatable {
        public let id: Int64
        public let bucket: String
        public let key: String
        public let size: Int64
        /// Nanoseconds since 1970.
        public let deletedAt: Int64
    }
}
