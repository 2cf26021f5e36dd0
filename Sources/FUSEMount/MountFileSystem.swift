import CFUSE
import ChunkStore
import Foundation
import Logging
import Replicator
import Synchronization

/// A request from the kernel: answered exactly once, from whichever thread finishes it (a FUSE
/// worker, or a Swift task for reads that wait on a chunk).
struct Request: @unchecked Sendable {
    let raw: fuse_req_t

    var caller: (uid: UInt32, gid: UInt32) {
        let context = fuse_req_ctx(raw)!.pointee
        return (context.uid, context.gid)
    }

    func fail(_ code: Int32) { fuse_reply_err(raw, code) }
    func ok() { fuse_reply_err(raw, 0) }
    func none() { fuse_reply_none(raw) }

    func data(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            _ = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, bytes.count)) {
                fuse_reply_buf(raw, bytes.isEmpty ? nil : $0, bytes.count)
            }
        }
    }

    func written(_ count: Int) { fuse_reply_write(raw, count) }
}

/// The filesystem: each operation of libfuse's low-level API over the bucket's inode table. Inode
/// numbers are the catalog's (the bucket's root is FUSE's 1), so they hold across remounts.
final class MountFileSystem: Sendable {
    let context: MountContext
    let root: Int64
    /// Files open now (or with changes not yet committed), by inode.
    let nodes = Mutex<[Int64: FileNode]>([:])
    /// The content each file had when the kernel last read it: reopened unchanged, its page cache is kept.
    let served = Mutex<[Int64: ChunkID]>([:])
    /// Files whose last commit failed: the reason, when it was last logged, the failed attempts.
    let failing = Mutex<[Int64: (reason: String, logged: ContinuousClock.Instant, attempts: Int)]>([:])
    static let timeout = 1.0

    init(context: MountContext) {
        self.context = context
        root = context.bucket.rootInode
    }

    var catalog: Catalog { context.catalog }

    func id(_ ino: fuse_ino_t) -> Int64 { ino == UInt64(FUSE_ROOT_ID) ? root : Int64(bitPattern: ino) }
    func ino(_ id: Int64) -> fuse_ino_t { id == root ? fuse_ino_t(FUSE_ROOT_ID) : fuse_ino_t(bitPattern: id) }

    // MARK: - Attributes

    func attributes(_ inode: Inode) -> stat {
        var st = stat()
        st.st_ino = UInt(ino(inode.id))
        st.st_mode = Self.type(inode) | (inode.mode & 0o7777)
        st.st_rdev = UInt(inode.rdev)
        st.st_nlink = UInt(inode.links)
        st.st_uid = inode.uid
        st.st_gid = inode.gid
        var size = inode.size
        var mtime = inode.mtime
        if inode.kind == .file, let node = nodes.withLock({ $0[inode.id] }) {
            node.state.withLock { s in
                size = s.size
                if s.dirty { mtime = s.mtime }
            }
        }
        st.st_size = Int(size)
        st.st_blocks = Int((size + 511) / 512)
        st.st_blksize = 1 << 17
        st.st_atim = Self.timespec(inode.atime)
        st.st_mtim = Self.timespec(mtime)
        st.st_ctim = Self.timespec(max(inode.ctime, mtime))
        return st
    }

    /// The st_mode type bits of an entry.
    static func type(_ inode: Inode) -> UInt32 {
        switch inode.kind {
        case .directory: S_IFDIR
        case .file: inode.special ?? S_IFREG
        case .symlink: S_IFLNK
        }
    }

