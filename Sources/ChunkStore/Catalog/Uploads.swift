import Foundation
import GRDB

/// Multipart uploads: each part is a list of chunks already stored, which holds a reference on
/// each of its chunks (so that garbage collection keeps them) until the upload is completed (the
/// object's manifest then refers to them) or aborted.
/// One of the catalog's aggregates (see Catalog): `catalog.uploads`.
public struct Uploads: Sendable {
    let pool: DatabasePool
}

extension Uploads {
    public func create(id: String, bucket: BucketRecord, key: String, attributes: [String: String]) throws {
        _ = try Names.keySegments(key)
        let json = String(decoding: try JSONEncoder().encode(attributes), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO upload(id, bucket_id, key, attributes, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, bucket.id, key, json, Catalog.now()])
        }
    }

    /// The upload `id` of `bucket`, or `notFound`.
    public func upload(_ id: String, bucket: BucketRecord) throws -> UploadRecord {
        let row = try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, bucket_id, key, attributes, created_at FROM upload WHERE id = ? AND bucket_id = ?",
                             arguments: [id, bucket.id])
        }
        guard let row else { throw StoreError(.notFound, "no multipart upload \(id) in bucket \(bucket.name)") }
        return try Self.upload(row)
    }

    /// The bucket's unfinished uploads whose key starts with `prefix`, by key then start time.
    public func list(bucket: BucketRecord, prefix: String = "") throws -> [UploadRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, bucket_id, key, attributes, created_at FROM upload
                WHERE bucket_id = ? AND substr(key, 1, length(?)) = ? ORDER BY CAST(key AS BLOB), created_at
                """, arguments: [bucket.id, prefix, prefix]).map(Self.upload)
        }
    }

    static func upload(_ row: Row) throws -> UploadRecord {
        let attributes = try JSONDecoder().decode([String: String].self, from: Data((row["attributes"] as String).utf8))
        return UploadRecord(id: row["id"], bucketID: row["bucket_id"], key: row["key"], attributes: attributes,
                            createdAt: row["created_at"])
    }

    /// Records part `number` of an upload (replacing an earlier upload of that number): `chunks`
    /// are the ones this part stored, `entries` all of the part's chunks in order.
    public func putPart(upload: String, number: Int, entries: [Manifest.Entry], etag: String, chunks: [StoredChunk]) async throws {
        let body = Data(Manifest(entries: entries).encoded)
        let size = entries.reduce(Int64(0)) { $0 + Int64($1.length) }
        try await pool.write { db in
            try ChunkIndex.insert(chunks, db)
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM upload WHERE id = ?", arguments: [upload]) == true else {
                throw StoreError(.notFound, "no multipart upload \(upload) (it was completed or aborted)")
            }
            for id in Set(entries.map(\.id)) {
                guard try ChunkIndex.isStored(id, db) else {
                    throw StoreError(.internal, "part commit refused: chunk \(id.short) is not recorded as stored")
                }
            }
            try Self.dropPart(upload: upload, number: number, db)
            try db.execute(sql: "INSERT INTO upload_part(upload_id, number, size, etag, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [upload, number, size, etag, body, Catalog.now()])
            for id in Set(entries.map(\.id)) {
                try db.execute(sql: "UPDATE chunk SET refcount = refcount + 1 WHERE id = ?", arguments: [Data(id.bytes)])
            }
        }
    }

    public func parts(upload: String) throws -> [PartRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT number, size, etag, body, created_at FROM upload_part WHERE upload_id = ? ORDER BY number",
                             arguments: [upload]).map { row in
                PartRecord(number: row["number"], size: row["size"], etag: row["etag"],
                           entries: try Manifest(decoding: [UInt8](row["body"] as Data)).entries, createdAt: row["created_at"])
            }
        }
    }

    /// Forgets an upload and its parts, releasing their chunks.
    public func abort(_ id: String) throws {
        try pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM upload WHERE id = ?", arguments: [id]) == true else {
                throw StoreError(.notFound, "no multipart upload \(id)")
            }
            try Self.dropUpload(id, db)
        }
    }

    static func dropUpload(_ id: String, _ db: Database) throws {
        for number in try Int.fetchAll(db, sql: "SELECT number FROM upload_part WHERE upload_id = ?", arguments: [id]) {
            try dropPart(upload: id, number: number, db)
        }
        try db.execute(sql: "DELETE FROM upload WHERE id = ?", arguments: [id])
    }

    static func dropPart(upload: String, number: Int, _ db: Database) throws {
        guard let body = try Data.fetchOne(db, sql: "SELECT body FROM upload_part WHERE upload_id = ? AND number = ?",
                                           arguments: [upload, number]) else { return }
        for id in Set(try Manifest(decoding: [UInt8](body)).entries.map(\.id)) {
            try db.execute(sql: "UPDATE chunk SET refcount = refcount - 1 WHERE id = ?", arguments: [Data(id.bytes)])
        }
        try db.execute(sql: "DELETE FROM upload_part WHERE upload_id = ? AND number = ?", arguments: [upload, number])
    }
}
