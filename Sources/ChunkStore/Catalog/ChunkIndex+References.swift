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
        try pool.read { db in try audit(db, lost: lost) }
    }

    /// Sets every chunk's reference counts to what the live objects make them (after damage to the
    /// catalog, once `a67 scrub` has said what is lost); returns how many chunks changed.
    public func recountReferences() throws -> Int {
        try pool.write { db in
            let audit = try audit(db)
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

    /// The audit, in the caller's transaction on the catalog (`db`, one consistent view). Its working
    /// set (a row per reference, about 40 bytes each) goes to a scratch database beside the catalog,
    /// deleted afterwards, so that memory holds only what it reports, whatever the repository's size:
    ///
    /// 1. every namespace and trash entry that has a manifest is copied to the scratch `entry` table;
    /// 2. for each distinct manifest (grouped in the scratch database), one entry reference on it and
    ///    one reference on each distinct chunk its body lists go to `expect`, and each listed chunk is
    ///    looked up in `chunk_location` (an index lookup: a chunk recorded nowhere makes the object damaged);
    /// 3. each unfinished upload part likewise;
    /// 4. the catalog's chunks (by ID) and the summed expectations (grouped and sorted by ID) are
    ///    merged, page by page, and every difference is a mismatch.
    private func audit(_ db: Database, lost: Set<ChunkID> = []) throws -> Catalog.ReferenceAudit {
        let folder = URL(fileURLWithPath: pool.path).deletingLastPathComponent().path
        Self.removeAbandonedScratchFiles(in: folder)
        let path = folder + "/.audit-\(getpid())-\(Hex.encode(Crypto.randomBytes(8))).db"
        defer { for suffix in ["", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var configuration = Configuration()
        configuration.label = "a67-audit"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
        }
        let scratch: DatabaseQueue
        do {
            scratch = try DatabaseQueue(path: path, configuration: configuration)
        } catch let error as DatabaseError {
            throw StoreError(.io, "cannot make the reference audit's scratch file \(path): \(error.message ?? error.description)")
        }
        return try scratch.inDatabase { work in try Self.audit(db, scratch: work, lost: lost) }
    }

    private static func audit(_ db: Database, scratch: Database, lost: Set<ChunkID>) throws -> Catalog.ReferenceAudit {
        var audit = Catalog.ReferenceAudit()
        try scratch.execute(sql: """
            CREATE TABLE entry (manifest BLOB NOT NULL, bucket TEXT NOT NULL, inode INTEGER, key TEXT);
            CREATE TABLE expect (chunk BLOB NOT NULL, entry_refs INTEGER NOT NULL, refcount INTEGER NOT NULL);
            """)
        let isLocated = try db.makeStatement(sql: "SELECT 1 FROM chunk_location WHERE chunk_id = ? LIMIT 1")
        let addExpected = try scratch.makeStatement(sql: "INSERT INTO expect (chunk, entry_refs, refcount) VALUES (?, ?, ?)")

        /// `body`'s value; nil when it throws, with `name` reported unreadable.
        func decoded<T>(_ name: () throws -> String, _ body: () throws -> T) throws -> T? {
            do {
                return try body()
            } catch {
                audit.unreadable.append("\(try name()): \(error)")
                return nil
            }
        }
        /// Records one reference on each of `ids` and reports `name` damaged if any is recorded nowhere (or lost).
        func reference(_ ids: [ChunkID], by name: () throws -> String, checking extra: [ChunkID] = []) throws {
            var missing: [ChunkID] = []
            for id in ids + extra {
                let located = try Bool.fetchOne(isLocated, arguments: [Data(id.bytes)]) == true
                if !located || lost.contains(id) { missing.append(id) }
            }
            for id in ids { try addExpected.execute(arguments: [Data(id.bytes), 0, 1]) }
            if !missing.isEmpty { audit.damaged.append(.init(name: try name(), missingChunks: missing)) }
        }

        // 1. Namespace entries and trash entries each hold one entry reference on their manifest.
        let copyEntry = try scratch.makeStatement(sql: "INSERT INTO entry (manifest, bucket, inode, key) VALUES (?, ?, ?, ?)")
        let entries = try Row.fetchCursor(db, sql: """
            SELECT i.manifest, b.name AS bucket, i.id AS inode, NULL AS key FROM inode i JOIN bucket b ON b.id = i.bucket_id
            WHERE i.manifest IS NOT NULL
            UNION ALL
            SELECT t.manifest, b.name, NULL, t.key FROM trash t JOIN bucket b ON b.id = t.bucket_id
            """)
        while let row = try entries.next() {
            try copyEntry.execute(arguments: [row["manifest"] as Data, row["bucket"] as String, row["inode"] as Int64?, row["key"] as String?])
        }

        // 2. Each manifest in use holds one reference on each distinct chunk it lists.
        let body = try db.makeStatement(sql: "SELECT body FROM manifest WHERE id = ?")
        let manifests = try Row.fetchCursor(scratch, sql: """
            SELECT manifest, COUNT(*) AS n, MIN(rowid) AS first FROM entry GROUP BY manifest
            """)
        while let row = try manifests.next() {
            let manifest = try Catalog.chunkID(row["manifest"] as Data)
            try addExpected.execute(arguments: [Data(manifest.bytes), row["n"] as Int, 0])
            let first: Int64 = row["first"]
            // Named (a walk up the inode tree) only when reported.
            let name = { try Self.entryName(first, scratch: scratch, db) }
            guard let encoded = try Data.fetchOne(body, arguments: [Data(manifest.bytes)]) else {
                audit.damaged.append(.init(name: try name(), missingChunks: [manifest]))
                continue
            }
            guard let ids = try decoded(name, { Array(Set(try Manifest(decoding: [UInt8](encoded)).entries.map(\.id))) }) else {
                continue
            }
            try reference(ids, by: name, checking: [manifest])
        }

        // 3. Each part of an unfinished multipart upload holds one on each distinct chunk it lists.
        let parts = try Row.fetchCursor(db, sql: "SELECT upload_id, number, body FROM upload_part")
        while let row = try parts.next() {
            let name = { "upload \(row["upload_id"] as String) part \(row["number"] as Int)" }
            guard let ids = try decoded(name, { Array(Set(try Manifest(decoding: [UInt8](row["body"] as Data)).entries.map(\.id))) }) else {
                continue
            }
            try reference(ids, by: name)
        }

        // 4. The stored counts against the expected ones, both in ID order.
        let stored = try Row.fetchCursor(db, sql: "SELECT id, entry_refs, refcount FROM chunk ORDER BY id")
        let expected = try Row.fetchCursor(scratch, sql: """
            SELECT chunk, SUM(entry_refs) AS entry_refs, SUM(refcount) AS refcount FROM expect GROUP BY chunk ORDER BY chunk
            """)
        var next = try expected.next().map { (id: [UInt8]($0["chunk"] as Data), counts: ($0["entry_refs"] as Int, $0["refcount"] as Int)) }
        while let row = try stored.next() {
            let id = try Catalog.chunkID(row["id"] as Data)
            // Expectations for chunks the catalog does not record are the damage found above.
            while let pending = next, pending.id.lexicographicallyPrecedes(id.bytes) {
                next = try expected.next().map { (id: [UInt8]($0["chunk"] as Data), counts: ($0["entry_refs"] as Int, $0["refcount"] as Int)) }
            }
            var counts = (entryRefs: 0, refcount: 0)
            if let pending = next, pending.id == id.bytes { counts = pending.counts }
            let storedCounts = (entryRefs: row["entry_refs"] as Int, refcount: row["refcount"] as Int)
            if storedCounts != counts { audit.mismatched.append(.init(chunk: id, stored: storedCounts, expected: counts)) }
        }
        return audit
    }

    /// Removes the scratch files of audits whose process is gone (killed mid-audit).
    static func removeAbandonedScratchFiles(in folder: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(".audit-") {
            let fields = name.split(separator: "-")
            guard fields.count >= 3, let pid = Int32(fields[1]), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// "BUCKET/KEY" or "trash: BUCKET/KEY" of the scratch entry `rowid`.
    private static func entryName(_ rowid: Int64, scratch: Database, _ db: Database) throws -> String {
        guard let row = try Row.fetchOne(scratch, sql: "SELECT bucket, inode, key FROM entry WHERE rowid = ?", arguments: [rowid]) else {
            return "?"
        }
        if let inode = row["inode"] as Int64? { return (row["bucket"] as String) + "/" + (try Namespace.key(of: inode, db)) }
        return "trash: " + (row["bucket"] as String) + "/" + (row["key"] as String? ?? "?")
    }
}

extension Catalog {
    public struct ReferenceAudit: Sendable {
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
