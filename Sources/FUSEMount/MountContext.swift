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
    /// Leases on the chunks stored and not yet committed (gc keeps them while this process lives).
    let leases: LeaseBook
    /// The manifest of an empty file (stored once; every new file starts with it), leased for as
    /// long as the mount runs.
    let emptyManifest: (id: ChunkID, body: [UInt8])

    init(repository: Repository, bucket: BucketRecord, cache: ChunkCache, spill: SpillFile, budget: DirtyBudget,
         leases: LeaseBook, emptyManifest: (id: ChunkID, body: [UInt8])) throws {
        self.repository = repository
        catalog = repository.catalog
        self.bucket = bucket
        writer = try repository.objectWriter(window: 4)
        policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        self.cache = cache
        self.spill = spill
        self.budget = budget
        quota = QuotaGuard(catalog: repository.catalog, owner: bucket.ownerID)
        self.leases = leases
        self.emptyManifest = emptyManifest
    }

    /// Seals and stores one block of `file`, durably on its replicas; a block shorter than a chunk
    /// comes back unrecorded, for the commit to record. The chunk is leased to this process before
    /// the repository lock is let go (so gc, which takes it exclusively, never finds it unleased and
    /// unreferenced), and the lease is noted on the file, which lets it go once it is committed.
    /// Without `file`, the lease lasts as long as the mount.
    func store(_ bytes: [UInt8], for file: FileNode?) async throws -> (Manifest.Entry, StoredChunk?) {
        let policy = self.policy
        let writer = self.writer
        let leases = self.leases
        let stored = try await repository.whileStoring {
            var given = false
            let stored = try await writer.storeChunks(reading: { _ in
                defer { given = true }
                return given ? [] : bytes
            }, policy: policy)
            try leases.acquire([stored.entries[0].id], copies: stored.unrecorded.first.map { [$0.id: $0.providers] } ?? [:])
            file?.state.withLock { $0.leased.append(stored.entries[0].id) }
            return stored
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
            _ = try catalog.namespace.commitContent(id, manifestID: manifestID, manifest: manifest, chunks: chunks + (stored.map { [$0] } ?? []),
                                          mtime: mtime, durable: durable)
            return manifestID
        }
    }

    private let zeros = Mutex<Manifest.Entry?>(nil)

    /// The chunk of a whole block of zeros (the holes of sparse files), stored on first need and
    /// leased for as long as the mount runs.
    func zeroBlock() async throws -> Manifest.Entry {
        if let entry = zeros.withLock({ $0 }) { return entry }
        let (entry, unrecorded) = try await store([UInt8](repeating: 0, count: FileNode.blockSize), for: nil)
        if let unrecorded { try await catalog.chunks.record([unrecorded]) }
        zeros.withLock { $0 = entry }
        return entry
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

/// The bucket owner's quota (a67 user quota): what open files have grown by and not yet committed
/// is held as one quota reservation in the catalog (the mechanism S3 uploads and a67 put use too),
/// so a write that would take the owner past the quota, counting every upload in flight in every
/// process, is refused with EDQUOT.
final class QuotaGuard: Sendable {
    let reservation: QuotaReservation
    private let growth = Mutex<[Int64: Int64]>([:])

    init(catalog: Catalog, owner: Int64?) {
        reservation = QuotaReservation(catalog: catalog, user: owner, step: 16 << 20)
    }

    /// Whether the owner's quota has room for `file` to grow by `delta` bytes (taking it if so).
    /// Throws when the catalog cannot say (busy past its timeout, a full disk): that is an I/O
    /// error for this write, never a refusal that would drop the file's changes.
    func allow(growth delta: Int64, file: Int64) throws -> Bool {
        try growth.withLock { growth in
            do {
                try reservation.cover(growth.values.reduce(0, +) + delta)
            } catch let error as StoreError where error.code == .quotaExceeded {
                return false
            } catch {
                throw MountError.errno(EIO)
            }
            growth[file, default: 0] += delta
            return true
        }
    }

    /// The file's growth is in the catalog's usage now (or was dropped), but for `pending` bytes it
    /// grew by while the commit ran.
    func committed(file: Int64, pending: Int64 = 0) {
        growth.withLock { growth in
            guard growth[file] != nil else { return }
            growth[file] = pending > 0 ? pending : nil
            reservation.shrink(to: growth.values.reduce(0, +))
        }
    }
}

/// The chunks this mount has stored and not yet committed, leased in the catalog (ChunkIndex+Leases)
/// so that gc keeps them, counted so that a chunk two files hold (equal blocks) stays leased until
/// both let it go. Leases of a mount that is killed lapse with it.
final class LeaseBook: Sendable {
    let catalog: Catalog
    private let counts = Mutex<[ChunkID: Int]>([:])

    init(catalog: Catalog) { self.catalog = catalog }

    /// Call while holding the repository lock shared (the store that wrote the chunk does).
    /// `copies`: where the chunks not recorded yet are stored.
    func acquire(_ ids: [ChunkID], copies: [ChunkID: [Int64]] = [:]) throws {
        try counts.withLock { counts in
            let new = ids.filter { counts[$0, default: 0] == 0 }
            try catalog.chunks.lease(new, copies: copies)
            for id in ids { counts[id, default: 0] += 1 }
        }
    }

    /// Leases a file's committed content (its manifest, and through it every chunk it lists) before
    /// changes are made on it; fails when that content is no longer stored.
    func acquireManifest(_ id: ChunkID) throws {
        try counts.withLock { counts in
            if counts[id, default: 0] == 0 { try catalog.chunks.leaseManifest(id) }
            counts[id, default: 0] += 1
        }
    }

    func release(_ ids: [ChunkID]) {
        guard !ids.isEmpty else { return }
        counts.withLock { counts in
            var gone: [ChunkID] = []
            for id in ids {
                guard let n = counts[id] else { continue }
                if n <= 1 {
                    counts[id] = nil
                    gone.append(id)
                } else {
                    counts[id] = n - 1
                }
            }
            try? catalog.chunks.releaseLeases(gone)
        }
    }

    var count: Int { counts.withLock { $0.count } }
}

/// Runs `body` on a new thread of its own (the FUSE session, which blocks for the mount's life; in
/// tests, the filesystem's blocking operations) and awaits its result without holding a thread.
func runOnOwnThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}
