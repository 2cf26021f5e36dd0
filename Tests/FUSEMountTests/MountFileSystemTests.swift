import ChunkStore
import Foundation
import Replicator
import Testing
@testable import FUSEMount

/// The mount's operations without a kernel, over a real catalog and a folder provider.
@Suite struct MountFileSystemTests {
    @Test func createWriteReadCommitAndReopen() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let (file, opened) = try fs.create(parent: fs.root, name: "a.txt", mode: S_IFREG | 0o640, caller: h.me)
        #expect(opened.handle == file.id && !opened.keepCache)
        #expect(file.mode == S_IFREG | 0o640 && file.size == 0 && file.links == 1 && file.uid == h.me.uid)
        // Seven MiB: one whole block (sealed in the background at once) and a short one.
        let data = pattern(7 << 20)
        try await h.write(file.id, data)
        #expect(try fs.getattr(file.id, caller: h.me).size == Int64(data.count))
        #expect(try await h.read(file.id, count: data.count) == data)
        #expect(try await h.read(file.id, at: Int64(data.count) - 10, count: 100) == Array(data.suffix(10)))
        // Not committed yet: the catalog has the empty file.
        #expect(try fs.catalog.namespace.inode(file.id)?.size == 0)
        try await h.close(file.id)
        let committed = try #require(try fs.catalog.namespace.inode(file.id))
        #expect(committed.size == Int64(data.count) && committed.manifestID != fs.context.emptyManifest.id)
        #expect(fs.nodes.withLock { $0.isEmpty })
        #expect(fs.context.leases.count >= 1)  // the empty manifest, for as long as the mount runs
        // Reopened, the content comes from the committed manifest; the kernel's pages are of the
        // content it opened (empty), so they go; opened once more unchanged, they stay.
        let again = try await h.blocking { try $0.open(file.id, truncate: false) }
        #expect(!again.keepCache)
        #expect(try await h.read(file.id, count: data.count) == data)
        try await h.close(file.id)
        #expect(try await h.blocking { try $0.open(file.id, truncate: false) }.keepCache)
        try await h.close(file.id)
        // A second mount of the repository sees it (through the catalog and the provider, not this one's state).
        let other = try await Mount(repository: h.repository, bucket: "files", mountpoint: h.folder.path + "/other", settings: .init())
            .fileSystem()
        let seen = try other.lookup(parent: other.root, name: "a.txt")
        _ = try await runOnOwnThread(name: "test") { try other.open(seen.id, truncate: false) }
        #expect(try await other.read(seen.id, offset: 0, count: data.count) == data)
        // Opened with O_TRUNC: empty at once, committed empty at close.
        _ = try await h.blocking { try $0.open(file.id, truncate: true) }
        #expect(try fs.getattr(file.id, caller: h.me).size == 0)
        try await h.close(file.id)
        #expect(try fs.catalog.namespace.inode(file.id)?.size == 0)
    }

    @Test func renameNoReplaceExchangeAndReplace() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let a = try fs.mknod(parent: fs.root, name: "a", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        let b = try fs.mknod(parent: fs.root, name: "b", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        let folder = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me)
        #expect(folder.mode == S_IFDIR | 0o755)
        // RENAME_NOREPLACE onto a name that exists.
        #expect(await errno { try fs.rename(parent: fs.root, name: "a", newParent: fs.root, newName: "b", flags: 1) } == EEXIST)
        // RENAME_EXCHANGE swaps the two names.
        try fs.rename(parent: fs.root, name: "a", newParent: fs.root, newName: "b", flags: 2)
        #expect(try fs.lookup(parent: fs.root, name: "a").id == b.id)
        #expect(try fs.lookup(parent: fs.root, name: "b").id == a.id)
        // A plain rename replaces the target, into another folder too.
        try fs.rename(parent: fs.root, name: "a", newParent: fs.root, newName: "b", flags: 0)
        #expect(await errno { _ = try fs.lookup(parent: fs.root, name: "a") } == ENOENT)
        #expect(try fs.lookup(parent: fs.root, name: "b").id == b.id)
        try fs.rename(parent: fs.root, name: "b", newParent: folder.id, newName: "c", flags: 0)
        #expect(try fs.lookup(parent: folder.id, name: "c").id == b.id)
        // Flags rename(2) does not define.
        #expect(await errno { try fs.rename(parent: folder.id, name: "c", newParent: fs.root, newName: "x", flags: 4) } == EINVAL)
        // A missing source.
        #expect(await errno { try fs.rename(parent: fs.root, name: "nothing", newParent: fs.root, newName: "y", flags: 0) } == ENOENT)

        // Replacing a file that is open: it stays usable through its handle, nameless (nlink 0), and
        // its changes go at the last close.
        let open = try h.create("open")
        try await h.write(open.id, Array("draft".utf8))
        _ = try fs.mknod(parent: fs.root, name: "new", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        try fs.rename(parent: fs.root, name: "new", newParent: fs.root, newName: "open", flags: 0)
        let nameless = try fs.getattr(open.id, caller: h.me)
        #expect(nameless.links == 0 && nameless.size == 5)
        #expect(try await h.read(open.id, count: 5) == Array("draft".utf8))
        try await h.close(open.id)
        #expect(fs.nodes.withLock { $0[open.id] == nil })
        #expect(await errno { _ = try fs.getattr(open.id, caller: h.me) } == ENOENT)
    }

    @Test func hardLinksShareOneFile() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let f = try h.create("f")
        try await h.write(f.id, Array("shared".utf8))
        try await h.close(f.id)
        let g = try fs.link(f.id, parent: fs.root, name: "g")
        #expect(g.id == f.id && g.links == 2)
        #expect(await errno { _ = try fs.link(f.id, parent: fs.root, name: "g") } == EEXIST)
        try fs.unlink(parent: fs.root, name: "f")
        let left = try fs.lookup(parent: fs.root, name: "g")
        #expect(left.id == f.id && left.links == 1 && left.size == 6)
        _ = try await h.blocking { try $0.open(left.id, truncate: false) }
        #expect(try await h.read(left.id, count: 100) == Array("shared".utf8))
        try await h.close(left.id)
        // A folder cannot be linked.
        let folder = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me)
        #expect(await errno { _ = try fs.link(folder.id, parent: fs.root, name: "d2") } != nil)
    }

    @Test func truncateAndHoles() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let file = try h.create("sparse")
        // One byte past two and a half blocks: the rest is a hole of zeros.
        let far = Int64(FileNode.blockSize) * 2 + Int64(FileNode.blockSize) / 2
        try await h.write(file.id, [7], at: far)
        #expect(try fs.getattr(file.id, caller: h.me).size == far + 1)
        #expect(try await h.read(file.id, at: 0, count: 16) == [UInt8](repeating: 0, count: 16))
        #expect(try await h.read(file.id, at: far - 2, count: 8) == [0, 0, 7])
        try await h.close(file.id)
        #expect(try fs.catalog.namespace.inode(file.id)?.size == far + 1)
        // Shorter, then longer again: what was cut off reads as zeros.
        #expect(try await h.truncate(file.id, to: 3).size == 3)
        #expect(try await h.truncate(file.id, to: far + 1).size == far + 1)
        _ = try await h.blocking { try $0.open(file.id, truncate: false) }
        #expect(try await h.read(file.id, at: far - 2, count: 8) == [0, 0, 0])
        // Past the largest file a manifest can describe: EFBIG, for writes and truncates.
        #expect(await errno { try await h.write(file.id, [1], at: FileNode.maxSize) } == EFBIG)
        #expect(await errno { _ = try await h.truncate(file.id, to: FileNode.maxSize + 1) } == EFBIG)
        try await h.close(file.id)
        // A sparse file of the largest size costs its manifest only.
        let huge = try h.create("huge")
        #expect(try await h.truncate(huge.id, to: FileNode.maxSize).size == FileNode.maxSize)
        try await h.close(huge.id)
        #expect(try fs.catalog.namespace.inode(huge.id)?.size == FileNode.maxSize)
        // A folder has no size to set.
        let folder = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me)
        #expect(await errno { _ = try await h.truncate(folder.id, to: 0) } == EISDIR)
    }

    @Test func setattrChangesModeOwnerAndTimes() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let file = try fs.mknod(parent: fs.root, name: "f", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        var change = MountFileSystem.AttributeChanges()
        change.mode = S_IFREG | 0o4600
        change.mtime = .at(1_000_000_000_123)
        change.atime = .now
        let changes = change, me = h.me
        let changed = try await h.blocking { try $0.setattr(file.id, changes, caller: me) }
        #expect(changed.mode == S_IFREG | 0o4600 && changed.mtime == 1_000_000_000_123 && changed.atime > file.atime)
    }

    @Test func extendedAttributes() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let file = try fs.mknod(parent: fs.root, name: "f", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        try fs.setxattr(file.id, name: "user.color", value: Array("blue".utf8), flags: 0)
        try fs.setxattr(file.id, name: "trusted.n", value: [1, 2], flags: 0)
        #expect(try fs.getxattr(file.id, name: "user.color") == Array("blue".utf8))
        let names = try fs.listxattr(file.id)
        #expect(names == Array("trusted.n\0user.color\0".utf8) || names == Array("user.color\0trusted.n\0".utf8))
        // XATTR_CREATE on a name that is there, XATTR_REPLACE on one that is not.
        #expect(await errno { try fs.setxattr(file.id, name: "user.color", value: [0], flags: 1) } == EEXIST)
        #expect(await errno { try fs.setxattr(file.id, name: "user.size", value: [0], flags: 2) } == ENODATA)
        try fs.setxattr(file.id, name: "user.color", value: Array("red".utf8), flags: 2)
        #expect(try fs.getxattr(file.id, name: "user.color") == Array("red".utf8))
        try fs.removexattr(file.id, name: "user.color")
        #expect(await errno { _ = try fs.getxattr(file.id, name: "user.color") } == ENODATA)
        #expect(await errno { try fs.removexattr(file.id, name: "user.color") } == ENODATA)
        // Namespaces the mount does not keep, and the size limits.
        #expect(await errno { try fs.setxattr(file.id, name: "security.selinux", value: [0], flags: 0) } == ENOTSUP)
        #expect(await errno { _ = try fs.getxattr(file.id, name: "system.posix_acl_access") } == ENODATA)
        #expect(await errno { try fs.setxattr(file.id, name: "user." + String(repeating: "n", count: 251), value: [0], flags: 0) } == ERANGE)
        #expect(await errno { try fs.setxattr(file.id, name: "user.big", value: [UInt8](repeating: 0, count: 65537), flags: 0) } == E2BIG)
        // getxattr(2)'s sizes: 0 asks for the size, a buffer too small is ERANGE.
        #expect(try Operations.xattr([1, 2, 3], size: 0) == .xattrSize(3))
        #expect(try Operations.xattr([1, 2, 3], size: 3) == .data([1, 2, 3]))
        #expect(await errno { _ = try Operations.xattr([1, 2, 3], size: 2) } == ERANGE)
    }

    @Test func namesOverTheLimitAreTooLong() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let long = String(repeating: "x", count: 256)
        #expect(await errno { _ = try fs.lookup(parent: fs.root, name: long) } == ENAMETOOLONG)
        #expect(await errno { _ = try fs.create(parent: fs.root, name: long, mode: S_IFREG | 0o644, caller: h.me) } == ENAMETOOLONG)
        #expect(await errno { _ = try fs.mkdir(parent: fs.root, name: long, mode: 0o755, caller: h.me) } == ENAMETOOLONG)
        let fits = String(repeating: "x", count: 255)
        _ = try fs.mkdir(parent: fs.root, name: fits, mode: 0o755, caller: h.me)
        #expect(await errno { try fs.rename(parent: fs.root, name: fits, newParent: fs.root, newName: long, flags: 0) } == ENAMETOOLONG)
        #expect(try fs.statfs().nameMax == 255)
    }

    @Test func writesPastTheOwnersQuotaAreRefused() async throws {
        let h = try await MountHarness(quota: 1 << 20)
        let fs = h.fs
        let file = try h.create("big")
        try await h.write(file.id, pattern(512 << 10))
        // Past the quota: EDQUOT, for this write and the file's commit; its changes go at the last
        // close and its committed content (empty) stays.
        #expect(await errno { try await h.write(file.id, pattern(1 << 20), at: 512 << 10) } == EDQUOT)
        #expect(await errno { try await h.blocking { try $0.flush(file.id) } } == EDQUOT)
        try await h.blocking { $0.release(file.id) }
        #expect(try fs.catalog.namespace.inode(file.id)?.size == 0)
        #expect(fs.nodes.withLock { $0.isEmpty })
        // What fits is stored.
        let small = try h.create("small")
        try await h.write(small.id, pattern(100 << 10))
        try await h.close(small.id)
        #expect(try fs.catalog.namespace.inode(small.id)?.size == 100 << 10)
        // statfs reports the quota.
        let capacity = try fs.statfs()
        #expect(capacity.blocks * capacity.blockSize == 1 << 20)
    }

    @Test func namespaceErrorsMapToTheirErrno() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let folder = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me)
        _ = try fs.mknod(parent: folder.id, name: "f", mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
        #expect(await errno { _ = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me) } == EEXIST)
        #expect(await errno { try fs.rmdir(parent: fs.root, name: "d") } == ENOTEMPTY)
        #expect(await errno { _ = try fs.lookup(parent: fs.root, name: "missing") } == ENOENT)
        #expect(await errno { _ = try fs.open(folder.id, truncate: false) } == EISDIR)
        #expect(await errno { _ = try fs.readNow(folder.id, offset: 0, count: 1) } == EBADF)
        #expect(await errno { _ = try fs.mknod(parent: fs.root, name: "x", mode: S_IFDIR | 0o755, rdev: 0, caller: h.me) } == EINVAL)
        let fifo = try fs.mknod(parent: fs.root, name: "fifo", mode: S_IFIFO | 0o644, rdev: 0, caller: h.me)
        #expect(fifo.mode == S_IFIFO | 0o644)
        let link = try fs.symlink(target: "d/f", parent: fs.root, name: "l", caller: h.me)
        #expect(link.mode & S_IFMT == S_IFLNK)
        #expect(try fs.readlink(link.id) == "d/f")
        #expect(await errno { _ = try fs.readlink(folder.id) } == EINVAL)
        let notFound = Reply.errno(for: StoreError(.notFound, "gone"))
        #expect(notFound.code == ENOENT && !notFound.unexpected)
        let failed = Reply.errno(for: StoreError(.io, "disk"))
        #expect(failed.code == EIO && failed.unexpected)
    }

    @Test func foldersListInPagesThatResume() async throws {
        let h = try await MountHarness()
        let fs = h.fs
        let folder = try fs.mkdir(parent: fs.root, name: "d", mode: 0o755, caller: h.me)
        let names = (0..<7).map { "f\($0)" }
        for name in names { _ = try fs.mknod(parent: folder.id, name: name, mode: S_IFREG | 0o644, rdev: 0, caller: h.me) }
        var seen: [String] = []
        var offset: Int64 = 0
        var pages = 0
        while true {
            let page = try fs.readdir(folder.id, from: offset, limit: 3)
            pages += 1
            seen += page.entries.map(\.name)
            if let last = page.entries.last { offset = last.next }
            if page.complete { break }
        }
        #expect(seen == [".", ".."] + names && pages == 3)
        let first = try fs.readdir(folder.id, from: 0, limit: 1).entries
        #expect(first[0].id == folder.id && first[0].attributes == nil && first[1].id == fs.root)
        #expect(first[2].attributes?.mode == S_IFREG | 0o644)
        // Resuming after the dots, or after a child, never repeats one.
        #expect(try fs.readdir(folder.id, from: 2, limit: 10).entries.map(\.name) == names)
        #expect(try fs.readdir(folder.id, from: first[2].next, limit: 10).entries.map(\.name) == Array(names.dropFirst()))
    }

    @Test func servedContentIsBounded() async throws {
        let h = try await MountHarness()
        let fs = MountFileSystem(context: h.fs.context, servedLimit: 2)
        var ids: [Int64] = []
        for name in ["a", "b", "c"] {
            let file = try fs.mknod(parent: fs.root, name: name, mode: S_IFREG | 0o644, rdev: 0, caller: h.me)
            ids.append(file.id)
            // First open: the kernel has no pages of it yet.
            #expect(try fs.open(file.id, truncate: false).keepCache == false)
            fs.release(file.id)
        }
        let kept = fs.served.withLock { $0.content }
        #expect(kept.count == 2)
        // A file still noted reopens with its pages; one forgotten reopens without (slower, never stale).
        let noted = try #require(ids.first { kept[$0] != nil })
        let forgotten = try #require(ids.first { kept[$0] == nil })
        #expect(try fs.open(noted, truncate: false).keepCache)
        fs.release(noted)
        #expect(try fs.open(forgotten, truncate: false).keepCache == false)
        fs.release(forgotten)
        #expect(fs.served.withLock { $0.content.count } == 2)
        // A changed file never keeps its pages.
        let changed = ids.first { $0 != noted && $0 != forgotten }!
        _ = try fs.open(changed, truncate: false)
        _ = try await runOnOwnThread(name: "test") { try fs.write(changed, bytes: [1], offset: 0) }
        #expect(try fs.open(changed, truncate: false).keepCache == false)
        try await runOnOwnThread(name: "test") {
            fs.release(changed)
            try fs.flush(changed)
            fs.release(changed)
        }
        // The bound holds for the map itself, whatever the order of files.
        var map = ServedContent(limit: 3)
        for id in Int64(0)..<100 { _ = map.serve(id, fs.context.emptyManifest.id, dirty: false) }
        #expect(map.content.count == 3)
        #expect(map.serve(99, fs.context.emptyManifest.id, dirty: false) && !map.serve(99, fs.context.emptyManifest.id, dirty: true))
        #expect(map.serve(99, nil, dirty: false) == false && map.content[99] == nil)
    }
}
