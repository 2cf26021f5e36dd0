import ChunkStore
import Foundation
import Logging
import Replicator
import Synchronization

/// The filesystem: each operation of the mount over the bucket's inode table and the chunk pool,
/// with Swift values in and out (`FUSEAdapter.swift` turns libfuse's requests into these calls and
/// their results or errors into replies). Inodes are the catalog's IDs; the adapter maps the
/// bucket's root to FUSE's 1. Operations that wait for the store (a write that needs a block's old
/// bytes, a commit) block their calling thread: call them from a thread of their own, never from
/// one of Swift's cooperative threads (`runOnOwnThread`).
final class MountFileSystem: Sendable {
    let context: MountContext
    let root: Int64
    /// Files open now (or with changes not yet committed), by inode.
    let nodes = Mutex<[Int64: FileNode]>([:])
    /// The content each file had when the kernel last read it: reopened unchanged, its page cache is kept.
    let served: Mutex<ServedContent>
    /// Files whose last commit failed: the reason, when it was last logged, the failed attempts.
    let failing = Mutex<[Int64: (reason: String, logged: ContinuousClock.Instant, attempts: Int)]>([:])

    init(context: MountContext, servedLimit: Int = ServedContent.defaultLimit) {
        self.context = context
        root = context.bucket.rootInode
        served = Mutex(ServedContent(limit: servedLimit))
    }

    var catalog: Catalog { context.catalog }

    /// Who asks (the kernel's request context): new entries are theirs.
    struct Caller: Sendable {
        let uid: UInt32
        let gid: UInt32
    }

    /// An entry's attributes as the kernel is told them (the fields of a stat).
    struct Attributes: Equatable, Sendable {
        var id: Int64
        /// Type and permission bits (st_mode).
        var mode: UInt32
        var links: Int
        var uid: UInt32
        var gid: UInt32
        var size: Int64
        var rdev: UInt64 = 0
        /// Nanoseconds since the epoch.
        var atime: Int64 = 0
        var mtime: Int64
        var ctime: Int64
    }

    /// What a setattr changes; nil fields stay.
    struct AttributeChanges: Sendable {
        enum Time: Sendable {
            case now
            case at(Int64)
        }
        var mode: UInt32?
        var uid: UInt32?
        var gid: UInt32?
        var size: Int64?
        var atime: Time?
        var mtime: Time?
    }

    /// An open file: the handle the kernel passes back, and whether its cached pages are still this content.
    struct OpenFile: Equatable, Sendable {
        let handle: Int64
        let keepCache: Bool
    }

    /// One entry of a folder listing; `next` is the offset that resumes after it. "." and ".." come
    /// without attributes (the kernel asks for them).
    struct DirectoryEntry: Sendable {
        let name: String
        let id: Int64
        let mode: UInt32
        let attributes: Attributes?
        let next: Int64
    }

    /// What statfs reports, in blocks of `blockSize` bytes.
    struct Capacity: Equatable, Sendable {
        let blockSize: Int64
        let blocks: Int64
        let freeBlocks: Int64
        let files: UInt64
        let freeFiles: UInt64
        let nameMax: Int
    }

    // MARK: - Attributes

    func attributes(_ inode: Inode) -> Attributes {
        var size = inode.size
        var mtime = inode.mtime
        if inode.kind == .file, let node = nodes.withLock({ $0[inode.id] }) {
            node.state.withLock { s in
                size = s.size
                if s.dirty { mtime = s.mtime }
            }
        }
        return Attributes(id: inode.id, mode: Self.type(inode) | (inode.mode & 0o7777), links: inode.links, uid: inode.uid,
                          gid: inode.gid, size: size, rdev: inode.rdev, atime: inode.atime, mtime: mtime,
                          ctime: max(inode.ctime, mtime))
    }

    /// The st_mode type bits of an entry.
    static func type(_ inode: Inode) -> UInt32 {
        switch inode.kind {
        case .directory: S_IFDIR
        case .file: inode.special ?? S_IFREG
        case .symlink: S_IFLNK
        }
    }

    static let logger = Logger(label: "a67.mount")

    func log(_ message: String) {
        Self.logger.notice("\(message)")
    }

    func inode(_ id: Int64) throws -> Inode {
        guard let inode = try catalog.namespace.inode(id) else { throw NamespaceError.notFound }
        return inode
    }

    // MARK: - Names

    func lookup(parent: Int64, name: String) throws -> Attributes {
        guard name.utf8.count <= Names.maxSegmentBytes else { throw NamespaceError.nameTooLong }
        guard let inode = try catalog.namespace.lookup(parent: parent, name: name) else { throw NamespaceError.notFound }
        return attributes(inode)
    }

