import Foundation
import GRDB

/// The namespace: buckets, and each bucket's entries as an inode table (so that the S3 key `a/b/c.txt`
/// and the mount path `/a/b/c.txt` are one row, and renaming a folder is one row update), with their
/// extended attributes (Namespace+Inodes), the trash of deleted objects (Namespace+Trash) and S3's
/// listings. One of the catalog's aggregates (see Catalog): `catalog.namespace`.
public struct Namespace: Sendable {
    let pool: DatabasePool
    /// The catalog's commits are not synced one by one (see `Catalog.relaxed`).
    let relaxed: Bool
}

extension Namespace {
    // MARK: - Buckets

    public func createBucket(_ name: String, replicas: Int, minReplicas: Int = 1, owner: Int64? = nil) throws -> BucketRecord {
        try Names.validateBucket(name)
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM bucket WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "bucket \(name) already exists")
            }
            let now = Catalog.now()
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
                try Uploads.dropUpload(upload, db)
            }
            // Its deleted objects go with it: they could not be brought back into a bucket that is gone.
            for manifest in try Data.fetchAll(db, sql: "SELECT manifest FROM trash WHERE bucket_id = ?", arguments: [bucket.id]) {
                try ChunkIndex.adjustManifest(try Catalog.chunkID(manifest), by: -1, db)
            }
            try db.execute(sql: "DELETE FROM trash WHERE bucket_id = ?", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM xattr WHERE inode_id IN (SELECT id FROM inode WHERE bucket_id = ?)", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM inode WHERE bucket_id = ?", arguments: [bucket.id])
            try db.execute(sql: "DELETE FROM bucket WHERE id = ?", arguments: [bucket.id])
        }
    }

    /// Gives a bucket to a user (nil: to the repository's owner only).
    public func setBucketOwner(_ bucket: String, owner: Int64?) throws {
        let record = try self.bucket(bucket)
        try pool.write { db in
            try db.execute(sql: "UPDATE bucket SET owner_id = ? WHERE id = ?", arguments: [owner, record.id])
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
            try ChunkIndex.insert(chunks, db)
            if let condition, let failure = condition.failure(current: try Self.currentETag(bucket: bucket, segments, db)) {
                return failure
            }
            let distinct = Set(manifest.entries.map(\.id))
            let missing = try distinct.filter { id in
                try !ChunkIndex.isStored(id, db)
            }
            guard missing.isEmpty else {
                throw StoreError(.internal, "object commit refused: \(missing.count) of its chunks are not recorded as stored")
            }
            try db.execute(sql: "INSERT INTO manifest(id, size, chunk_count, body) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                           arguments: [Data(manifestID.bytes), manifest.size, manifest.entries.count, Data(body)])
            let now = Catalog.now()
            let parent = try Self.makeFolders(bucket: bucket, segments.dropLast(), now: now, owner: owner, db)
            let name = segments.last!
            var replaced = false
            if let named = try Row.fetchOne(db, sql: "SELECT id, COALESCE(link_of, id) AS file FROM inode WHERE parent_id = ? AND name = ?",
                                            arguments: [parent, name]),
               let existing = try Row.fetchOne(db, sql: "SELECT id, kind, manifest, special FROM inode WHERE id = ?",
                                               arguments: [named["file"] as Int64]) {
                let kind: Inode.Kind = existing["kind"]
                if kind == .directory {
                    throw StoreError(.conflict, "\(bucket.name)/\(segments.joined(separator: "/")) is a folder; an object cannot replace it")
                }
                if kind == .file && existing["special"] == nil {
                    // A file's new content: every name of it (hard links made in a mount) sees the object.
                    try db.execute(sql: "UPDATE inode SET manifest = ?, size = ?, mtime = ?, ctime = ? WHERE id = ?",
                                   arguments: [Data(manifestID.bytes), manifest.size, now, now, existing["id"] as Int64])
                    try ChunkIndex.adjustManifest(manifestID, by: 1, db)
                    if let old = existing["manifest"] as Data? { try ChunkIndex.adjustManifest(try Catalog.chunkID(old), by: -1, db) }
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
                try ChunkIndex.adjustManifest(manifestID, by: 1, db)
            }
            if let upload { try Uploads.dropUpload(upload, db) }
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
        guard let id = row["manifest"] as Data?, row["kind"] as Inode.Kind == .file else {
            throw StoreError(.notFound, "\(bucket.name)/\(key) is \(Self.whatIsNot(kind: row["kind"], special: row["special"])), not an object")
        }
        guard let body = row["body"] as Data? else {
            throw StoreError(.internal, "object \(bucket.name)/\(key) has no manifest in the catalog")
        }
        return ObjectRecord(key: key, size: row["size"], mtime: row["mtime"], manifestID: try Catalog.chunkID(id),
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
            guard row["kind"] as Inode.Kind == .file, row["manifest"] != nil else {
                let what = Self.whatIsNot(kind: row["kind"], special: row["special"])
                throw StoreError(.notFound, "\(bucket.name)/\(key) is \(what), not an object\(what == "a folder" ? "" : ": remove it in the mount")")
            }
            // The namespace entry's reference moves to the trash entry: the chunks stay referenced.
            // A file with other names (hard links made in a mount) keeps its content under those.
            try Self.dropName(id, trash: true, now: Catalog.now(), db)
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
            let kind: Inode.Kind = row["kind"]
            if kind == .directory {
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
                                    manifestID: (row["manifest"] as Data?).flatMap { try? Catalog.chunkID($0) }))
            }
        }
    }

    // MARK: - Inside transactions (of any aggregate)

    /// What a namespace entry that is not an object is, for messages: "a folder", "a symbolic link
    /// (made in a mount)", "a FIFO (made in a mount)"... (`special`: a special file's st_mode type bits).
    /// With `object`, a regular file is "an object".
    static func whatIsNot(kind: Inode.Kind, special: Int64?, object: Bool = false) -> String {
        switch (kind, special.map { $0 & 0o170000 }) {
        case (.directory, _): return "a folder"
        case (.symlink, _): return "a symbolic link (made in a mount)"
        case (_, 0o010000?): return "a FIFO (made in a mount)"
        case (_, 0o140000?): return "a socket (made in a mount)"
        case (_, 0o020000?): return "a character device (made in a mount)"
        case (_, 0o060000?): return "a block device (made in a mount)"
        case (_, _?): return "a special file (made in a mount)"
        default: return object ? "an object" : "a file with no content recorded"
        }
    }

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
                guard row["kind"] as Inode.Kind == .directory else {
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
}
