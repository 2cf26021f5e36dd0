import ChunkStore
import Foundation

/// The catalog, kept on the providers: lose the machine, keep the data.
///
/// A snapshot is a page-for-page copy of the catalog database (SQLite's backup API) cut into 5 MiB
/// chunks, sealed like any other chunk and stored on every provider (so that each provider alone is
/// enough to recover). Unchanged stretches of the file have unchanged IDs and are not stored again.
/// Each provider that holds every chunk of the snapshot then gets a new root pointer: the object
/// `root`, sealed under the repository's root key, naming the snapshot's chunks (see FORMAT.md).
///
/// The local file snapshots.json remembers the last snapshots and which providers hold their chunks,
/// so that the next snapshot stores only what changed; it is rebuilt from a root pointer on recovery.
extension Repository {
    public static let rootObjectName = "root"
    static let snapshotStateFile = "snapshots.json"
    static let snapshotsKept = 5

    /// One snapshot, as the root pointer names it.
    public struct SnapshotRoot: Codable, Sendable, Equatable {
        public var version = 1
        public var sequence: Int64
        /// Nanoseconds since 1970.
        public var createdAt: Int64
        public var size: Int64
        /// Chunk IDs (hex) and plaintext lengths, in file order.
        public var chunks: [Chunk]

        public struct Chunk: Codable, Sendable, Equatable {
            public var id: String
            public var length: Int
        }
    }

    struct SnapshotState: Codable {
        var snapshots: [SnapshotRoot] = []
        /// For each snapshot chunk (hex ID), the providers known to hold it.
        var holders: [String: [Int64]] = [:]
        /// For each provider, the sequence of the root pointer it holds.
        var roots: [String: Int64] = [:]
    }

    public struct SnapshotReport: Sendable {
        public let sequence: Int64
        public let size: Int64
        public let chunks: Int
        /// Chunks this snapshot had to store (the rest were already there).
        public let chunksStored: Int
        /// Providers that now hold this snapshot and its root pointer.
        public let providers: [String]
        /// Providers that could not be brought up to date (they keep an older snapshot).
        public let behind: [String]
        /// True when the catalog had not changed since the last snapshot.
        public let unchanged: Bool
    }

    static func rootContext(_ repositoryID: String) -> [UInt8] { Array("automator67/v1/catalog-root\0\(repositoryID)".utf8) }

    static func sealRoot(_ root: SnapshotRoot, keys: RepositoryKeys, repositoryID: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Crypto.sealBox([UInt8](try! encoder.encode(root)), key: keys.rootKey, context: rootContext(repositoryID))
    }

    static func openRoot(_ sealed: [UInt8], keys: RepositoryKeys, repositoryID: String, source: String) throws -> SnapshotRoot {
        guard let plaintext = Crypto.openBox(sealed, key: keys.rootKey, context: rootContext(repositoryID)) else {
            throw StoreError(.integrity, "the catalog root pointer on \(source) does not open under this repository's key: it was altered or belongs to another repository")
        }
        guard let root = try? JSONDecoder().decode(SnapshotRoot.self, from: Data(plaintext)), root.version == 1 else {
            throw StoreError(.integrity, "the catalog root pointer on \(source) is of an unknown version: a newer a67 wrote it")
        }
        return root
    }

    private var snapshotStatePath: String { home + "/" + Self.snapshotStateFile }

    func loadSnapshotState() -> SnapshotState {
        guard let data = FileManager.default.contents(atPath: snapshotStatePath),
              let state = try? JSONDecoder().decode(SnapshotState.self, from: data) else { return SnapshotState() }
        return state
    }

    func saveSnapshotState(_ state: SnapshotState) throws {
        try LocalFile.write([UInt8](try JSONEncoder().encode(state)), to: snapshotStatePath)
    }

    /// Changes the snapshot record under the snapshot lock (a snapshot may be running beside).
    func updateSnapshotState(_ change: (inout SnapshotState) -> Void) async throws {
        try await whileSnapshotting {
            var state = loadSnapshotState()
            change(&state)
            try saveSnapshotState(state)
        }
    }

