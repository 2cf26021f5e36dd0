import ChunkStore
import Dispatch
import Foundation
import Replicator
import Synchronization

/// An operation's failure as the errno the kernel gets.
enum MountError: Error {
    case errno(Int32)
}

/// What every file of one mount shares: the repository, the bucket, the chunk cache, the spill
/// file and the bounds on dirty memory and on the quota.
final class MountContext: Sendable {
    let repository: Repository
    let catalog: Catalog
    let bucket: BucketRecord
    let writer: ObjectWriter
    let policy: ReplicaPolicy
    let cache: ChunkCache
    let spill: SpillFile
    let budget: DirtyBudget
    let quota: QuotaGuard
    /// The manifest of an empty file (stored once; every new file starts with it).
    let emptyManifest: (id: ChunkID, body: [UInt8])

    init(repository: Repository, bucket: BucketRecord, cache: ChunkCache, spill: SpillFile, budget: DirtyBudget,
         emptyManifest: (id: ChunkID, body: [UInt8])) throws {
        self.repository = repository
        catalog = repository.catalog
        self.bucket = bucket
        writer = try repository.objectWriter(window: 4)
        policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        self.cache = cache
        self.spill = spill
        self.budget = budget
        quota = QuotaGuard(catalog: repository.catalog, owner: bucket.ownerID)
        self.emptyManifest = emptyManifest
    }

    /// Seals and stores one block, durably on its replicas; a block shorter than a chunk comes
    /// back unrecorded, for the commit to record.
    func store(_ bytes: [UInt8]) async throws -> (Manifest.Entry, StoredChunk?) {
        let policy = self.policy
        let writer = self.writer
        let stored = try await repository.whileStoring {
            var given = false
            return try await writer.storeChunks(reading: { _ in
                defer { given = true }
                return given ? [] : bytes
            }, policy: policy)
        }
        return (stored.entries[0], stored.unrecorded.first)
    }

    /// Stores `manifest` and points file `id` at it; returns the manifest's ID.
    func commitContent(_ id: Int64, manifest: Manifest, chunks: [StoredChunk], mtime: Int64, durable: Bool) async throws -> ChunkID {
        let writer = self.writer, policy = self.policy, catalog = self.catalog, repository = self.repository
        return try await repository.whileStoring {
            // Blocks stored before a provider began draining must not land there now (see drain).
            let chunks = try await repository.movingOffDrainedProviders(chunks)
            let (manifestID, stored) = try await writer.storeManifest(manifest, policy: policy)
            _ = try catalog.commitContent(id, manifestID: manifestID, manifest: manifest, chunks: chunks + (stored.map { [$0] } ?? []),
                                          mtime: mtime, durable: durable)
            return manifestID
        }
    }

    /// Runs async work from a FUSE thread (not one of Swift's), blocking that thread until it is done.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<T, Error>?>(nil)
        Task {
            do {
                let value = try await body()
                result.withLock { $0 = .success(value) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }
}

/// Changed blocks beyond the dirty-memory bound go here: one local file, unlinked as soon as it is
/// open (nothing is left behind after a crash), in 5 MiB slots.
final class SpillFile: Sendable {
    private let fd: Int32
    private let free = Mutex<(slots: [Int], next: Int)>(([], 0))

    init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = directory + "/spill-\(getpid())"
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(.io, "cannot create the spill file \(path): \(String(cString: strerror(errno)))")
        }
        unlink(path)
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) throws -> Int {
        let slot = free.withLock { state -> Int in
            if let slot = state.slots.popLast() { return slot }
            defer { state.next += 1 }
            return state.next
        }
        let offset = off_t(slot) * off_t(FileNode.blockSize)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
        guard written == bytes.count else {
            self.free(slot)
            throw MountError.errno(written < 0 ? errno : ENOSPC)
        }
        return slot
    }

    func read(slot: Int, count: Int) throws -> [UInt8] {
        let offset = off_t(slot) * off_t(FileNode.blockSize)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let n = pread(fd, buffer.baseAddress, count, offset)
            if n < 0 { failure = errno }
            // A slot written short (never: writes are whole) reads zeros beyond.
            let got = max(0, n)
            if got < count { buffer.baseAddress!.advanced(by: got).initialize(repeating: 0, count: count - got) }
            initialized = count
        }
        if failure != 0 { throw MountError.errno(failure) }
        return bytes
    }

    func free(_ slot: Int) {
        free.withLock { $0.slots.append(slot) }
    }
}

/// The mount's bounds on changed data held in memory (beyond it, blocks spill to disk) and on
/// blocks being sealed at once (beyond it, writers wait).
final class DirtyBudget: Sendable {
    let memoryLimit: Int
    let sealSlots: DispatchSemaphore
    private let perFile = Mutex<[Int64: Int]>([:])

    init(memoryLimit: Int, sealWindow: Int) {
        self.memoryLimit = memoryLimit
        sealSlots = DispatchSemaphore(value: sealWindow)
    }

    /// Notes what `file` holds in memory now; over the bound, moves its blocks (but `keep`) to the spill file.
    func update(_ file: FileNode, context: MountContext, keep: Int) {
        let mine = file.state.withLock { $0.memoryBytes }
        let total = perFile.withLock { files in
            files[file.id] = mine == 0 ? nil : mine
            return files.values.reduce(0, +)
        }
        guard total > memoryLimit else { return }
        try? file.spill(context: context, keep: keep, target: total - memoryLimit)
        let after = file.state.withLock { $0.memoryBytes }
        perFile.withLock { $0[file.id] = after == 0 ? nil : after }
    }

    func forget(_ id: Int64) { perFile.withLock { _ = $0.removeValue(forKey: id) } }
}

/// The bucket owner's quota (a67 user quota): a write that would take the owner's usage, plus
/// what open files have grown by and not yet committed, past it is refused with EDQUOT.
final class QuotaGuard: Sendable {
    let catalog: Catalog
    let owner: Int64?
    private struct State {
        var limit: Int64?
        var usage: Int64 = 0
        var checked: ContinuousClock.Instant?
        var growth: [Int64: Int64] = [:]
    }
    private let state = Mutex(State())

    init(catalog: Catalog, owner: Int64?) {
        self.catalog = catalog
        self.owner = owner
    }

    func allow(growth: Int64, file: Int64) -> Bool {
        guard let owner else { return true }
        return state.withLock { s in
            if s.checked.map({ ContinuousClock.now - $0 > .seconds(1) }) ?? true {
                s.limit = (try? catalog.user(id: owner))??.quota
                s.usage = (try? catalog.usage(user: owner).bytes) ?? s.usage
                s.checked = .now
            }
            guard let limit = s.limit else { return true }
            let pending = s.growth.values.reduce(0, +)
            guard s.usage + pending + growth <= limit else { return false }
            s.growth[file, default: 0] += growth
            return true
        }
    }

    /// The file's growth is in the catalog's usage now.
    func committed(file: Int64) {
        state.withLock { s in
            s.growth[file] = nil
            s.checked = nil
        }
    }
}