    func getattr(_ id: Int64, caller: Caller) throws -> Attributes {
        if let inode = try catalog.namespace.inode(id) {
            return attributes(inode)
        } else if let node = nodes.withLock({ $0[id] }) {
            return unlinked(node, caller: caller)
        } else {
            throw NamespaceError.notFound
        }
    }

    /// A file unlinked while open is still there for its open handles, with no name (nlink 0).
    func unlinked(_ node: FileNode, caller: Caller) -> Attributes {
        let (size, mtime) = node.state.withLock { ($0.size, $0.mtime) }
        return Attributes(id: node.id, mode: S_IFREG | 0o600, links: 0, uid: caller.uid, gid: caller.gid, size: size,
                          mtime: mtime, ctime: mtime)
    }

    func setattr(_ id: Int64, _ changes: AttributeChanges, caller: Caller) throws -> Attributes {
        guard var inode = try catalog.namespace.inode(id) else {
            guard let node = nodes.withLock({ $0[id] }) else { throw NamespaceError.notFound }
            if let size = changes.size { try node.truncate(to: size, context: context) }
            return unlinked(node, caller: caller)
        }
        var change = Catalog.AttributeChange()
        change.mode = changes.mode.map { $0 & 0o7777 }
        change.uid = changes.uid
        change.gid = changes.gid
        let now = Catalog.now()
        func time(_ time: AttributeChanges.Time?) -> Int64? {
            switch time {
            case .now: now
            case .at(let nanoseconds): nanoseconds
            case nil: nil
            }
        }
        change.atime = time(changes.atime)
        change.mtime = time(changes.mtime)
        if let size = changes.size, inode.special == nil {
            guard inode.kind == .file else { throw NamespaceError.isDirectory }
            let node = try acquire(inode.id)
            defer { release(node) }
            try node.truncate(to: size, context: context)
            if let mtime = change.mtime { node.state.withLock { $0.mtime = mtime } }
        }
        if change.mode != nil || change.uid != nil || change.gid != nil || change.atime != nil || change.mtime != nil {
            inode = try catalog.namespace.setAttributes(inode.id, change)
            if let mtime = change.mtime, let node = nodes.withLock({ $0[inode.id] }) { node.state.withLock { $0.mtime = mtime } }
        }
        return attributes(try catalog.namespace.inode(inode.id) ?? inode)
    }

    func readlink(_ id: Int64) throws -> String {
        let inode = try inode(id)
        guard inode.kind == .symlink, let target = inode.symlinkTarget else { throw NamespaceError.invalid }
        return target
    }

    func mkdir(parent: Int64, name: String, mode: UInt32, caller: Caller) throws -> Attributes {
        attributes(try catalog.namespace.makeNode(parent: parent, name: name, kind: .directory, mode: mode,
                                        uid: caller.uid, gid: caller.gid))
    }

    /// A regular file (no open handle), or a FIFO, socket or device node (metadata only: the kernel
    /// serves them; the mount is nodev).
    func mknod(parent: Int64, name: String, mode: UInt32, rdev: UInt64, caller: Caller) throws -> Attributes {
        let type = mode & S_IFMT
        guard [S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].contains(type) else { throw MountError.errno(EINVAL) }
        let inode = type == S_IFREG
            ? try catalog.namespace.makeNode(parent: parent, name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                   manifest: context.emptyManifest)
            : try catalog.namespace.makeNode(parent: parent, name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                   special: (type, rdev))
        return attributes(inode)
    }

    func symlink(target: String, parent: Int64, name: String, caller: Caller) throws -> Attributes {
        attributes(try catalog.namespace.makeNode(parent: parent, name: name, kind: .symlink, mode: 0o777,
                                        uid: caller.uid, gid: caller.gid, symlinkTarget: target))
    }

    func link(_ id: Int64, parent: Int64, name: String) throws -> Attributes {
        attributes(try catalog.namespace.link(id, parent: parent, name: name))
    }

    func unlink(parent: Int64, name: String) throws {
        let gone = try catalog.namespace.unlink(parent: parent, name: name)
        markIfUnlinked(gone)
    }

    /// An open file whose last name went stays readable and writable through its handles; its
    /// changes are dropped at the last close.
    func markIfUnlinked(_ id: Int64) {
        guard let node = nodes.withLock({ $0[id] }), (try? catalog.namespace.inode(id)) == nil else { return }
        node.state.withLock { $0.unlinked = true }
    }

