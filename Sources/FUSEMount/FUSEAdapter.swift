import CFUSE
import ChunkStore
import Foundation

// The libfuse side of the mount: the C entry points, the FUSE inode numbers, and each answer
// packed into its reply call (stat, entry, statfs and dirent buffers). Every request gets one
// `Reply`; the filesystem itself (MountFileSystem) sees only Swift values.

/// FUSE's inode numbers: the bucket's root is FUSE's 1, every other entry its catalog ID.
struct InodeNumbers: Sendable {
    let root: Int64

    func id(_ ino: fuse_ino_t) -> Int64 { ino == UInt64(FUSE_ROOT_ID) ? root : Int64(bitPattern: ino) }
    func ino(_ id: Int64) -> fuse_ino_t { id == root ? fuse_ino_t(FUSE_ROOT_ID) : fuse_ino_t(bitPattern: id) }
}

/// One request's way back to the kernel. `info` is the request's open-file record (open, create).
struct KernelReply: ReplySink, @unchecked Sendable {
    let raw: fuse_req_t
    let info: UnsafeMutablePointer<fuse_file_info>?
    let numbers: InodeNumbers
    /// How long the kernel may keep names and attributes.
    static let timeout = 1.0

    func send(_ answer: Answer) {
        switch answer {
        case .ok:
            fuse_reply_err(raw, 0)
        case .error(let code):
            fuse_reply_err(raw, code)
        case .none:
            fuse_reply_none(raw)
        case .entry(let attributes):
            var e = entry(attributes)
            fuse_reply_entry(raw, &e)
        case .attributes(let attributes):
            var st = stat(attributes)
            fuse_reply_attr(raw, &st, Self.timeout)
        case .opened(let file):
            info!.pointee.fh = UInt64(bitPattern: file.handle)
            a67_fi_set_keep_cache(info, file.keepCache ? 1 : 0)
            fuse_reply_open(raw, info)
        case .created(let attributes, let file):
            info!.pointee.fh = UInt64(bitPattern: file.handle)
            var e = entry(attributes)
            fuse_reply_create(raw, &e, info)
        case .data(let bytes):
            bytes.withUnsafeBufferPointer { buffer in
                _ = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, bytes.count)) {
                    fuse_reply_buf(raw, bytes.isEmpty ? nil : $0, bytes.count)
                }
            }
        case .written(let count):
            fuse_reply_write(raw, count)
        case .symlinkTarget(let target):
            fuse_reply_readlink(raw, target)
        case .xattrSize(let size):
            fuse_reply_xattr(raw, size)
        case .capacity(let capacity):
            var st = statvfs()
            st.f_bsize = UInt(capacity.blockSize)
            st.f_frsize = UInt(capacity.blockSize)
            st.f_blocks = fsblkcnt_t(capacity.blocks)
            st.f_bfree = fsblkcnt_t(capacity.freeBlocks)
            st.f_bavail = st.f_bfree
            st.f_files = fsfilcnt_t(capacity.files)
            st.f_ffree = fsfilcnt_t(capacity.freeFiles)
            st.f_favail = fsfilcnt_t(capacity.freeFiles)
            st.f_namemax = UInt(capacity.nameMax)
            fuse_reply_statfs(raw, &st)
        }
    }

    func stat(_ a: MountFileSystem.Attributes) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = UInt(numbers.ino(a.id))
        st.st_mode = a.mode
        st.st_rdev = UInt(a.rdev)
        st.st_nlink = UInt(a.links)
        st.st_uid = a.uid
        st.st_gid = a.gid
        st.st_size = Int(a.size)
        st.st_blocks = Int((a.size + 511) / 512)
        st.st_blksize = 1 << 17
        st.st_atim = Self.timespec(a.atime)
        st.st_mtim = Self.timespec(a.mtime)
        st.st_ctim = Self.timespec(a.ctime)
        return st
    }

    static func timespec(_ nanoseconds: Int64) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    func entry(_ attributes: MountFileSystem.Attributes) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = numbers.ino(attributes.id)
        entry.attr = stat(attributes)
        entry.attr_timeout = Self.timeout
        entry.entry_timeout = Self.timeout
        return entry
    }

    /// Packs folder entries into a reply buffer of `size` bytes, as many as fit, starting at
    /// `offset`; the filesystem is asked for them a page at a time.
    func directory(_ fs: MountFileSystem, _ id: Int64, size: Int, offset: Int64, plus: Bool) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: size)
        var used = 0
        func add(_ item: MountFileSystem.DirectoryEntry) -> Bool {
            let needed = buffer.withUnsafeMutableBufferPointer { out -> Int in
                out.baseAddress!.advanced(by: used).withMemoryRebound(to: CChar.self, capacity: size - used) { start in
                    if plus {
                        var e = item.attributes.map { entry($0) } ?? fuse_entry_param()
                        if item.attributes == nil { e.attr.st_ino = UInt(numbers.ino(item.id)); e.attr.st_mode = item.mode }
                        return fuse_add_direntry_plus(raw, start, size - used, item.name, &e, off_t(item.next))
                    }
                    var st = Glibc.stat()
                    st.st_ino = UInt(numbers.ino(item.id))
                    st.st_mode = item.mode
                    return fuse_add_direntry(raw, start, size - used, item.name, &st, off_t(item.next))
                }
            }
            guard used + needed <= size else { return false }
            used += needed
            return true
        }
        var next = offset
        while true {
            let page = try fs.readdir(id, from: next, limit: 256)
            for item in page.entries {
                guard add(item) else { return Array(buffer[..<used]) }
                next = item.next
            }
            if page.complete { break }
        }
        return Array(buffer[..<used])
    }
}

