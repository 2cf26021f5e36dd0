import Foundation
import GRDB

/// One entry of a bucket's namespace as a filesystem sees it (the mount): the same rows the blob
/// API reads as objects and folders.
public struct Inode: Sendable, Equatable {
    /// Stored as its raw value in `inode.kind`.
    public enum Kind: String, Sendable, DatabaseValueConvertible { case directory = "d", file = "f", symlink = "l" }
    /// The inode number. For a hard link's extra name, that of the file it names.
    public let id: Int64
    public let kind: Kind
    /// Permission bits (07777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    /// Nanoseconds since 1970.
    public var atime: Int64
    public var mtime: Int64
    public var ctime: Int64
    /// A file's content (nil for folders and symlinks).
    public var manifestID: ChunkID?
    public var symlinkTarget: String?
    /// For a special file made in a mount (a FIFO, socket or device; kind `.file`, no content): its
    /// st_mode type bits, and its device number.
    public var special: UInt32? = nil
    public var rdev: UInt64 = 0
    /// Names the file has (1 plus its hard links); for folders 2 plus their subfolders.
    public var links: Int
}

/// A namespace operation refused, as the errno a filesystem answers with.
public enum NamespaceError: Error, Equatable, Sendable {
    case notFound, exists, notEmpty, notDirectory, isDirectory, invalid, nameTooLong, noAttribute, notPermitted
}

extension Namespace {
    static let inodeColumns = "id, kind, mode, uid, gid, size, atime, mtime, ctime, manifest, symlink_target, link_of, special, rdev"

    /// The inode `id` (following a hard link's extra name to its file), or nil.
    public func inode(_ id: Int64) throws -> Inode? {
        try pool.read { db in try Self.inode(id, db) }
    }

    /// The entry `name` in folder `parent`, or nil.
    public func lookup(parent: Int64, name: String) throws -> Inode? {
        try pool.read { db in try Self.lookup(parent, name, db) }
    }

