import ChunkStore
import Foundation
import Synchronization

/// The chunks a mount reads: the plaintext of the most recent ones in memory (a few chunks), and a
/// copy of each on local disk, least recently used first out, bounded by `--cache-size`.
///
/// On disk a chunk stays sealed: it is cut into 64 KiB pieces, each sealed with AES-256-GCM under the
/// repository's local-cache key (`Crypto.sealBox`, the chunk ID and the piece's number authenticated),
/// so that a 4 KiB read opens one piece rather than a whole 5 MiB chunk. A piece that fails to open
/// (damaged, or from another repository) drops the copy, and the chunk is fetched again from the
/// providers, where it is verified against its ID.
final class ChunkCache: Sendable {
    let directory: String
    let diskLimit: Int64
    let memoryLimit: Int
    let sealer: ChunkSealer
    let pool: any ChunkPool
    let catalog: Catalog
    let key: SecretKey
    static let piece = 64 << 10
    static let pieceOverhead = Crypto.nonceSize + Crypto.tagSize

    private struct State {
        var memory: [ChunkID: (bytes: [UInt8], tick: UInt64)] = [:]
        var memoryBytes = 0
        var disk: [ChunkID: (size: Int64, tick: UInt64)] = [:]
        var diskBytes: Int64 = 0
        var tick: UInt64 = 0
        var loading: [ChunkID: Task<[UInt8], Error>] = [:]
    }
    private let state = Mutex(State())

    init(directory: String, diskLimit: Int64, memoryLimit: Int, sealer: ChunkSealer, pool: any ChunkPool, catalog: Catalog,
         key: SecretKey) throws {
        self.directory = directory
        self.diskLimit = diskLimit
        self.memoryLimit = memoryLimit
        self.sealer = sealer
        self.pool = pool
        self.catalog = catalog
        self.key = key
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

    /// Bytes `range` of `entry`'s chunk: from memory or the disk cache without waiting, else fetched.
    func bytes(_ entry: Manifest.Entry, _ range: Range<Int>) async throws -> ArraySlice<UInt8> {
        if let bytes = cached(entry, range) { return bytes }
        return try await plaintext(entry)[range]
    }

    /// Bytes `range` of `entry`'s chunk if memory or the disk cache has them (reading only the pieces
    /// the range touches from disk); nil otherwise.
    func cached(_ entry: Manifest.Entry, _ range: Range<Int>) -> ArraySlice<UInt8>? {
        let (memory, onDisk): ([UInt8]?, Bool) = state.withLock { state in
            state.tick += 1
            if let hit = state.memory[entry.id] {
                state.memory[entry.id]?.tick = state.tick
                return (hit.bytes, true)
            }
            guard state.disk[entry.id] != nil else { return (nil, false) }
            state.disk[entry.id]?.tick = state.tick
            return (nil, true)
        }
        if let memory { return memory[range] }
        guard onDisk, !range.isEmpty else { return onDisk ? [] : nil }
        guard let bytes = readPieces(entry, range) else {
            drop(entry.id)
            return nil
        }
        return bytes[...]
    }

    /// Starts fetching `entry` unless it is in memory or on its way (readahead).
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

    private func context(_ id: ChunkID, _ index: Int) -> [UInt8] {
        Array("automator67/v1/cache-piece\0".utf8) + id.bytes + withUnsafeBytes(of: UInt32(index).littleEndian, Array.init)
    }

    /// Opens the pieces of `range` from the chunk's file; nil if the file is gone or a piece fails.
    private func readPieces(_ entry: Manifest.Entry, _ range: Range<Int>) -> [UInt8]? {
        let fd = open(path(entry.id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let first = range.lowerBound / Self.piece, last = (range.upperBound - 1) / Self.piece
        var out: [UInt8] = []
        out.reserveCapacity((last - first + 1) * Self.piece)
        for index in first...last {
            let plain = min(Self.piece, entry.length - index * Self.piece)
            guard plain > 0 else { return nil }
            let boxSize = plain + Self.pieceOverhead
            var box = [UInt8](repeating: 0, count: boxSize)
            let got = box.withUnsafeMutableBytes { pread(fd, $0.baseAddress, boxSize, off_t(index * (Self.piece + Self.pieceOverhead))) }
            guard got == boxSize, let opened = Crypto.openBox(box, key: key, context: context(entry.id, index)) else { return nil }
            out += opened
        }
        let base = first * Self.piece
        return Array(out[(range.lowerBound - base)..<(range.upperBound - base)])
    }

    private func drop(_ id: ChunkID) {
        unlink(path(id))
        state.withLock { state in
            if let old = state.disk.removeValue(forKey: id) { state.diskBytes -= old.size }
        }
    }

    private func load(_ entry: Manifest.Entry) async throws -> [UInt8] {
        let onDisk = state.withLock { $0.disk[entry.id] != nil }
        if onDisk, entry.length > 0 {
            let cache = self
            if let plain = try? await BlockingIOPool.shared.run({ cache.readPieces(entry, 0..<entry.length) }) { return plain }
            drop(entry.id)
        }
        guard let locations = try await catalog.chunks.locations(entry.id), !locations.isEmpty else {
            throw StoreError(.integrity, "chunk \(entry.id.short) has no recorded location")
        }
        let sealer = self.sealer
        let plain = try await pool.fetch(entry.id, from: locations) { sealed in
            try sealer.open(sealed, id: entry.id, expectedLength: entry.length)
        }
        if diskLimit > 0 {
            // Kept on disk in the background: the reader has its bytes now.
            Task.detached(priority: .utility) {
                let size = (try? await BlockingIOPool.shared.run { try self.writePieces(entry.id, plain) }) ?? 0
                guard size > 0 else { return }
                self.state.withLock { state in
                    state.tick += 1
                    if let old = state.disk.updateValue((size, state.tick), forKey: entry.id) { state.diskBytes -= old.size }
                    state.diskBytes += size
                }
                self.evictDisk()
            }
        }
        return plain
    }

    /// Writes the chunk's pieces, each sealed, to a temporary file renamed into place; its size.
    private func writePieces(_ id: ChunkID, _ plain: [UInt8]) throws -> Int64 {
        var file: [UInt8] = []
        file.reserveCapacity(plain.count + (plain.count / Self.piece + 1) * Self.pieceOverhead)
        var index = 0
        while index * Self.piece < plain.count {
            let start = index * Self.piece
            file += Crypto.sealBox(Array(plain[start..<min(start + Self.piece, plain.count)]), key: key, context: context(id, index))
            index += 1
        }
        try Data(file).write(to: URL(fileURLWithPath: path(id)), options: .atomic)
        return Int64(file.count)
    }

    /// Drops the least recently used copies until the cache is under 90% of its bound.
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