/// The C entry points: each finds the filesystem in the session's user data, hands the request
/// over with names and buffers copied into Swift values, and answers through one `Reply`.
enum Operations {
    static func fs(_ req: fuse_req_t?) -> MountFileSystem {
        Unmanaged<MountFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    static func caller(_ req: fuse_req_t?) -> MountFileSystem.Caller {
        let context = fuse_req_ctx(req)!.pointee
        return MountFileSystem.Caller(uid: context.uid, gid: context.gid)
    }

    /// A request's bytes as an array, copied in one move.
    static func copy(_ buffer: UnsafePointer<CChar>?, _ size: Int) -> [UInt8] {
        guard let buffer, size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { out, count in
            memcpy(out.baseAddress!, buffer, size)
            count = size
        }
    }

    static func string(_ name: UnsafePointer<CChar>?) -> String { String(cString: name!) }

    /// Answers `req` with what `body` returns, or with the errno of what it throws. `body` gets the
    /// filesystem, the request's sink (for folder buffers) and a mapping from FUSE inode numbers.
    static func answer(_ req: fuse_req_t?, info: UnsafeMutablePointer<fuse_file_info>? = nil,
                       _ body: (MountFileSystem, KernelReply, (fuse_ino_t) -> Int64) throws -> Answer) {
        let fs = fs(req)
        let sink = KernelReply(raw: req!, info: info, numbers: fs.numbers)
        let reply = Reply(sink)
        do {
            let answer = try body(fs, sink, fs.numbers.id)
            reply.send(answer)
        } catch {
            reply.fail(error, log: fs.log)
        }
    }

    /// An extended attribute's value (or the names) as getxattr(2) asks: its size for a size of 0,
    /// ERANGE when it does not fit.
    static func xattr(_ value: [UInt8], size: Int) throws -> Answer {
        if size == 0 { return .xattrSize(value.count) }
        guard value.count <= size else { throw MountError.errno(ERANGE) }
        return .data(value)
    }

    static func changes(_ st: stat, fields: Int32) -> MountFileSystem.AttributeChanges {
        var changes = MountFileSystem.AttributeChanges()
        if fields & FUSE_SET_ATTR_MODE != 0 { changes.mode = st.st_mode }
        if fields & FUSE_SET_ATTR_UID != 0 { changes.uid = st.st_uid }
        if fields & FUSE_SET_ATTR_GID != 0 { changes.gid = st.st_gid }
        if fields & FUSE_SET_ATTR_SIZE != 0 { changes.size = Int64(st.st_size) }
        if fields & FUSE_SET_ATTR_ATIME_NOW != 0 { changes.atime = .now } else if fields & FUSE_SET_ATTR_ATIME != 0 {
            changes.atime = .at(Int64(st.st_atim.tv_sec) * 1_000_000_000 + Int64(st.st_atim.tv_nsec))
        }
        if fields & FUSE_SET_ATTR_MTIME_NOW != 0 { changes.mtime = .now } else if fields & FUSE_SET_ATTR_MTIME != 0 {
            changes.mtime = .at(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        }
        return changes
    }

    /// A read answers at once when its bytes are at hand, else from a task once the chunk is here.
    static func read(_ req: fuse_req_t?, ino: fuse_ino_t, size: Int, offset: Int64) {
        let fs = fs(req)
        let reply = Reply(KernelReply(raw: req!, info: nil, numbers: fs.numbers))
        let id = fs.numbers.id(ino)
        do {
            if let bytes = try fs.readNow(id, offset: offset, count: size) {
                reply.send(.data(bytes))
                return
            }
        } catch {
            reply.fail(error, log: fs.log)
            return
        }
        let later = DeferredReply(reply)
        Task {
            guard let reply = later.take() else { return }
            do {
                let bytes = try await fs.read(id, offset: offset, count: size)
                reply.send(.data(bytes))
            } catch {
                reply.fail(error, log: fs.log)
            }
        }
    }

    static func install(_ ops: inout fuse_lowlevel_ops) {
        ops.`init` = { _, conn in a67_conn_configure(conn) }
        ops.lookup = { req, parent, name in Operations.answer(req) { fs, _, id in .entry(try fs.lookup(parent: id(parent), name: Operations.string(name))) } }
        ops.forget = { req, _, _ in fuse_reply_none(req) }
        ops.forget_multi = { req, _, _ in fuse_reply_none(req) }
        ops.getattr = { req, ino, _ in Operations.answer(req) { fs, _, id in .attributes(try fs.getattr(id(ino), caller: Operations.caller(req))) } }
        ops.setattr = { req, ino, attr, toSet, _ in
            Operations.answer(req) { fs, _, id in .attributes(try fs.setattr(id(ino), Operations.changes(attr!.pointee, fields: toSet), caller: Operations.caller(req))) }
        }
        ops.readlink = { req, ino in Operations.answer(req) { fs, _, id in .symlinkTarget(try fs.readlink(id(ino))) } }
        ops.mkdir = { req, parent, name, mode in
            Operations.answer(req) { fs, _, id in .entry(try fs.mkdir(parent: id(parent), name: Operations.string(name), mode: mode, caller: Operations.caller(req))) }
        }
        ops.mknod = { req, parent, name, mode, rdev in
            Operations.answer(req) { fs, _, id in
                .entry(try fs.mknod(parent: id(parent), name: Operations.string(name), mode: mode, rdev: UInt64(rdev), caller: Operations.caller(req)))
            }
        }
        ops.unlink = { req, parent, name in Operations.answer(req) { fs, _, id in try fs.unlink(parent: id(parent), name: Operations.string(name)); return .ok } }
        ops.rmdir = { req, parent, name in Operations.answer(req) { fs, _, id in try fs.rmdir(parent: id(parent), name: Operations.string(name)); return .ok } }
        ops.symlink = { req, target, parent, name in
            Operations.answer(req) { fs, _, id in
                .entry(try fs.symlink(target: Operations.string(target), parent: id(parent), name: Operations.string(name), caller: Operations.caller(req)))
            }
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            Operations.answer(req) { fs, _, id in
                try fs.rename(parent: id(parent), name: Operations.string(name), newParent: id(newParent), newName: Operations.string(newName), flags: flags)
                return .ok
            }
        }
        ops.link = { req, ino, parent, name in Operations.answer(req) { fs, _, id in .entry(try fs.link(id(ino), parent: id(parent), name: Operations.string(name))) } }
        ops.open = { req, ino, info in
            Operations.answer(req, info: info) { fs, _, id in .opened(try fs.open(id(ino), truncate: info!.pointee.flags & O_TRUNC != 0)) }
        }
        ops.create = { req, parent, name, mode, info in
            Operations.answer(req, info: info) { fs, _, id in
                let (attributes, file) = try fs.create(parent: id(parent), name: Operations.string(name), mode: mode, caller: Operations.caller(req))
                return .created(attributes, file)
            }
        }
        ops.read = { req, ino, size, offset, _ in Operations.read(req, ino: ino, size: size, offset: Int64(offset)) }
        ops.write = { req, ino, buffer, size, offset, _ in
            let bytes = Operations.copy(buffer, size)
            Operations.answer(req) { fs, _, id in .written(try fs.write(id(ino), bytes: bytes, offset: Int64(offset))) }
        }
        ops.flush = { req, ino, _ in Operations.answer(req) { fs, _, id in try fs.flush(id(ino)); return .ok } }
        ops.release = { req, ino, _ in Operations.answer(req) { fs, _, id in fs.release(id(ino)); return .ok } }
        ops.fsync = { req, ino, _, _ in Operations.answer(req) { fs, _, id in try fs.fsync(id(ino)); return .ok } }
        ops.fsyncdir = { req, _, _, _ in Operations.answer(req) { fs, _, _ in try fs.fsyncdir(); return .ok } }
        ops.readdir = { req, ino, size, offset, _ in
            Operations.answer(req) { fs, sink, id in .data(try sink.directory(fs, id(ino), size: size, offset: Int64(offset), plus: false)) }
        }
        ops.readdirplus = { req, ino, size, offset, _ in
            Operations.answer(req) { fs, sink, id in .data(try sink.directory(fs, id(ino), size: size, offset: Int64(offset), plus: true)) }
        }
        ops.statfs = { req, _ in Operations.answer(req) { fs, _, _ in .capacity(try fs.statfs()) } }
        ops.setxattr = { req, ino, name, value, size, flags in
            let bytes = Operations.copy(value, size)
            Operations.answer(req) { fs, _, id in try fs.setxattr(id(ino), name: Operations.string(name), value: bytes, flags: flags); return .ok }
        }
        ops.getxattr = { req, ino, name, size in Operations.answer(req) { fs, _, id in try Operations.xattr(try fs.getxattr(id(ino), name: Operations.string(name)), size: size) } }
        ops.listxattr = { req, ino, size in Operations.answer(req) { fs, _, id in try Operations.xattr(try fs.listxattr(id(ino)), size: size) } }
        ops.removexattr = { req, ino, name in Operations.answer(req) { fs, _, id in try fs.removexattr(id(ino), name: Operations.string(name)); return .ok } }
    }
}

extension MountFileSystem {
    var numbers: InodeNumbers { InodeNumbers(root: root) }
}