    /// The children of `folder` whose row ID is above `after`, in row-ID order (stable while entries
    /// come and go: a listing resumed from a row ID neither repeats nor skips survivors).
    public func children(of folder: Int64, after: Int64, limit: Int) throws -> [(row: Int64, name: String, inode: Inode)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name FROM inode WHERE parent_id = ? AND id > ? ORDER BY id LIMIT ?",
                             arguments: [folder, after, limit]).compactMap { row in
                guard let inode = try Self.inode(row["id"], db) else { return nil }
                return (row["id"], row["name"], inode)
            }
        }
    }

    /// The folder holding `id` (its first name's), or nil for a bucket's root.
    public func parent(of id: Int64) throws -> Int64? {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT parent_id FROM inode WHERE id = ?", arguments: [id]) }
    }

    /// Creates a folder, file or symlink named `name` in `parent`. A file starts with `manifest`
    /// (an empty one, already stored and recorded as a chunk).
    /// `special` (with kind `.file` and no manifest): a FIFO, socket or device node's type bits and device number.
    public func makeNode(parent: Int64, name: String, kind: Inode.Kind, mode: UInt32, uid: UInt32, gid: UInt32,
                         symlinkTarget: String? = nil, manifest: (id: ChunkID, body: [UInt8])? = nil,
                         special: (type: UInt32, rdev: UInt64)? = nil) throws -> Inode {
        try Self.checkName(name)
        return try pool.write { db in
            let bucket = try Self.freeName(parent, name, db)
            let now = Catalog.now()
            var manifestData: Data?
            var size: Int64 = 0
            if kind == .file, let manifest {
                size = try ChunkIndex.insertManifest(manifest.id, body: manifest.body, db)
                manifestData = Data(manifest.id.bytes)
            }
            try db.cachedStatement(sql: """
                INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, atime, mtime, ctime, manifest, symlink_target,
                                  special, rdev)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [bucket, parent, name, kind.rawValue, mode & 0o7777, uid, gid,
                                 kind == .symlink ? Int64(symlinkTarget?.utf8.count ?? 0) : size, now, now, now,
                                 manifestData, symlinkTarget, special.map { Int64($0.type) },
                                 special.map { Int64(bitPattern: $0.rdev) }])
            let id = db.lastInsertedRowID
            if let manifest, kind == .file { try ChunkIndex.adjustManifest(manifest.id, by: 1, db) }
            try Self.touch(parent, now, db)
            // What was just written (no need to read it back).
            return Inode(id: id, kind: kind, mode: mode & 0o7777, uid: uid, gid: gid,
                         size: kind == .symlink ? Int64(symlinkTarget?.utf8.count ?? 0) : size, atime: now, mtime: now, ctime: now,
                         manifestID: kind == .file ? manifest?.id : nil, symlinkTarget: kind == .symlink ? symlinkTarget : nil,
                         special: special?.type, rdev: special?.rdev ?? 0, links: kind == .directory ? 2 : 1)
        }
    }

    /// Adds the name `name` in `parent` for the file `id` (a hard link).
    public func link(_ id: Int64, parent: Int64, name: String) throws -> Inode {
        try Self.checkName(name)
        return try pool.write { db in
            guard let target = try Self.inode(id, db) else { throw NamespaceError.notFound }
            guard target.kind == .file else { throw NamespaceError.notPermitted }
            let bucket = try Self.freeName(parent, name, db)
            let now = Catalog.now()
            try db.execute(sql: """
                INSERT INTO inode(bucket_id, parent_id, name, kind, mode, uid, gid, size, mtime, ctime, link_of)
                VALUES (?, ?, ?, 'f', 0, 0, 0, 0, ?, ?, ?)
                """, arguments: [bucket, parent, name, now, now, target.id])
            try db.execute(sql: "UPDATE inode SET ctime = ? WHERE id = ?", arguments: [now, target.id])
            try Self.touch(parent, now, db)
            return try Self.inode(target.id, db)!
        }
    }

    /// Removes the file or symlink `name` from `parent`; returns its inode number. A file's last
    /// name goes to the bucket's trash (as a deleted object does); an earlier one just goes.
    @discardableResult
    public func unlink(parent: Int64, name: String) throws -> Int64 {
        try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT id, kind, link_of FROM inode WHERE parent_id = ? AND name = ?",
                                             arguments: [parent, name]) else { throw NamespaceError.notFound }
            guard row["kind"] as Inode.Kind != .directory else { throw NamespaceError.isDirectory }
            let now = Catalog.now()
            let id = (row["link_of"] as Int64?) ?? row["id"]
            try Self.dropName(row["id"], trash: true, now: now, db)
            try Self.touch(parent, now, db)
            return id
        }
    }

    /// Removes the empty folder `name` from `parent`.
    public func rmdir(parent: Int64, name: String) throws {
        try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT id, kind FROM inode WHERE parent_id = ? AND name = ?",
                                             arguments: [parent, name]) else { throw NamespaceError.notFound }
            guard row["kind"] as Inode.Kind == .directory else { throw NamespaceError.notDirectory }
            try Self.dropFolder(row["id"], db)
            try Self.touch(parent, Catalog.now(), db)
        }
    }

    /// Renames `parent/name` to `newParent/newName` in one transaction, replacing what is there (a
    /// file by a file, a folder by an empty folder) unless `flags` say otherwise. A folder's rename
    /// is one row update, however much it holds.
    public func rename(parent: Int64, name: String, newParent: Int64, newName: String, flags: Catalog.RenameFlags = []) throws {
        try Self.checkName(newName)
        try pool.write { db in
            guard let source = try Row.fetchOne(db, sql: "SELECT id, kind FROM inode WHERE parent_id = ? AND name = ?",
                                                arguments: [parent, name]) else { throw NamespaceError.notFound }
            guard try String.fetchOne(db, sql: "SELECT kind FROM inode WHERE id = ?", arguments: [newParent]) == "d" else {
                throw NamespaceError.notDirectory
            }
            let sourceID: Int64 = source["id"]
            let sourceIsFolder = source["kind"] as Inode.Kind == .directory
            let target = try Row.fetchOne(db, sql: "SELECT id, kind, link_of FROM inode WHERE parent_id = ? AND name = ?",
                                          arguments: [newParent, newName])
            let now = Catalog.now()
            // A folder cannot move below itself.
            if sourceIsFolder, try Self.isInside(newParent, sourceID, db) { throw NamespaceError.invalid }
            if flags.contains(.exchange) {
                guard let target else { throw NamespaceError.notFound }
                let targetID: Int64 = target["id"]
                if target["kind"] as Inode.Kind == .directory, try Self.isInside(parent, targetID, db) { throw NamespaceError.invalid }
                if targetID == sourceID { return }
                try db.execute(sql: "UPDATE inode SET parent_id = NULL, name = ? WHERE id = ?", arguments: ["\u{0}exchange", sourceID])
                try db.execute(sql: "UPDATE inode SET parent_id = ?, name = ?, ctime = ? WHERE id = ?", arguments: [parent, name, now, targetID])
                try db.execute(sql: "UPDATE inode SET parent_id = ?, name = ?, ctime = ? WHERE id = ?",
                               arguments: [newParent, newName, now, sourceID])
            } else {
                if let target {
                    guard !flags.contains(.noReplace) else { throw NamespaceError.exists }
                    let targetID: Int64 = target["id"]
                    if targetID == sourceID { return }
                    let targetIsFolder = target["kind"] as Inode.Kind == .directory
                    // Two names of one file: POSIX says do nothing.
                    let sourceFile = try Int64.fetchOne(db, sql: "SELECT COALESCE(link_of, id) FROM inode WHERE id = ?", arguments: [sourceID])
                    if !targetIsFolder, sourceFile == (target["link_of"] as Int64?) ?? targetID { return }
                    if sourceIsFolder {
                        guard targetIsFolder else { throw NamespaceError.notDirectory }
                        try Self.dropFolder(targetID, db)
                    } else {
                        guard !targetIsFolder else { throw NamespaceError.isDirectory }
                        try Self.dropName(targetID, trash: false, now: now, db)
                    }
                }
                try db.execute(sql: "UPDATE inode SET parent_id = ?, name = ?, ctime = ?, implicit = 0 WHERE id = ?",
                               arguments: [newParent, newName, now, sourceID])
            }
            try Self.touch(parent, now, db)
            if newParent != parent { try Self.touch(newParent, now, db) }
        }
    }

    /// Changes owner, permissions or times (ctime becomes now).
    public func setAttributes(_ id: Int64, _ change: Catalog.AttributeChange) throws -> Inode {
        try pool.write { db in
            guard let inode = try Self.inode(id, db) else { throw NamespaceError.notFound }
            try db.execute(sql: "UPDATE inode SET mode = ?, uid = ?, gid = ?, atime = ?, mtime = ?, ctime = ? WHERE id = ?",
                           arguments: [(change.mode ?? inode.mode) & 0o7777, change.uid ?? inode.uid, change.gid ?? inode.gid,
                                       change.atime ?? inode.atime, change.mtime ?? inode.mtime, Catalog.now(), inode.id])
            return try Self.inode(inode.id, db)!
        }
    }

    /// Points file `id` at new content (a manifest whose chunks are recorded, or in `chunks`), in one
    /// transaction. False when the file no longer exists (unlinked while open): nothing is changed
    /// then but the chunks' records.
    public func commitContent(_ id: Int64, manifestID: ChunkID, manifest: Manifest, chunks: [StoredChunk],
                              mtime: Int64, durable: Bool = false) throws -> Bool {
        let body = manifest.encoded
        let committed = try pool.write { db in
            try ChunkIndex.insert(chunks, db)
            guard let row = try Row.fetchOne(db, sql: "SELECT manifest, kind FROM inode WHERE id = ?", arguments: [id]),
                  row["kind"] as Inode.Kind == .file else { return false }
            for chunk in Set(manifest.entries.map(\.id))
            where try !ChunkIndex.isStored(chunk, db) {
                throw StoreError(.internal, "content commit refused: chunk \(chunk.short) is not recorded as stored")
            }
            try ChunkIndex.insertManifest(manifestID, body: body, db)
            try db.execute(sql: "UPDATE inode SET manifest = ?, size = ?, mtime = ?, ctime = ? WHERE id = ?",
                           arguments: [Data(manifestID.bytes), manifest.size, mtime, Catalog.now(), id])
            try ChunkIndex.adjustManifest(manifestID, by: 1, db)
            if let old = row["manifest"] as Data? { try ChunkIndex.adjustManifest(try Catalog.chunkID(old), by: -1, db) }
            return true
        }
        if durable && relaxed { try Catalog.sync(pool, relaxed: relaxed) }
        return committed
    }

    /// A manifest the catalog holds.
    public func manifest(_ id: ChunkID) throws -> Manifest {
        guard let body = try pool.read({ db in
            try Data.fetchOne(db, sql: "SELECT body FROM manifest WHERE id = ?", arguments: [Data(id.bytes)])
        }) else { throw StoreError(.internal, "manifest \(id.short) has no body in the catalog") }
        return try Manifest(decoding: [UInt8](body))
    }

    // MARK: - Extended attributes

    public func xattr(_ id: Int64, name: String) throws -> [UInt8]? {
        try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM xattr WHERE inode_id = ? AND name = ?", arguments: [id, name]).map { [UInt8]($0) }
        }
    }

    public func xattrNames(_ id: Int64) throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM xattr WHERE inode_id = ? ORDER BY name", arguments: [id]) }
    }

    /// Sets an attribute; `create`: fail with `exists` if it is there, `replace`: with `noAttribute` if not.
    public func setXattr(_ id: Int64, name: String, value: [UInt8], create: Bool = false, replace: Bool = false) throws {
        try pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM inode WHERE id = ?", arguments: [id]) == true else { throw NamespaceError.notFound }
            let present = try Bool.fetchOne(db, sql: "SELECT 1 FROM xattr WHERE inode_id = ? AND name = ?", arguments: [id, name]) == true
            if create && present { throw NamespaceError.exists }
            if replace && !present { throw NamespaceError.noAttribute }
            try db.execute(sql: "INSERT OR REPLACE INTO xattr(inode_id, name, value) VALUES (?, ?, ?)", arguments: [id, name, Data(value)])
            try db.execute(sql: "UPDATE inode SET ctime = ? WHERE id = ?", arguments: [Catalog.now(), id])
        }
    }

    public func removeXattr(_ id: Int64, name: String) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM xattr WHERE inode_id = ? AND name = ?", arguments: [id, name])
            guard db.changesCount > 0 else { throw NamespaceError.noAttribute }
        }
    }

    // MARK: - Inside transactions

    static func checkName(_ name: String) throws {
        guard name.utf8.count <= Names.maxSegmentBytes else { throw NamespaceError.nameTooLong }
        guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(0x2f), !name.utf8.contains(0) else {
            throw NamespaceError.invalid
        }
    }

    /// The bucket of folder `parent`, where `name` is still free (a new entry's checks).
    static func freeName(_ parent: Int64, _ name: String, _ db: Database) throws -> Int64 {
        guard let bucket = try Int64.fetchOne(try db.cachedStatement(sql: "SELECT bucket_id FROM inode WHERE id = ? AND kind = 'd'"),
                                              arguments: [parent]) else {
            throw try inode(parent, db) == nil ? NamespaceError.notFound : NamespaceError.notDirectory
        }
        if try Bool.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM inode WHERE parent_id = ? AND name = ?"),
                             arguments: [parent, name]) == true {
            throw NamespaceError.exists
        }
        return bucket
    }

    static func inode(_ id: Int64, _ db: Database) throws -> Inode? {
        guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT \(inodeColumns) FROM inode WHERE id = ?"), arguments: [id])
        else { return nil }
        if let target = row["link_of"] as Int64? { return try inode(target, db) }
        let kind = Inode.Kind(rawValue: row["kind"]) ?? .file
        let links: Int
        switch kind {
        case .directory:
            links = 2 + (try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM inode WHERE parent_id = ? AND kind = 'd'"),
                                          arguments: [id]) ?? 0)
        case .file:
            links = 1 + (try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM inode WHERE link_of = ?"), arguments: [id]) ?? 0)
        case .symlink:
            links = 1
        }
        let mtime: Int64 = row["mtime"]
        return Inode(id: id, kind: kind, mode: UInt32(truncatingIfNeeded: row["mode"] as Int64), uid: UInt32(truncatingIfNeeded: row["uid"] as Int64),
                     gid: UInt32(truncatingIfNeeded: row["gid"] as Int64), size: row["size"], atime: row["atime"] ?? mtime, mtime: mtime,
                     ctime: row["ctime"], manifestID: try (row["manifest"] as Data?).map(Catalog.chunkID),
                     symlinkTarget: row["symlink_target"], special: (row["special"] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                     rdev: UInt64(bitPattern: row["rdev"] ?? 0), links: links)
    }

    static func lookup(_ parent: Int64, _ name: String, _ db: Database) throws -> Inode? {
        guard let id = try Int64.fetchOne(try db.cachedStatement(sql: "SELECT id FROM inode WHERE parent_id = ? AND name = ?"),
                                          arguments: [parent, name]) else { return nil }
        return try inode(id, db)
    }

    /// Whether `folder` is `ancestor` or below it.
    static func isInside(_ folder: Int64, _ ancestor: Int64, _ db: Database) throws -> Bool {
        var current: Int64? = folder
        while let id = current {
            if id == ancestor { return true }
            current = try Int64.fetchOne(db, sql: "SELECT parent_id FROM inode WHERE id = ?", arguments: [id])
        }
        return false
    }

    static func touch(_ folder: Int64, _ now: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE inode SET mtime = ?, ctime = ? WHERE id = ?").execute(arguments: [now, now, folder])
    }

    /// The key of row `id` within its bucket (`a/b/c.txt`).
    static func key(of id: Int64, _ db: Database) throws -> String {
        var names: [String] = []
        var current: Int64? = id
        while let row = try Row.fetchOne(db, sql: "SELECT parent_id, name FROM inode WHERE id = ?", arguments: [current]),
              let parent = row["parent_id"] as Int64? {
            names.append(row["name"])
            current = parent
        }
        return names.reversed().joined(separator: "/")
    }

    /// Removes the name held by row `row` (a file, a symlink or a hard link's extra name). A file
    /// that keeps other names passes its content to one of them; a file's last name goes to the
    /// trash (`trash`) or drops its reference on the content.
    static func dropName(_ row: Int64, trash: Bool, now: Int64, _ db: Database) throws {
        guard let info = try Row.fetchOne(db, sql: """
            SELECT bucket_id, parent_id, kind, link_of, manifest, size, mtime, mode, uid, gid FROM inode WHERE id = ?
            """, arguments: [row]) else { return }
        if let target = info["link_of"] as Int64? {
            try db.execute(sql: "DELETE FROM inode WHERE id = ?", arguments: [row])
            try db.execute(sql: "UPDATE inode SET ctime = ? WHERE id = ?", arguments: [now, target])
            return
        }
        if let heir = try Row.fetchOne(db, sql: "SELECT id, parent_id, name FROM inode WHERE link_of = ? ORDER BY id LIMIT 1",
                                       arguments: [row]) {
            // The inode keeps its number and content and takes over the extra name's place.
            try db.execute(sql: "DELETE FROM inode WHERE id = ?", arguments: [heir["id"] as Int64])
            try db.execute(sql: "UPDATE inode SET parent_id = ?, name = ?, ctime = ? WHERE id = ?",
                           arguments: [heir["parent_id"] as Int64, heir["name"] as String, now, row])
            return
        }
        if let manifest = info["manifest"] as Data? {
            if trash {
                try db.execute(sql: """
                    INSERT INTO trash(bucket_id, key, manifest, size, mtime, mode, uid, gid, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [info["bucket_id"] as Int64, try key(of: row, db), manifest, info["size"] as Int64,
                                     info["mtime"] as Int64, info["mode"] as Int64, info["uid"] as Int64, info["gid"] as Int64, now])
            } else {
                try ChunkIndex.adjustManifest(try Catalog.chunkID(manifest), by: -1, db)
            }
        }
        try db.execute(sql: "DELETE FROM xattr WHERE inode_id = ?", arguments: [row])
        try db.execute(sql: "DELETE FROM inode WHERE id = ?", arguments: [row])
    }

    static func dropFolder(_ id: Int64, _ db: Database) throws {
        guard try Int64.fetchOne(db, sql: "SELECT parent_id FROM inode WHERE id = ?", arguments: [id]) != nil else {
            throw NamespaceError.invalid  // a bucket's root
        }
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM inode WHERE parent_id = ? LIMIT 1", arguments: [id]) != true else {
            throw NamespaceError.notEmpty
        }
        try db.execute(sql: "DELETE FROM xattr WHERE inode_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM inode WHERE id = ?", arguments: [id])
    }

    // MARK: - Names of inodes

    /// The key of inode `id` in its bucket (its names up to the bucket's root), or nil when it is gone.
    public func key(ofInode id: Int64) -> String? {
        try? pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM inode WHERE id = ?", arguments: [id]) == true ? try Self.key(of: id, db) : nil
        }
    }
}

extension Catalog {
    public struct RenameFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Fail with `exists` rather than replace (RENAME_NOREPLACE).
        public static let noReplace = Catalog.RenameFlags(rawValue: 1)
        /// Swap the two entries, both of which must exist (RENAME_EXCHANGE).
        public static let exchange = Catalog.RenameFlags(rawValue: 2)
    }

    public struct AttributeChange: Sendable {
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var atime: Int64?
        public var mtime: Int64?
        public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, atime: Int64? = nil, mtime: Int64? = nil) {
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.atime = atime
            self.mtime = mtime
        }
    }
}