    func rmdir(parent: Int64, name: String) throws {
        try catalog.namespace.rmdir(parent: parent, name: name)
    }

    /// `flags`: rename(2)'s RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2); any other bit is EINVAL.
    func rename(parent: Int64, name: String, newParent: Int64, newName: String, flags: UInt32) throws {
        guard flags & ~3 == 0 else { throw MountError.errno(EINVAL) }
        let replaced = try catalog.namespace.lookup(parent: newParent, name: newName)
        try catalog.namespace.rename(parent: parent, name: name, newParent: newParent, newName: newName,
                           flags: Catalog.RenameFlags(rawValue: flags))
        if let replaced, flags & 2 == 0 { markIfUnlinked(replaced.id) }
    }

    // MARK: - Files

    /// The open state of file `id` (loaded on first open), with one more handle on it.
    func acquire(_ id: Int64) throws -> FileNode {
        if let node = nodes.withLock({ nodes -> FileNode? in
            let node = nodes[id]
            node?.state.withLock { $0.handles += 1 }
            return node
        }) { return node }
        guard let inode = try catalog.namespace.inode(id) else { throw NamespaceError.notFound }
        guard inode.kind == .file else { throw NamespaceError.isDirectory }
        let manifest = try inode.manifestID.map { try catalog.namespace.manifest($0) } ?? Manifest(entries: [])
        let fresh = FileNode(id: id, manifestID: inode.manifestID, manifest: manifest, mtime: inode.mtime)
        return nodes.withLock { nodes in
            let node = nodes[id] ?? fresh
            nodes[id] = node
            node.state.withLock { $0.handles += 1 }
            return node
        }
    }

    /// One handle fewer; the last one commits the file's changes (if a commit fails, the file stays
    /// here, changed, for the flusher to retry).
    func release(_ node: FileNode) {
        let last = node.state.withLock { s -> Bool in
            s.handles -= 1
            return s.handles == 0
        }
        guard last else { return }
        if node.state.withLock({ $0.refused != nil || $0.unlinked }) {
            // Over the quota, or unlinked: its changes go (a refused file's committed content stays).
            node.discardChanges(context: context)
        } else if node.state.withLock({ $0.dirty }) {
            do {
                try commit(node, durable: false)
            } catch {
                return
            }
        }
        forgetIfIdle(node)
    }

    /// Drops a file's open state once nothing holds it open and it has nothing left to commit.
    func forgetIfIdle(_ node: FileNode) {
        nodes.withLock { nodes in
            if node.state.withLock({ $0.handles == 0 && !$0.dirty }) {
                nodes[node.id] = nil
                context.budget.forget(node.id)
                context.quota.committed(file: node.id)
                node.releaseLeases(context: context)
            }
        }
    }

    /// Opens file `id` (emptied first with `truncate`, as O_TRUNC asks).
    func open(_ id: Int64, truncate: Bool) throws -> OpenFile {
        let node = try acquire(id)
        if truncate {
            do {
                try node.truncate(to: 0, context: context)
            } catch {
                release(node)
                throw error
            }
        }
        return OpenFile(handle: node.id, keepCache: keepCache(node))
    }

    /// The kernel keeps its cached pages of a file whose content is what it read last time.
    func keepCache(_ node: FileNode) -> Bool {
        let (manifest, dirty) = node.state.withLock { ($0.manifestID, $0.dirty) }
        return served.withLock { $0.serve(node.id, manifest, dirty: dirty) }
    }

    /// Creates and opens a new file (it starts as the empty manifest).
    func create(parent: Int64, name: String, mode: UInt32, caller: Caller) throws -> (Attributes, OpenFile) {
        let inode = try catalog.namespace.makeNode(parent: parent, name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                         manifest: context.emptyManifest)
        // A new file is the empty manifest: its open state needs no catalog read.
        let node = FileNode(id: inode.id, manifestID: context.emptyManifest.id, manifest: Manifest(entries: []), mtime: inode.mtime)
        node.state.withLock { $0.handles = 1 }
        nodes.withLock { $0[inode.id] = node }
        _ = served.withLock { $0.serve(inode.id, context.emptyManifest.id, dirty: false) }
        return (attributes(inode), OpenFile(handle: node.id, keepCache: false))
    }

    /// The open state of file `id`; EBADF when it is not open.
    func node(_ id: Int64) throws -> FileNode {
        guard let node = nodes.withLock({ $0[id] }) else { throw MountError.errno(EBADF) }
        return node
    }