    static func timespec(_ nanoseconds: Int64) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    func entry(_ inode: Inode) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = ino(inode.id)
        entry.attr = attributes(inode)
        entry.attr_timeout = Self.timeout
        entry.entry_timeout = Self.timeout
        return entry
    }

    func reply(_ request: Request, entry inode: Inode) {
        var e = entry(inode)
        fuse_reply_entry(request.raw, &e)
    }

    func reply(_ request: Request, attributes inode: Inode) {
        var st = attributes(inode)
        fuse_reply_attr(request.raw, &st, Self.timeout)
    }

    /// Runs `body`, answering its error (if any) as an errno.
    func answer(_ request: Request, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            request.fail(errno(for: error))
        }
    }

    func errno(for error: Error) -> Int32 {
        switch error {
        case let error as NamespaceError:
            switch error {
            case .notFound: return ENOENT
            case .exists: return EEXIST
            case .notEmpty: return ENOTEMPTY
            case .notDirectory: return ENOTDIR
            case .isDirectory: return EISDIR
            case .invalid: return EINVAL
            case .nameTooLong: return ENAMETOOLONG
            case .noAttribute: return ENODATA
            case .notPermitted: return EPERM
            }
        case MountError.errno(let code):
            return code
        case let error as StoreError:
            if error.code == .notFound { return ENOENT }
            log("\(error)")
            return EIO
        default:
            log("\(error)")
            return EIO
        }
    }

    static let logger = Logger(label: "a67.mount")

    func log(_ message: String) {
        Self.logger.notice("\(message)")
    }

    func inode(_ ino: fuse_ino_t) throws -> Inode {
        guard let inode = try catalog.inode(id(ino)) else { throw NamespaceError.notFound }
        return inode
    }

    // MARK: - Names

    func lookup(_ request: Request, parent: fuse_ino_t, name: String) {
        answer(request) {
            guard name.utf8.count <= Names.maxSegmentBytes else { throw NamespaceError.nameTooLong }
            guard let inode = try catalog.lookup(parent: id(parent), name: name) else { throw NamespaceError.notFound }
            reply(request, entry: inode)
        }
    }

    func getattr(_ request: Request, ino: fuse_ino_t) {
        answer(request) {
            if let inode = try catalog.inode(id(ino)) {
                reply(request, attributes: inode)
            } else if let node = nodes.withLock({ $0[id(ino)] }) {
                replyUnlinked(request, node, ino: ino)
            } else {
                throw NamespaceError.notFound
            }
        }
    }

    /// A file unlinked while open is still there for its open handles, with no name (nlink 0).
    func replyUnlinked(_ request: Request, _ node: FileNode, ino: fuse_ino_t) {
        let s = node.state.withLock { ($0.size, $0.mtime) }
        var st = stat()
        st.st_ino = UInt(ino)
        st.st_mode = S_IFREG | 0o600
        st.st_nlink = 0
        st.st_uid = request.caller.uid
        st.st_gid = request.caller.gid
        st.st_size = Int(s.0)
        st.st_blocks = Int((s.0 + 511) / 512)
        st.st_mtim = Self.timespec(s.1)
        st.st_ctim = Self.timespec(s.1)
        fuse_reply_attr(request.raw, &st, Self.timeout)
    }

    func setattr(_ request: Request, ino: fuse_ino_t, attributes st: stat, fields: Int32) {
        answer(request) {
            guard var inode = try catalog.inode(id(ino)) else {
                guard let node = nodes.withLock({ $0[id(ino)] }) else { throw NamespaceError.notFound }
                if fields & FUSE_SET_ATTR_SIZE != 0 { try node.truncate(to: Int64(st.st_size), context: context) }
                replyUnlinked(request, node, ino: ino)
                return
            }
            var change = Catalog.AttributeChange()
            if fields & FUSE_SET_ATTR_MODE != 0 { change.mode = st.st_mode & 0o7777 }
            if fields & FUSE_SET_ATTR_UID != 0 { change.uid = st.st_uid }
            if fields & FUSE_SET_ATTR_GID != 0 { change.gid = st.st_gid }
            let now = Catalog.now()
            if fields & FUSE_SET_ATTR_ATIME_NOW != 0 { change.atime = now } else if fields & FUSE_SET_ATTR_ATIME != 0 {
                change.atime = Int64(st.st_atim.tv_sec) * 1_000_000_000 + Int64(st.st_atim.tv_nsec)
            }
            if fields & FUSE_SET_ATTR_MTIME_NOW != 0 { change.mtime = now } else if fields & FUSE_SET_ATTR_MTIME != 0 {
                change.mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            }
            if fields & FUSE_SET_ATTR_SIZE != 0, inode.special == nil {
                guard inode.kind == .file else { throw NamespaceError.isDirectory }
                let node = try open(inode.id)
                defer { release(node) }
                try node.truncate(to: Int64(st.st_size), context: context)
                if let mtime = change.mtime { node.state.withLock { $0.mtime = mtime } }
            }
            if change.mode != nil || change.uid != nil || change.gid != nil || change.atime != nil || change.mtime != nil {
                inode = try catalog.setAttributes(inode.id, change)
                if let mtime = change.mtime, let node = nodes.withLock({ $0[inode.id] }) { node.state.withLock { $0.mtime = mtime } }
            }
            reply(request, attributes: try catalog.inode(inode.id) ?? inode)
        }
    }

    func readlink(_ request: Request, ino: fuse_ino_t) {
        answer(request) {
            let inode = try inode(ino)
            guard inode.kind == .symlink, let target = inode.symlinkTarget else { throw NamespaceError.invalid }
            fuse_reply_readlink(request.raw, target)
        }
    }

    func mkdir(_ request: Request, parent: fuse_ino_t, name: String, mode: UInt32) {
        answer(request) {
            let caller = request.caller
            reply(request, entry: try catalog.makeNode(parent: id(parent), name: name, kind: .directory, mode: mode,
                                                       uid: caller.uid, gid: caller.gid))
        }
    }

    /// A regular file (no open handle), or a FIFO, socket or device node (metadata only: the kernel
    /// serves them; the mount is nodev).
    func mknod(_ request: Request, parent: fuse_ino_t, name: String, mode: UInt32, rdev: UInt64) {
        answer(request) {
            let caller = request.caller
            let type = mode & S_IFMT
            guard [S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].contains(type) else { throw MountError.errno(EINVAL) }
            let inode = type == S_IFREG
                ? try catalog.makeNode(parent: id(parent), name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                       manifest: context.emptyManifest)
                : try catalog.makeNode(parent: id(parent), name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                       special: (type, rdev))
            reply(request, entry: inode)
        }
    }

    func symlink(_ request: Request, target: String, parent: fuse_ino_t, name: String) {
        answer(request) {
            let caller = request.caller
            reply(request, entry: try catalog.makeNode(parent: id(parent), name: name, kind: .symlink, mode: 0o777,
                                                       uid: caller.uid, gid: caller.gid, symlinkTarget: target))
        }
    }

    func link(_ request: Request, ino: fuse_ino_t, parent: fuse_ino_t, name: String) {
        answer(request) {
            reply(request, entry: try catalog.link(id(ino), parent: id(parent), name: name))
        }
    }

    func unlink(_ request: Request, parent: fuse_ino_t, name: String) {
        answer(request) {
            let gone = try catalog.unlink(parent: id(parent), name: name)
            markIfUnlinked(gone)
            request.ok()
        }
    }

    /// An open file whose last name went stays readable and writable through its handles; its
    /// changes are dropped at the last close.
    func markIfUnlinked(_ id: Int64) {
        guard let node = nodes.withLock({ $0[id] }), (try? catalog.inode(id)) == nil else { return }
        node.state.withLock { $0.unlinked = true }
    }

    func rmdir(_ request: Request, parent: fuse_ino_t, name: String) {
        answer(request) {
            try catalog.rmdir(parent: id(parent), name: name)
            request.ok()
        }
    }

    func rename(_ request: Request, parent: fuse_ino_t, name: String, newParent: fuse_ino_t, newName: String, flags: UInt32) {
        answer(request) {
            guard flags & ~3 == 0 else { throw MountError.errno(EINVAL) }
            let replaced = try catalog.lookup(parent: id(newParent), name: newName)
            try catalog.rename(parent: id(parent), name: name, newParent: id(newParent), newName: newName,
                               flags: Catalog.RenameFlags(rawValue: flags))
            if let replaced, flags & 2 == 0 { markIfUnlinked(replaced.id) }
            request.ok()
        }
    }

    // MARK: - Files

    /// The open state of file `id` (loaded on first open), with one more handle on it.
    func open(_ id: Int64) throws -> FileNode {
        if let node = nodes.withLock({ nodes -> FileNode? in
            let node = nodes[id]
            node?.state.withLock { $0.handles += 1 }
            return node
        }) { return node }
        guard let inode = try catalog.inode(id) else { throw NamespaceError.notFound }
        guard inode.kind == .file else { throw NamespaceError.isDirectory }
        let manifest = try inode.manifestID.map { try catalog.manifest($0) } ?? Manifest(entries: [])
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

    func openFile(_ request: Request, ino: fuse_ino_t, info: UnsafeMutablePointer<fuse_file_info>) {
        answer(request) {
            let node = try open(id(ino))
            if info.pointee.flags & O_TRUNC != 0 {
                do {
                    try node.truncate(to: 0, context: context)
                } catch {
                    release(node)
                    throw error
                }
            }
            keepCache(node, info)
            info.pointee.fh = UInt64(bitPattern: node.id)
            fuse_reply_open(request.raw, info)
        }
    }

    /// The kernel keeps its cached pages of a file whose content is what it read last time.
    func keepCache(_ node: FileNode, _ info: UnsafeMutablePointer<fuse_file_info>) {
        let (manifest, dirty) = node.state.withLock { ($0.manifestID, $0.dirty) }
        let keep = served.withLock { served -> Bool in
            defer { served[node.id] = manifest }
            return !dirty && manifest != nil && served[node.id] == manifest
        }
        a67_fi_set_keep_cache(info, keep ? 1 : 0)
    }

    func create(_ request: Request, parent: fuse_ino_t, name: String, mode: UInt32, info: UnsafeMutablePointer<fuse_file_info>) {
        answer(request) {
            let caller = request.caller
            let inode = try catalog.makeNode(parent: id(parent), name: name, kind: .file, mode: mode, uid: caller.uid, gid: caller.gid,
                                             manifest: context.emptyManifest)
            // A new file is the empty manifest: its open state needs no catalog read.
            let node = FileNode(id: inode.id, manifestID: context.emptyManifest.id, manifest: Manifest(entries: []), mtime: inode.mtime)
            node.state.withLock { $0.handles = 1 }
            nodes.withLock { $0[inode.id] = node }
            info.pointee.fh = UInt64(bitPattern: node.id)
            served.withLock { $0[inode.id] = context.emptyManifest.id }
            var e = entry(inode)
            fuse_reply_create(request.raw, &e, info)
        }
    }

    func node(_ info: UnsafeMutablePointer<fuse_file_info>?, _ ino: fuse_ino_t) throws -> FileNode {
        guard let node = nodes.withLock({ $0[id(ino)] }) else { throw MountError.errno(EBADF) }
        return node
    }

    func read(_ request: Request, ino: fuse_ino_t, size: Int, offset: Int64, info: UnsafeMutablePointer<fuse_file_info>?) {
        answer(request) {
            let node = try node(info, ino)
            if let bytes = node.readableNow(at: offset, count: size, context: context) {
                request.data(bytes)
                return
            }
            // A chunk to fetch: answered from a task when it is here.
            let context = self.context
            Task {
                do {
                    request.data(try await node.read(at: offset, count: size, context: context))
                } catch {
                    request.fail(self.errno(for: error))
                }
            }
        }
    }

    func write(_ request: Request, ino: fuse_ino_t, bytes: [UInt8], offset: Int64, info: UnsafeMutablePointer<fuse_file_info>?) {
        answer(request) {
            let node = try node(info, ino)
            try node.write(bytes, at: offset, context: context)
            request.written(bytes.count)
        }
    }

    func flush(_ request: Request, ino: fuse_ino_t, info: UnsafeMutablePointer<fuse_file_info>?) {
        answer(request) {
            let node = try node(info, ino)
            if node.state.withLock({ $0.dirty || $0.refused != nil }) {
                try commit(node, durable: false)
            }
            request.ok()
        }
    }

    func fsync(_ request: Request, ino: fuse_ino_t, info: UnsafeMutablePointer<fuse_file_info>?) {
        answer(request) {
            let node = try node(info, ino)
            if node.state.withLock({ $0.dirty || $0.refused != nil }) {
                try commit(node, durable: true)
            } else {
                try catalog.sync()
            }
            request.ok()
        }
    }

    func release(_ request: Request, ino: fuse_ino_t, info: UnsafeMutablePointer<fuse_file_info>?) {
        if let node = nodes.withLock({ $0[id(ino)] }) { release(node) }
        request.ok()
    }

    func fsyncdir(_ request: Request) {
        answer(request) {
            try catalog.sync()
            request.ok()
        }
    }

    // MARK: - Folders

    func readdir(_ request: Request, ino: fuse_ino_t, size: Int, offset: Int64, plus: Bool) {
        answer(request) {
            let folder = id(ino)
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            var full = false
            func add(_ name: String, _ inode: Inode?, mode: UInt32, ino number: fuse_ino_t, next: Int64) -> Bool {
                let needed = buffer.withUnsafeMutableBufferPointer { out -> Int in
                    let start = out.baseAddress!.advanced(by: used)
                    if plus {
                        var e = inode.map { entry($0) } ?? fuse_entry_param()
                        if inode == nil { e.attr.st_ino = UInt(number); e.attr.st_mode = mode }
                        return fuse_add_direntry_plus(request.raw, start, size - used, name, &e, off_t(next))
                    }
                    var st = stat()
                    st.st_ino = UInt(number)
                    st.st_mode = mode
                    return fuse_add_direntry(request.raw, start, size - used, name, &st, off_t(next))
                }
                guard used + needed <= size else { return false }
                used += needed
                return true
            }
            if offset < 1 {
                guard add(".", nil, mode: S_IFDIR, ino: ino, next: 1) else { full = true; request.data([]); return }
            }
            if offset < 2 && !full {
                let parent = try catalog.parent(of: folder).map { self.ino($0) } ?? ino
                guard add("..", nil, mode: S_IFDIR, ino: parent, next: 2) else { return sendDirectory(request, buffer, used) }
            }
            var after = max(0, offset - 2)
            while !full {
                let batch = try catalog.children(of: folder, after: after, limit: 256)
                if batch.isEmpty { break }
                for child in batch {
                    guard add(child.name, child.inode, mode: Self.type(child.inode), ino: self.ino(child.inode.id), next: child.row + 2) else {
                        full = true
                        break
                    }
                    after = child.row
                }
            }
            sendDirectory(request, buffer, used)
        }
    }

    private func sendDirectory(_ request: Request, _ buffer: [CChar], _ used: Int) {
        _ = buffer.withUnsafeBufferPointer { fuse_reply_buf(request.raw, $0.baseAddress, used) }
    }

    // MARK: - Extended attributes

    /// Names the mount keeps: `user.` and `trusted.` ones. `security.` and `system.` (ACLs) are
    /// not supported: the kernel then treats the file as having none.
    static func keptAttribute(_ name: String) -> Bool { name.hasPrefix("user.") || name.hasPrefix("trusted.") }

    func setxattr(_ request: Request, ino: fuse_ino_t, name: String, value: [UInt8], flags: Int32) {
        answer(request) {
            guard Self.keptAttribute(name) else { throw MountError.errno(ENOTSUP) }
            guard name.utf8.count <= 255 else { throw MountError.errno(ERANGE) }
            guard value.count <= 65536 else { throw MountError.errno(E2BIG) }
            try catalog.setXattr(id(ino), name: name, value: value, create: flags & 1 != 0, replace: flags & 2 != 0)
            request.ok()
        }
    }

    func getxattr(_ request: Request, ino: fuse_ino_t, name: String, size: Int) {
        answer(request) {
            guard Self.keptAttribute(name), let value = try catalog.xattr(id(ino), name: name) else { throw NamespaceError.noAttribute }
            try replyXattr(request, value, size: size)
        }
    }

    func listxattr(_ request: Request, ino: fuse_ino_t, size: Int) {
        answer(request) {
            var out: [UInt8] = []
            for name in try catalog.xattrNames(id(ino)) { out += Array(name.utf8) + [0] }
            try replyXattr(request, out, size: size)
        }
    }

    private func replyXattr(_ request: Request, _ value: [UInt8], size: Int) throws {
        if size == 0 {
            fuse_reply_xattr(request.raw, value.count)
        } else if value.count > size {
            throw MountError.errno(ERANGE)
        } else {
            request.data(value)
        }
    }

    func removexattr(_ request: Request, ino: fuse_ino_t, name: String) {
        answer(request) {
            guard Self.keptAttribute(name) else { throw NamespaceError.noAttribute }
            try catalog.removeXattr(id(ino), name: name)
            request.ok()
        }
    }

    // MARK: - Capacity

    /// From the providers' capacity (quotas, and for folders the disk's free space) divided by the
    /// bucket's replicas, and the owner's quota when there is one.
    func statfs(_ request: Request) {
        answer(request) {
            var capacity: Int64 = 0
            var used: Int64 = 0
            for provider in try context.repository.providers() where provider.record.state == "active" {
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
            if let owner = context.bucket.ownerID, let quota = try catalog.user(id: owner)?.quota {
                total = min(total, quota)
                taken = min(total, try catalog.usage(user: owner).bytes)
            }
            let block: Int64 = 4096
            var st = statvfs()
            st.f_bsize = UInt(block)
            st.f_frsize = UInt(block)
            st.f_blocks = fsblkcnt_t(max(0, total / block))
            st.f_bfree = fsblkcnt_t(max(0, (total - taken) / block))
            st.f_bavail = st.f_bfree
            st.f_files = 1 << 32
            st.f_ffree = 1 << 31
            st.f_favail = 1 << 31
            st.f_namemax = UInt(Names.maxSegmentBytes)
            fuse_reply_statfs(request.raw, &st)
        }
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
    func name(_ id: Int64) -> String { catalog.key(ofInode: id).map { "/" + $0 } ?? "inode \(id) (unlinked)" }

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