    /// Runs `body` holding the snapshot lock (one snapshot record writer at a time, in every process).
    private func whileSnapshotting<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await RepositoryLock.at(home: home, name: "snapshot.lock").withExclusive(body)
    }

    /// The chunks of the snapshots kept (garbage collection must not take them).
    func snapshotChunkIDs() throws -> Set<ChunkID> {
        Set(loadSnapshotState().snapshots.flatMap { $0.chunks.compactMap { ChunkID(hex: $0.id) } })
    }

    /// Snapshots the catalog onto every provider. Cheap when little changed: only changed chunks are
    /// stored, and nothing at all when the catalog is as the last snapshot left it. Throws when no
    /// provider could take it.
    @discardableResult
    public func snapshotCatalog() async throws -> SnapshotReport {
        let keys = try unlocked()
        // Stores before it records (in snapshots.json): shared with puts, exclusive of gc.
        return try await whileStoring { try await whileSnapshotting { try await storeSnapshot(keys: keys) } }
    }

    private func storeSnapshot(keys: RepositoryKeys) async throws -> SnapshotReport {
        var state = loadSnapshotState()
        let pool = try pool()
        await pool.checkKeyringsFirst(pool.members)
        let members = pool.members.filter { !$0.draining && $0.health.problem == nil }
        guard !members.isEmpty else {
            return SnapshotReport(sequence: 0, size: 0, chunks: 0, chunksStored: 0, providers: [], behind: [], unchanged: true)
        }
        let copy = home + "/.catalog-snapshot.tmp"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        // A whole-database copy and read: on the BlockingIOPool, not on a cooperative thread.
        let catalog = self.catalog
        let bytes = try await offPool { () throws -> [UInt8] in
            try catalog.backup(to: copy)
            guard let data = FileManager.default.contents(atPath: copy) else {
                throw StoreError(.io, "cannot read the catalog copy \(copy)")
            }
            return [UInt8](data)
        }
        let sealer = ChunkSealer(keys: keys)
        var chunks: [SnapshotRoot.Chunk] = []
        var stored = 0
        var offset = 0
        repeat {
            let piece = Array(bytes[offset..<min(offset + ChunkSealer.maxChunkSize, bytes.count)])
            offset += piece.count
            let id = sealer.id(of: piece)
            chunks.append(.init(id: id.hex, length: piece.count))
            let holders = state.holders[id.hex] ?? []
            let missing = members.map(\.id).filter { !holders.contains($0) }
            if !missing.isEmpty {
                let added = await pool.store(id, sealed: sealer.seal(piece, id: id), on: missing)
                state.holders[id.hex] = holders + added
                if !added.isEmpty { stored += 1 }
            }
        } while offset < bytes.count

        let complete = members.filter { member in chunks.allSatisfy { state.holders[$0.id]?.contains(member.id) == true } }
        let latest = state.snapshots.last
        if let latest, latest.chunks == chunks,
           complete.allSatisfy({ state.roots[String($0.id)] == latest.sequence }) {
            if stored > 0 { try saveSnapshotState(state) }
            return SnapshotReport(sequence: latest.sequence, size: latest.size, chunks: chunks.count, chunksStored: stored,
                                  providers: complete.map(\.name), behind: members.filter { m in !complete.contains { $0.id == m.id } }.map(\.name),
                                  unchanged: true)
        }
        // Sequences only grow, and follow the clock (milliseconds since 1970) so that a root written from
        // another machine, or after the local record was lost, still orders after the ones before it.
        let sequence = max(max(latest?.sequence ?? 0, state.roots.values.max() ?? 0) + 1,
                           Int64(Date().timeIntervalSince1970 * 1000))
        let root = SnapshotRoot(sequence: sequence, createdAt: Int64(Date().timeIntervalSince1970 * 1e9), size: Int64(bytes.count),
                                chunks: chunks)
        let sealedRoot = Self.sealRoot(root, keys: keys, repositoryID: repositoryID)
        let updated: [Int64] = await withTaskGroup(of: Int64?.self) { group in
            for member in complete {
                group.addTask {
                    do {
                        try await member.backend.put(Self.rootObjectName, data: sealedRoot)
                        return member.id
                    } catch {
                        return nil
                    }
                }
            }
            var done: [Int64] = []
            for await id in group { if let id { done.append(id) } }
            return done
        }
        guard !updated.isEmpty else {
            throw StoreError(.providerFailure, "the catalog snapshot could not be stored on any provider (\(members.map(\.name).joined(separator: ", "))): your objects are safe locally, but recovery from the providers would find an older catalog. Check them with a67 provider ls --probe")
        }
        for id in updated { state.roots[String(id)] = sequence }
        state.snapshots.append(root)
        state.snapshots = Array(state.snapshots.suffix(Self.snapshotsKept))
        let live = Set(state.snapshots.flatMap { $0.chunks.map(\.id) })
        state.holders = state.holders.filter { live.contains($0.key) }
        try saveSnapshotState(state)
        let names = members.filter { updated.contains($0.id) }.map(\.name)
        return SnapshotReport(sequence: sequence, size: root.size, chunks: chunks.count, chunksStored: stored, providers: names,
                              behind: members.map(\.name).filter { !names.contains($0) }, unchanged: false)
    }

    /// Deletes the catalog snapshot copies on `provider` (being drained) once the snapshot is on the
    /// others, and forgets them; its root pointer goes too.
    func dropSnapshotCopies(on provider: Int64, pool: ReplicatedPool) async throws {
        try await snapshotCatalog()
        guard let member = pool.member(provider) else { return }
        let held = loadSnapshotState().holders.filter { $0.value.contains(provider) }.keys
        var dropped: [String] = []
        for hex in held {
            guard let id = ChunkID(hex: hex) else { continue }
            // A data chunk of the same bytes recorded there stays (drain moves those first).
            if try await catalog.chunks.locations(id)?.contains(provider) == true { continue }
            do {
                try await member.backend.delete(id.objectName)
                dropped.append(hex)
            } catch BackendError.notFound {
                dropped.append(hex)
            }
        }
        try? await member.backend.delete(Self.rootObjectName)
        try await updateSnapshotState { state in
            for hex in dropped { state.holders[hex]?.removeAll { $0 == provider } }
            state.roots[String(provider)] = nil
        }
    }

    /// The root pointers found on the providers now (for gc: their chunks stay, even when the local
    /// snapshot record was lost), and the providers whose root could not be read (gc sweeps nothing
    /// there: the chunks their root names are unknown).
    func rootsOnProviders() async throws -> (roots: [SnapshotRoot], unreadable: [Int64: String]) {
        let keys = try unlocked()
        var roots: [SnapshotRoot] = []
        var unreadable: [Int64: String] = [:]
        for member in try pool().members {
            do {
                let sealed = try await member.backend.get(Self.rootObjectName, range: nil)
                roots.append(try Self.openRoot(sealed, keys: keys, repositoryID: repositoryID, source: member.name))
            } catch BackendError.notFound {
                continue
            } catch {
                unreadable[member.id] = "its catalog root pointer cannot be read: \(error)"
            }
        }
        return (roots, unreadable)
    }
}