    /// Up to `count` bytes at `offset` when they are at hand (changed blocks, cached chunks); nil
    /// when a chunk must be fetched first (then `read`).
    func readNow(_ id: Int64, offset: Int64, count: Int) throws -> [UInt8]? {
        try node(id).readableNow(at: offset, count: count, context: context)
    }

    /// Up to `count` bytes at `offset`, fetching the chunks they are in.
    func read(_ id: Int64, offset: Int64, count: Int) async throws -> [UInt8] {
        try await node(id).read(at: offset, count: count, context: context)
    }

    /// Writes `bytes` at `offset`; returns how many were written (all of them).
    func write(_ id: Int64, bytes: [UInt8], offset: Int64) throws -> Int {
        try node(id).write(bytes, at: offset, context: context)
        return bytes.count
    }

    /// Every close: commits the file's changes (a file over the quota answers EDQUOT here).
    func flush(_ id: Int64) throws {
        let node = try node(id)
        if node.state.withLock({ $0.dirty || $0.refused != nil }) {
            try commit(node, durable: false)
        }
    }

    /// Commits the file's changes durably (or, with none, syncs the catalog).
    func fsync(_ id: Int64) throws {
        let node = try node(id)
        if node.state.withLock({ $0.dirty || $0.refused != nil }) {
            try commit(node, durable: true)
        } else {
            try catalog.sync()
        }
    }

    /// The kernel let go of a handle.
    func release(_ id: Int64) {
        if let node = nodes.withLock({ $0[id] }) { release(node) }
    }

    func fsyncdir() throws {
        try catalog.sync()
    }

    // MARK: - Folders

    /// Folder `id`'s entries from `offset` (0 is the start; each entry's `next` resumes after it),
    /// with up to `limit` children from the catalog; `complete` when no child is left after them.
    func readdir(_ id: Int64, from offset: Int64, limit: Int) throws -> (entries: [DirectoryEntry], complete: Bool) {
        var entries: [DirectoryEntry] = []
        if offset < 1 { entries.append(DirectoryEntry(name: ".", id: id, mode: S_IFDIR, attributes: nil, next: 1)) }
        if offset < 2 {
            let parent = try catalog.namespace.parent(of: id) ?? id
            entries.append(DirectoryEntry(name: "..", id: parent, mode: S_IFDIR, attributes: nil, next: 2))
        }
        let batch = try catalog.namespace.children(of: id, after: max(0, offset - 2), limit: limit)
        for child in batch {
            entries.append(DirectoryEntry(name: child.name, id: child.inode.id, mode: Self.type(child.inode),
                                          attributes: attributes(child.inode), next: child.row + 2))
        }
        return (entries, batch.count < limit)
    }

    // MARK: - Extended attributes

    /// Names the mount keeps: `user.` and `trusted.` ones. `security.` and `system.` (ACLs) are
    /// not supported: the kernel then treats the file as having none.
    static func keptAttribute(_ name: String) -> Bool { name.hasPrefix("user.") || name.hasPrefix("trusted.") }

    /// `flags`: XATTR_CREATE (1), XATTR_REPLACE (2).
    func setxattr(_ id: Int64, name: String, value: [UInt8], flags: Int32) throws {
        guard Self.keptAttribute(name) else { throw MountError.errno(ENOTSUP) }
        guard name.utf8.count <= 255 else { throw MountError.errno(ERANGE) }
        guard value.count <= 65536 else { throw MountError.errno(E2BIG) }
        try catalog.namespace.setXattr(id, name: name, value: value, create: flags & 1 != 0, replace: flags & 2 != 0)
    }

    func getxattr(_ id: Int64, name: String) throws -> [UInt8] {
        guard Self.keptAttribute(name), let value = try catalog.namespace.xattr(id, name: name) else { throw NamespaceError.noAttribute }
        return value
    }

    /// The names, each ended by a NUL, as listxattr(2) gives them.
    func listxattr(_ id: Int64) throws -> [UInt8] {
        var out: [UInt8] = []
        for name in try catalog.namespace.xattrNames(id) { out += Array(name.utf8) + [0] }
        return out
    }

    func removexattr(_ id: Int64, name: String) throws {
        guard Self.keptAttribute(name) else { throw NamespaceError.noAttribute }
        try catalog.namespace.removeXattr(id, name: name)
    }

    // MARK: - Capacity

