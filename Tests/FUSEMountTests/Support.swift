import BackendTesting
import ChunkStore
import Foundation
import Replicator
import Testing
@testable import FUSEMount

/// The mount's filesystem over a fresh repository (one folder provider, one replica), as `a67 mount`
/// builds it, without a kernel: tests call its operations as the FUSE adapter would.
struct MountHarness {
    let folder: TemporaryDirectory
    let repository: Repository
    let fs: MountFileSystem
    let me = MountFileSystem.Caller(uid: getuid(), gid: getgid())

    /// `quota`: the bucket belongs to a user with this quota (bytes).
    init(quota: Int64? = nil) async throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(), passphrase: Passphrase("p"),
                                                     settings: settings)
        self.repository = repository
        _ = try await repository.addProvider(name: "p1", spec: .directory(path: folder.path + "/p1"), quota: nil)
        let owner = try quota.map { try repository.catalog.accounts.addUser(name: "alice", quota: $0).id }
        _ = try await repository.createBucket("files", replicas: 1, owner: owner)
        let mount = try Mount(repository: repository, bucket: "files", mountpoint: folder.path + "/mnt", settings: .init())
        fs = try await mount.fileSystem()
    }

    /// A new, open file in the bucket's root.
    func create(_ name: String, in parent: Int64? = nil) throws -> MountFileSystem.Attributes {
        try fs.create(parent: parent ?? fs.root, name: name, mode: S_IFREG | 0o644, caller: me).0
    }

    /// Writes, on a thread of its own (a write may wait for the store, as on a FUSE worker).
    func write(_ id: Int64, _ bytes: [UInt8], at offset: Int64 = 0) async throws {
        let fs = self.fs
        let written = try await runOnOwnThread(name: "test write") { try fs.write(id, bytes: bytes, offset: offset) }
        #expect(written == bytes.count)
    }

    /// Reads as the adapter does: at once when the bytes are at hand, else after fetching.
    func read(_ id: Int64, at offset: Int64 = 0, count: Int) async throws -> [UInt8] {
        if let bytes = try fs.readNow(id, offset: offset, count: count) { return bytes }
        return try await fs.read(id, offset: offset, count: count)
    }

    /// Runs blocking filesystem work (commits, truncates, closes) on a thread of its own.
    func blocking<T: Sendable>(_ body: @escaping @Sendable (MountFileSystem) throws -> T) async throws -> T {
        let fs = self.fs
        return try await runOnOwnThread(name: "test") { try body(fs) }
    }

    /// Sets the file's size, as truncate(2) does.
    func truncate(_ id: Int64, to size: Int64) async throws -> MountFileSystem.Attributes {
        var change = MountFileSystem.AttributeChanges()
        change.size = size
        let me = self.me, changes = change
        return try await blocking { try $0.setattr(id, changes, caller: me) }
    }

    /// Closes the file as the kernel does: flush, then release.
    func close(_ id: Int64) async throws {
        try await blocking { fs in
            defer { fs.release(id) }
            try fs.flush(id)
        }
    }
}

/// The errno the kernel would get for what `body` throws (nil when it succeeds).
func errno(_ body: () async throws -> Void) async -> Int32? {
    do {
        try await body()
        return nil
    } catch {
        return Reply.errno(for: error).code
    }
}

/// Bytes that differ from block to block, the same on every run.
func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var state = UInt32(seed) | 1
    for i in stride(from: 0, to: count, by: 4096) {
        state = state &* 1_103_515_245 &+ 12345
        out[i] = UInt8(truncatingIfNeeded: state >> 16)
        out[min(count - 1, i + 1)] = UInt8(truncatingIfNeeded: i >> 12)
    }
    return out
}
