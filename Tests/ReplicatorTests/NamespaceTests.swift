import BackendTesting
import ChunkStore
import Foundation
import Testing

/// The namespace operations the mount uses, on a real catalog, seen through the object API as well:
/// one inode table serves both.
@Suite struct NamespaceTests {
    @Test func renameCasesFollowPOSIX() throws {
        let h = try Harness()
        let root = h.bucket.rootInode
        let c = h.catalog.namespace
        let a = try c.makeNode(parent: root, name: "a", kind: .directory, mode: 0o755, uid: 0, gid: 0)
        let sub = try c.makeNode(parent: a.id, name: "sub", kind: .directory, mode: 0o755, uid: 0, gid: 0)
        _ = try c.makeNode(parent: root, name: "empty", kind: .directory, mode: 0o755, uid: 0, gid: 0)
        _ = try c.makeNode(parent: root, name: "l1", kind: .symlink, mode: 0o777, uid: 0, gid: 0, symlinkTarget: "x")
        _ = try c.makeNode(parent: root, name: "l2", kind: .symlink, mode: 0o777, uid: 0, gid: 0, symlinkTarget: "y")

        #expect(throws: NamespaceError.invalid) { try c.rename(parent: root, name: "a", newParent: sub.id, newName: "a") }
        #expect(throws: NamespaceError.isDirectory) { try c.rename(parent: root, name: "l1", newParent: root, newName: "empty") }
        #expect(throws: NamespaceError.notDirectory) { try c.rename(parent: root, name: "empty", newParent: root, newName: "l1") }
        #expect(throws: NamespaceError.notEmpty) { try c.rename(parent: root, name: "empty", newParent: root, newName: "a") }
        #expect(throws: NamespaceError.exists) {
            try c.rename(parent: root, name: "l1", newParent: root, newName: "l2", flags: .noReplace)
        }
        #expect(throws: NamespaceError.nameTooLong) {
            try c.rename(parent: root, name: "l1", newParent: root, newName: String(repeating: "n", count: 256))
        }
        // Exchange swaps the two names; a plain rename replaces the target.
        try c.rename(parent: root, name: "l1", newParent: root, newName: "l2", flags: .exchange)
        #expect(try c.lookup(parent: root, name: "l1")?.symlinkTarget == "y")
        #expect(try c.lookup(parent: root, name: "l2")?.symlinkTarget == "x")
        try c.rename(parent: root, name: "l1", newParent: root, newName: "l2")
        #expect(try c.lookup(parent: root, name: "l1") == nil)
        #expect(try c.lookup(parent: root, name: "l2")?.symlinkTarget == "y")
        // A folder moves with everything in it, in one row update.
        try c.rename(parent: root, name: "a", newParent: root, newName: "b")
        let moved = try #require(try c.lookup(parent: root, name: "b"))
        #expect(try c.lookup(parent: moved.id, name: "sub")?.id == sub.id)
    }

    @Test func hardLinksShareContentAndOutliveTheFirstName() async throws {
        let h = try Harness()
        let data = seededNoise(300_000, seed: 7)
        _ = try await h.put(data, key: "docs/first.bin")
        let root = h.bucket.rootInode
        let docs = try #require(try h.catalog.namespace.lookup(parent: root, name: "docs"))
        let file = try #require(try h.catalog.namespace.lookup(parent: docs.id, name: "first.bin"))
        let linked = try h.catalog.namespace.link(file.id, parent: root, name: "second.bin")
        #expect(linked.id == file.id && linked.links == 2)
        // The extra name reads as the file, through the object API too, and lists with its size.
        #expect(try await h.get("second.bin") == data)
        #expect(try h.keys() == ["docs/first.bin", "second.bin"])
        var sizes: [String: Int64] = [:]
        try h.catalog.namespace.list(bucket: h.bucket, prefix: "", recursive: true) { sizes[$0.key] = $0.size }
        #expect(sizes["second.bin"] == 300_000)
        // Removing the first name hands the inode (number and content) to the other.
        #expect(try h.catalog.namespace.unlink(parent: docs.id, name: "first.bin") == file.id)
        let survivor = try #require(try h.catalog.namespace.lookup(parent: root, name: "second.bin"))
        #expect(survivor.id == file.id && survivor.links == 1)
        #expect(try await h.get("second.bin") == data)
        #expect(try h.catalog.namespace.trash(bucket: h.bucket).isEmpty)
        // The last name goes to the trash, as a deleted object does.
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["second.bin"])
        #expect(try h.catalog.namespace.trash(bucket: h.bucket).map(\.key) == ["second.bin"])
    }

    @Test func contentCommitsReplaceAndReleaseTheOldManifest() async throws {
        let h = try Harness()
        _ = try await h.put(seededNoise(100_000, seed: 1), key: "f.bin")
        let file = try #require(try h.catalog.namespace.lookup(parent: h.bucket.rootInode, name: "f.bin"))
        let before = try h.catalog.statistics().unreferencedChunks
        // New content written elsewhere (as a mount's commit does), then pointed at by inode.
        let fresh = seededNoise(50_000, seed: 2)
        let other = try await h.put(fresh, key: "staging.bin")
        let manifest = try h.catalog.namespace.manifest(other.manifestID)
        #expect(try h.catalog.namespace.commitContent(file.id, manifestID: other.manifestID, manifest: manifest, chunks: [],
                                            mtime: 5_000_000_000))
        #expect(try await h.get("f.bin") == fresh)
        let after = try #require(try h.catalog.namespace.inode(file.id))
        #expect(after.size == 50_000 && after.mtime == 5_000_000_000)
        // The old content's chunks lost their last reference.
        #expect(try h.catalog.statistics().unreferencedChunks > before)
        // A file that is gone takes no commit.
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["f.bin"])
        #expect(try !h.catalog.namespace.commitContent(file.id, manifestID: other.manifestID, manifest: manifest, chunks: [], mtime: 0))
    }

    @Test func extendedAttributesHonourCreateAndReplace() throws {
        let h = try Harness()
        let node = try h.catalog.namespace.makeNode(parent: h.bucket.rootInode, name: "d", kind: .directory, mode: 0o755, uid: 0, gid: 0)
        #expect(throws: NamespaceError.noAttribute) { try h.catalog.namespace.setXattr(node.id, name: "user.a", value: [1], replace: true) }
        try h.catalog.namespace.setXattr(node.id, name: "user.a", value: [1], create: true)
        #expect(throws: NamespaceError.exists) { try h.catalog.namespace.setXattr(node.id, name: "user.a", value: [2], create: true) }
        try h.catalog.namespace.setXattr(node.id, name: "user.a", value: [3], replace: true)
        #expect(try h.catalog.namespace.xattr(node.id, name: "user.a") == [3])
        #expect(try h.catalog.namespace.xattrNames(node.id) == ["user.a"])
        try h.catalog.namespace.removeXattr(node.id, name: "user.a")
        #expect(throws: NamespaceError.noAttribute) { try h.catalog.namespace.removeXattr(node.id, name: "user.a") }
        // A folder with attributes can still be removed (they go with it).
        try h.catalog.namespace.setXattr(node.id, name: "user.b", value: [])
        try h.catalog.namespace.rmdir(parent: h.bucket.rootInode, name: "d")
        #expect(try h.catalog.namespace.inode(node.id) == nil)
    }

    /// What a special file or symlink made in a mount is through the object API: not an object (not
    /// listed, NoSuchKey, named as what it is), and an object put on its key replaces it (as S3 overwrites
    /// any key, as rename(2) onto it would): a regular file, no longer a FIFO; its other names keep it.
    @Test func objectsReplaceSpecialFilesAndSymlinksAndNameThem() async throws {
        let h = try Harness()
        let root = h.bucket.rootInode
        let c = h.catalog.namespace
        let fifo = try c.makeNode(parent: root, name: "fifo", kind: .file, mode: 0o640, uid: 0, gid: 0, special: (0o010000, 0))
        _ = try c.link(fifo.id, parent: root, name: "fifo-too")
        _ = try c.makeNode(parent: root, name: "dev", kind: .file, mode: 0o600, uid: 0, gid: 0, special: (0o020000, 0x0304))
        _ = try c.makeNode(parent: root, name: "link", kind: .symlink, mode: 0o777, uid: 0, gid: 0, symlinkTarget: "fifo")
        _ = try c.makeNode(parent: root, name: "folder", kind: .directory, mode: 0o755, uid: 0, gid: 0)
        func message(_ key: String) -> String? {
            do {
                _ = try c.object(bucket: h.bucket, segments: [key])
                return nil
            } catch let error as StoreError {
                #expect(error.code == .notFound)
                return error.message
            } catch { return "\(error)" }
        }
        #expect(message("fifo")?.contains("is a FIFO (made in a mount)") == true)
        #expect(message("dev")?.contains("is a character device (made in a mount)") == true)
        #expect(message("link")?.contains("is a symbolic link (made in a mount)") == true)
        #expect(message("folder")?.contains("is a folder") == true)
        #expect(try h.keys().isEmpty)
        let removed = await expectStoreError(.notFound) { try c.removeObject(bucket: h.bucket, segments: ["link"]) }
        #expect(removed?.message.contains("is a symbolic link (made in a mount)") == true)
        let below = await expectStoreError(.conflict) { _ = try await h.put([9], key: "link/below") }
        #expect(below?.message.contains("is a symbolic link (made in a mount), so it cannot also be a folder") == true)

        _ = try await h.put([1, 2, 3], key: "fifo")
        _ = try await h.put([4], key: "link")
        let file = try #require(try c.lookup(parent: root, name: "fifo"))
        #expect(file.kind == .file && file.special == nil && file.rdev == 0 && file.size == 3 && file.links == 1)
        #expect(try await h.get("fifo") == [1, 2, 3])
        let other = try #require(try c.lookup(parent: root, name: "fifo-too"))
        #expect(other.id == fifo.id && other.special == 0o010000 && other.manifestID == nil, "the FIFO's other name keeps it")
        let replaced = try #require(try c.lookup(parent: root, name: "link"))
        #expect(replaced.kind == .file && replaced.symlinkTarget == nil && replaced.size == 1)
        #expect(try h.keys() == ["fifo", "link"])
        let folder = await expectStoreError(.conflict) { _ = try await h.put([5], key: "folder") }
        #expect(folder?.message.contains("is a folder") == true)
    }
}