    /// From the providers' capacity (quotas, and for folders the disk's free space) divided by the
    /// bucket's replicas, and the owner's quota when there is one.
    func statfs() throws -> Capacity {
        var capacity: Int64 = 0
        var used: Int64 = 0
        for provider in try context.repository.providers() where provider.record.state == .active {
            var limit = provider.record.quota
            if case .directory(let path) = provider.spec {
                var fs = statvfs()
                if statvfs(path, &fs) == 0 {
                    let disk = Int64(fs.f_bavail) * Int64(fs.f_frsize) + provider.record.usedBytes
                    limit = min(limit ?? disk, disk)
                }
            }
            capacity += limit ?? (1 << 40)
            used += min(provider.record.usedBytes, limit ?? Int64.max)
        }
        let replicas = Int64(max(1, context.bucket.replicas))
        var total = capacity / replicas
        var taken = used / replicas
        if let owner = context.bucket.ownerID, let quota = try catalog.accounts.user(id: owner)?.quota {
            total = min(total, quota)
            taken = min(total, try catalog.accounts.usage(user: owner).bytes)
        }
        let block: Int64 = 4096
        return Capacity(blockSize: block, blocks: max(0, total / block), freeBlocks: max(0, (total - taken) / block),
                        files: 1 << 32, freeFiles: 1 << 31, nameMax: Names.maxSegmentBytes)
    }

    // MARK: - Background and shutdown

    /// Commits files changed more than `age` ago (all of them with `age` nil); returns failures.
    /// A file that fails is logged when it starts failing, when the reason changes and once a
    /// minute while it goes on, and once more when it is finally stored (never every retry).
    @discardableResult
    func commitDirty(olderThan age: Duration?, durable: Bool) -> [String] {
        let candidates = nodes.withLock { Array($0.values) }
        var failures: [String] = []
        for node in candidates {
            let due = node.state.withLock { s -> Bool in
                guard let since = s.dirtySince, s.refused == nil, !s.unlinked else { return false }
                return age.map { ContinuousClock.now - since >= $0 } ?? true
            }
            guard due else { continue }
            do {
                try commit(node, durable: durable)
            } catch {
                failures.append("\(name(node.id)): \(error)")
            }
            forgetIfIdle(node)
        }
        return failures
    }

    /// Commits a file's changes; notes (for the log) that it failed or that it succeeded after failing.
    func commit(_ node: FileNode, durable: Bool) throws {
        do {
            try node.commit(context: context, durable: durable)
        } catch MountError.errno(EDQUOT) {
            throw MountError.errno(EDQUOT)
        } catch {
            noteFailure(node.id, "\(error)")
            throw error
        }
        noteStored(node.id)
    }

    /// A file's path in the mount, for messages.
    func name(_ id: Int64) -> String { catalog.namespace.key(ofInode: id).map { "/" + $0 } ?? "inode \(id) (unlinked)" }

    func noteFailure(_ id: Int64, _ reason: String) {
        let now = ContinuousClock.now
        let announce = failing.withLock { failing -> Int? in
            var entry = failing[id] ?? (reason: "", logged: now, attempts: 0)
            entry.attempts += 1
            defer { failing[id] = entry }
            guard entry.attempts == 1 || entry.reason != reason || now - entry.logged >= .seconds(60) else { return nil }
            entry.reason = reason
            entry.logged = now
            return entry.attempts
        }
        if let attempts = announce {
            log("changes to \(name(id)) are not stored yet (attempt \(attempts); retrying in the background): \(reason)")
        }
    }

    func noteStored(_ id: Int64) {
        guard let entry = failing.withLock({ $0.removeValue(forKey: id) }) else { return }
        log("changes to \(name(id)) are stored now, after \(entry.attempts) failed attempt(s)")
    }
}

/// The content (manifest) each file had when the kernel last read it, so that a file reopened
/// unchanged keeps its cached pages. Bounded by `limit` files: when full, a new file's entry takes
/// the place of another's, and that file's next open drops its cached pages and reads them again.
/// Forgetting is only slower, never stale: pages are kept only on an entry that says they are of
/// the very content the file has now.
struct ServedContent: Sendable {
    static let defaultLimit = 65_536
    let limit: Int
    private(set) var content: [Int64: ChunkID] = [:]

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Notes that the kernel reads `manifest` as file `id`'s content from now on (nil: content not
    /// yet committed); returns whether the pages it cached before are of that same content.
    mutating func serve(_ id: Int64, _ manifest: ChunkID?, dirty: Bool) -> Bool {
        let keep = !dirty && manifest != nil && content[id] == manifest
        if let manifest {
            if content[id] == nil, content.count >= limit { content.remove(at: content.startIndex) }
            content[id] = manifest
        } else {
            content[id] = nil
        }
        return keep
    }
}
