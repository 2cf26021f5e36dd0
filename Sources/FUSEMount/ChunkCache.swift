import ChunkStore
import Foundation
import Synchronization

/// The chunks a mount reads: the plaintext of the most recent ones in memory (a few blocks), and
/// sealed copies on local disk, least recently used first out, bounded by `--cache-size`. On disk a
/// chunk stays sealed (encrypted, authenticated): every use opens and verifies it again, and a copy
/// that fails is dropped and fetched anew from the providers.
final class ChunkCache: Sendable {
    let directory: String
    let diskLimit: Int64
    let memoryLimit: Int
    let sealer: ChunkSealer
    let pool: any ChunkPool
    let catalog: Catalog

    private struct State {
        var memory: [ChunkID: (bytes: [UInt8], tick: UInt64)] = [:]
        var memoryBytes = 0
        var disk: [ChunkID: (size: Int64, tick: UInt64)] = [:]
        var diskBytes: Int64 = 0
        var tick: UInt64 = 0
        var loading: [ChunkID: Task<[UInt8], Error>] = [:]
    }
    private let state = Mutex(State())

    init(directory: String, diskLimit: Int64, memoryLimit: Int, sealer: ChunkSealer, pool: any ChunkPool, catalog: Catalog) throws {
        self.directory = directory
        self.diskLimit = diskLimit
        self.memoryLimit = memoryLimit
        self.sealer = sealer
        self.pool = pool
        self.catalog = catalog
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // What an earlier mount left: oldest first out, by modification time.
        var found: [(ChunkID, Int64, Date)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let path = directory + "/" + name
            guard let bytes = Hex.decode(name), bytes.count == ChunkID.byteCount,
                  let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  let size = attributes[.size] as? Int64 else {
                try? FileManager.default.removeItem(atPath: path)
                continue
            }
            found.append((ChunkID(bytes: bytes), size, attributes[.modificationDate] as? Date ?? .distantPast))
        }
        state.withLock { state in
            for (id, size, _) in found.sorted(by: { $0.2 < $1.2 }) {
                state.tick += 1
                state.disk[id] = (size, state.tick)
                state.diskBytes += size
            }
        }
        evictDisk()
    }

    /// The verified plaintext of `entry`'s chunk.
    func plaintext(_ entry: Manifest.Entry) async throws -> [UInt8] {
        enum Lookup { case hit([UInt8]), wait(Task<[UInt8], Error>) }
        let lookup: Lookup = state.withLock { state in
            state.tick += 1
            if let hit = state.memory[entry.id] {
                state.memory[entry.id]?.tick = state.tick
                return .hit(hit.bytes)
            }
            if let task = state.loading[entry.id] { return .wait(task) }
            let task = Task { try await self.load(entry) }
            state.loading[entry.id] = task
            return .wait(task)
        }
        switch lookup {
        case .hit(let bytes):
            return bytes
        case .wait(let task):
            do {
                let bytes = try await task.value
                remember(entry.id, bytes)
                state.withLock { _ = $0.loading.removeValue(forKey: entry.id) }
                return bytes
            } catch {
                state.withLock { _ = $0.loading.removeValue(forKey: entry.id) }
                throw error
            }
        }
    }

    /// The plaintext in memory, if it is there (no waiting).
    func cached(_ id: ChunkID) -> [UInt8]? {
        state.withLock { state in
            state.tick += 1
            guard let hit = state.memory[id] else { return nil }
            state.memory[id]?.tick = state.tick
            return hit.bytes
        }
    }

    /// Starts fetching `entry` unless it is cached or on its way (readahead).
    func prefetch(_ entry: Manifest.Entry) {
        let needed = state.withLock { $0.memory[entry.id] == nil && $0.loading[entry.id] == nil }
        guard needed else { return }
        Task { _ = try? await self.plaintext(entry) }
    }

    /// Keeps plaintext just written, for reads that follow.
    func remember(_ id: ChunkID, _ bytes: [UInt8]) {
        guard bytes.count <= memoryLimit / 2 else { return }
        state.withLock { state in
            state.tick += 1
            if let old = state.memory.updateValue((bytes, state.tick), forKey: id) { state.memoryBytes -= old.bytes.count }
            state.memoryBytes += bytes.count
            while state.memoryBytes > memoryLimit, let oldest = state.memory.min(by: { $0.value.tick < $1.value.tick }) {
                state.memory.removeValue(forKey: oldest.key)
                state.memoryBytes -= oldest.value.bytes.count
            }
        }
    }

    private func path(_ id: ChunkID) -> String { directory + "/" + Hex.encode(id.bytes) }

    private func load(_ entry: Manifest.Entry) async throws -> [UInt8] {
        let sealer = self.sealer
        let path = self.path(entry.id)
        let onDisk = state.withLock { $0.disk[entry.id] != nil }
        if onDisk {
            let sealed = try? await BlockingIOPool.shared.run { try Data(contentsOf: URL(fileURLWithPath: path)) }
            if let sealed, let plain = try? sealer.open([UInt8](sealed), id: entry.id, expectedLength: entry.length) {
                state.withLock { state in
                    state.tick += 1
                    state.disk[entry.id]?.tick = state.tick
                }
                return plain
            }
            // Gone or damaged: forget this copy and fetch the chunk again.
            try? FileManager.default.removeItem(atPath: path)
            state.withLock { state in
                if let old = state.disk.removeValue(forKey: entry.id) { state.diskBytes -= old.size }
            }
        }
        guard let locations = try await catalog.chunkLocations(entry.id), !locations.isEmpty else {
            throw StoreError(.integrity, "chunk \(entry.id.short) has no recorded location")
        }
        let (plain, sealed) = try await pool.fetch(entry.id, from: locations) { sealed in
            (try sealer.open(sealed, id: entry.id, expectedLength: entry.length), sealed)
        }
        if diskLimit > 0 {
            let stored: Bool = (try? await BlockingIOPool.shared.run {
                try Data(sealed).write(to: URL(fileURLWithPath: path), options: .atomic)
                return true
            }) ?? false
            if stored {
                state.withLock { state in
                    state.tick += 1
                    if let old = state.disk.updateValue((Int64(sealed.count), state.tick), forKey: entry.id) { state.diskBytes -= old.size }
                    state.diskBytes += Int64(sealed.count)
                }
                evictDisk()
            }
        }
        return plain
    }

    /// Drops the least recently used sealed copies until the cache is under 90% of its bound.
    private func evictDisk() {
        let victims: [ChunkID] = state.withLock { state in
            guard state.diskBytes > diskLimit else { return [] }
            var out: [ChunkID] = []
            for (id, value) in state.disk.sorted(by: { $0.value.tick < $1.value.tick }) {
                guard state.diskBytes > diskLimit / 10 * 9 else { break }
                state.disk.removeValue(forKey: id)
                state.diskBytes -= value.size
                out.append(id)
            }
            return out
        }
        for id in victims { unlink(path(id)) }
    }
}
