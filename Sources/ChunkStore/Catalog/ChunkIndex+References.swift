import Foundation
import GRDB

/// The mark half of garbage collection: what the live objects refer to, worked out from the
/// namespace, the trash and unfinished multipart uploads by reading their manifests, never from
/// the stored reference counts. Those counts make the common cases cheap; this is what checks
/// them, so that a damaged count (a flipped bit in catalog.db) stops gc instead of making it delete
/// live data.
extension ChunkIndex {
    /// Counts every reference from the live objects, in one read transaction. `lost`: chunks known to
    /// have no good copy left (a scrub's finding), whose objects are reported damaged too.
    public func auditReferences(lost: Set<ChunkID> = []) throws -> Catalog.ReferenceAudit {
        try pool.read { db in try Self.audit(db, lost: lost) }
    }

    /// Sets every chunk's reference counts to what the live objects make them (after damage to the
    /// catalog, once `a67 scrub` has said what is lost); returns how many chunks changed.
    public func recountReferences() throws -> Int {
        try pool.write { db in
            let audit = try Self.audit(db)
            guard audit.unreadable.isEmpty else {
                throw StoreError(.integrity, "the reference counts cannot be rebuilt: the chunk lists of \(audit.unreadable.count) object(s) "
                    + "cannot be read (\(audit.unreadable.prefix(3).joined(separator: "; ")))")
            }
            for mismatch in audit.mismatched {
                try db.execute(sql: "UPDATE chunk SET entry_refs = ?, refcount = ? WHERE id = ?",
                               arguments: [mismatch.expected.entryRefs, mismatch.expected.refcount, Data(mismatch.chunk.bytes)])
            }
            return audit.mismatched.count
        }
    }

    private static func audit(_ db: Database, lost: Set<ChunkID> = []) throws -> Catalog.ReferenceAudit {
        var audit = Catalog.ReferenceAudit()
        var entryRefs: [ChunkID: Int] = [:]
        var refcount: [ChunkID: Int] = [:]
        var manifests: [ChunkID: [ChunkID]] = [:]
        var named: [ChunkID: String] = [:]
        let located = Set(try Data.fetchAll(db, sql: "SELECT DISTINCT chunk_id FROM chunk_location").map { try Catalog.chunkID($0) })

        func listing(_ manifest: ChunkID) throws -> [ChunkID]? {
            if let known = manifests[manifest] { return known }
            guard let body = try Data.fetchOne(db, sql: "SELECT body FROM manifest WHERE id = ?", arguments: [Data(manifest.bytes)]) else {
                return nil
            }
            let ids = Array(Set(try Manifest(decoding: [UInt8](body)).entries.map(\.id)))
            manifests[manifest] = ids
            return ids
        }
        func decoded<T>(_ name: String, _ body: () throws -> T) -> T? {
            do {
                return try body()
            } catch {
                audit.unreadable.append("\(name): \(error)")
                return nil
            }
        }
        func damaged(_ name: String, _ ids: [ChunkID]) {
            let missing = ids.filter { !located.contains($0) || lost.contains($0) }
            if !missing.isEmpty { audit.damaged.append(.init(name: name, missingChunks: missing)) }
        }

        // Namespace entries and trash entries each hold one entry reference on their manifest.
        let entries = try Row.fetchAll(db, sql: """
            SELECT i.manifest, b.name AS bucket, i.id, 0 AS trashed FROM inode i JOIN bucket b ON b.id = i.bucket_id
            WHERE i.manifest IS NOT NULL
            UNION ALL
            SELECT t.manifest, b.name, t.key, 1 FROM trash t JOIN bucket b ON b.id = t.bucket_id
            """)
        for row in entries {
            let manifest = try Catalog.chunkID(row["manifest"] as Data)
            entryRefs[manifest, default: 0] += 1
            audit.live.insert(manifest)
            if named[manifest] == nil {
                let trashed: Bool = row["trashed"]
                let key = trashed ? (row[2] as String) : (try Namespace.key(of: row[2] as Int64, db))
                named[manifest] = (trashed ? "trash: " : "") + (row["bucket"] as String) + "/" + key
            }
        }
        // Each manifest in use holds one reference on each distinct chunk it lists.
        for manifest in entryRefs.keys {
            let name = named[manifest] ?? manifest.short
            guard let found = decoded(name, { try listing(manifest) }) else { continue }
            guard let ids = found else {
                audit.damaged.append(.init(name: name, missingChunks: [manifest]))
                continue
            }
            damaged(name, ids + [manifest])
            for id in ids {
                refcount[id, default: 0] += 1
                audit.live.insert(id)
            }
        }
        // Each part of an unfinished multipart upload holds one on each distinct chunk it lists.
        for row in try Row.fetchAll(db, sql: "SELECT upload_id, number, body FROM upload_part") {
            let name = "upload \(row["upload_id"] as String) part \(row["number"] as Int)"
            guard let ids = decoded(name, { Array(Set(try Manifest(decoding: [UInt8](row["body"] as Data)).entries.map(\.id))) }) else {
                continue
            }
            damaged(name, ids)
            for id in ids {
                refcount[id, default: 0] += 1
                audit.live.insert(id)
            }
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, entry_refs, refcount FROM chunk") {
            let id = try Catalog.chunkID(row["id"] as Data)
            let stored = (entryRefs: row["entry_refs"] as Int, refcount: row["refcount"] as Int)
            let expected = (entryRefs: entryRefs[id] ?? 0, refcount: refcount[id] ?? 0)
            if stored != expected { audit.mismatched.append(.init(chunk: id, stored: stored, expected: expected)) }
        }
        return audit
    }
}

extension Catalog {
    public struct ReferenceAudit: Sendable {
        /// Every chunk a live object, trash entry or part refers to: the manifests themselves and the
        /// chunks they list.
        public var live: Set<ChunkID> = []
        /// Chunks whose stored counts are not what the live objects make them.
        public var mismatched: [Mismatch] = []
        /// Objects (and trash entries, parts) that list a chunk the catalog does not record, records on
        /// no provider, or that was found lost (`auditReferences(lost:)`): they cannot be read whole.
        public var damaged: [DamagedObject] = []
        /// Objects, trash entries and parts whose chunk list cannot be read (a damaged manifest body):
        /// what they refer to is unknown, so nothing unreferenced can be known to be garbage.
        public var unreadable: [String] = []

        public struct Mismatch: Sendable, Equatable {
            public let chunk: ChunkID
            public let stored: (entryRefs: Int, refcount: Int)
            public let expected: (entryRefs: Int, refcount: Int)
            public static func == (a: Mismatch, b: Mismatch) -> Bool {
                a.chunk == b.chunk && a.stored == b.stored && a.expected == b.expected
            }
        }

        public struct DamagedObject: Sendable, Equatable {
            /// "BUCKET/KEY", "trash: BUCKET/KEY" or "upload ID part N".
            public let name: String
            public let missingChunks: [ChunkID]
        }
    }
}
