import ChunkStore
import Foundation
import Synchronization

/// A file's content while the mount has it open: the committed chunks (`base`) with the blocks
/// changed since laid over them. A block is the 5 MiB range of one chunk, so a write inside a large
/// file rewrites only the chunks it touches.
///
/// A changed block lives in memory, or in the spill file when the mount's dirty memory is over its
/// bound; a block filled to its end by a sequential writer is sealed and stored at once, in the
/// background, bounded by the mount's seal window (writers wait when it is full). `commit` stores
/// the rest, then the manifest, then points the file at it in one catalog transaction: what a reader
/// elsewhere sees is the old content or the new, never a mix. A commit that fails (a provider down)
/// leaves every change where it was, for the next one.
final class FileNode: Sendable {
    static let blockSize = ChunkSealer.maxChunkSize
    /// The largest file: one manifest's chunks (145,634 blocks, about 711 GiB). Past it, writes and
    /// truncates answer EFBIG. A sparse file costs only its manifest (36 bytes a block) and the
    /// blocks that hold data: holes are one shared chunk of zeros, never hashed again.
    static let maxSize = Int64(Manifest.maxEntries) * Int64(blockSize)
    /// Chunks fetched ahead of a sequential reader.
    static let readahead = 4
    let id: Int64
    let state: Mutex<NodeState>
    /// Broadcast when a background seal ends (a commit waits for those in flight).
    let sealed = NSCondition()
    /// One commit at a time per file.
    let committing = NSLock()

    enum Block {
        case memory([UInt8], UInt64)
        case spilled(slot: Int, count: Int, UInt64)
        case sealing([UInt8], UInt64)
        case stored(Manifest.Entry, StoredChunk?, UInt64)
    }

    struct NodeState {
        var size: Int64
        var base: [Manifest.Entry]
        var baseStarts: [Int64]
        /// Base bytes at or past this offset read as zeros (the file was truncated there).
        var baseLimit: Int64
        /// Every base chunk but the last is a whole block (so each can be kept as it is).
        var aligned: Bool
        var manifestID: ChunkID?
        var blocks: [Int: Block] = [:]
        var version: UInt64 = 1
        var dirtySince: ContinuousClock.Instant?
        var mtime: Int64
        var handles = 0
        var unlinked = false
        /// Set when a write went over the quota: the file's changes are refused, its last committed
        /// content stays.
        var refused: Int32?
        var inFlight = 0
        var lastReadEnd: Int64 = -1
        /// Chunks stored for this file and leased (MountContext.leases) since its last commit; a
        /// commit lets go of those it made part of the file (or that were overwritten before it).
        var leased: [ChunkID] = []
        /// The committed content (manifest) leased for the changes made on it, if any.
        var baseLeased: ChunkID?
        var memoryBytes: Int {
            blocks.values.reduce(0) { total, block in
                switch block {
                case .memory(let bytes, _), .sealing(let bytes, _): return total + bytes.count
                default: return total
                }
            }
        }
        var dirty: Bool { dirtySince != nil }

        mutating func nextVersion() -> UInt64 {
            version += 1
            return version
        }
    }

    init(id: Int64, manifestID: ChunkID?, manifest: Manifest, mtime: Int64) {
        self.id = id
        let aligned = manifest.entries.dropLast().allSatisfy { $0.length == Self.blockSize }
        state = Mutex(NodeState(size: manifest.size, base: manifest.entries, baseStarts: Self.starts(manifest.entries),
                                baseLimit: manifest.size, aligned: aligned, manifestID: manifestID, mtime: mtime))
    }

    /// Where each entry starts in the file.
    static func starts(_ entries: [Manifest.Entry]) -> [Int64] {
        var offset: Int64 = 0
        return entries.map { entry in
            defer { offset += Int64(entry.length) }
            return offset
        }
    }

    /// A range of a file's bytes, in the pieces it is made of.
    enum Piece {
        case bytes(ArraySlice<UInt8>)
        case zeros(Int)
        case chunk(Manifest.Entry, Range<Int>)
    }

    static func blockCount(_ size: Int64) -> Int { Int((size + Int64(blockSize) - 1) / Int64(blockSize)) }
    static func blockLength(_ k: Int, size: Int64) -> Int { Int(max(0, min(Int64(blockSize), size - Int64(k) * Int64(blockSize)))) }

    /// The pieces of the committed content in [from, to).
    static func basePieces(_ s: NodeState, from: Int64, to: Int64, into out: inout [Piece]) {
        let limit = min(to, s.baseLimit)
        var pos = from
        if pos < limit {
            // The last entry starting at or before pos.
            var lo = 0, hi = s.baseStarts.count
            while lo + 1 < hi {
                let mid = (lo + hi) / 2
                if s.baseStarts[mid] <= pos { lo = mid } else { hi = mid }
            }
            var index = lo
            while pos < limit && index < s.base.count {
                let start = s.baseStarts[index]
                let entry = s.base[index]
                let end = min(start + Int64(entry.length), limit)
                if end > pos {
                    out.append(.chunk(entry, Int(pos - start)..<Int(end - start)))
                    pos = end
                }
                index += 1
            }
        }
        if pos < to { out.append(.zeros(Int(to - pos))) }
    }

    /// The pieces of [from, to) as the file is now (clamped by the caller to its size).
    static func pieces(_ s: NodeState, from: Int64, to: Int64, spill: SpillFile) throws -> [Piece] {
        var out: [Piece] = []
        var pos = from
        let block = Int64(blockSize)
        while pos < to {
            let k = Int(pos / block)
            let blockStart = Int64(k) * block
            let end = min(blockStart + block, to)
            let lo = Int(pos - blockStart), hi = Int(end - blockStart)
            func fromBytes(_ bytes: ArraySlice<UInt8>) {
                if lo < bytes.count { out.append(.bytes(bytes[(bytes.startIndex + lo)..<(bytes.startIndex + min(hi, bytes.count))])) }
                if hi > bytes.count { out.append(.zeros(hi - max(lo, bytes.count))) }
            }
            switch s.blocks[k] {
            case .memory(let bytes, _), .sealing(let bytes, _):
                fromBytes(bytes[...])
            case .spilled(let slot, let count, _):
                fromBytes(try spill.read(slot: slot, count: count)[...])
            case .stored(let entry, _, _):
                if lo < entry.length { out.append(.chunk(entry, lo..<min(hi, entry.length))) }
                if hi > entry.length { out.append(.zeros(hi - max(lo, entry.length))) }
            case nil:
                basePieces(s, from: pos, to: end, into: &out)
            }
            pos = end
        }
        return out
    }

    static func assemble(_ pieces: [Piece], cache: ChunkCache) async throws -> [UInt8] {
        var out: [UInt8] = []
        for piece in pieces {
            switch piece {
            case .bytes(let bytes): out += bytes
            case .zeros(let n): out += [UInt8](repeating: 0, count: n)
            case .chunk(let entry, let range): out += try await cache.bytes(entry, range)
            }
        }
        return out
    }

    // MARK: - Reading

    /// Notes a read of [offset, end); when it continues the last one (or starts the file), the
    /// committed chunks of the next `readahead` blocks, to fetch ahead.
    static func readAhead(_ s: inout NodeState, offset: Int64, end: Int64) -> [Manifest.Entry] {
        defer { s.lastReadEnd = end }
        guard offset == s.lastReadEnd || offset == 0 else { return [] }
        var ahead: [Piece] = []
        let next = Int(end / Int64(blockSize)) + 1
        for k in next..<(next + readahead) where s.blocks[k] == nil {
            let start = Int64(k) * Int64(blockSize)
            guard start < s.size else { break }
            basePieces(s, from: start, to: min(start + Int64(blockSize), s.size), into: &ahead)
        }
        return ahead.compactMap { piece in
            if case .chunk(let entry, _) = piece { return entry }
            return nil
        }
    }

    /// Up to `count` bytes at `offset`; starts fetching the next chunk on a sequential read.
    func read(at offset: Int64, count: Int, context: MountContext) async throws -> [UInt8] {
        let (pieces, ahead) = try state.withLock { s -> ([Piece], [Manifest.Entry]) in
            let end = min(offset + Int64(count), s.size)
            guard offset < end else { return ([], []) }
            let pieces = try Self.pieces(s, from: offset, to: end, spill: context.spill)
            let ahead = Self.readAhead(&s, offset: offset, end: end)
            return (pieces, ahead)
        }
        for entry in ahead { context.cache.prefetch(entry) }
        return try await Self.assemble(pieces, cache: context.cache)
    }

    /// Whether `read` can answer without waiting for a chunk.
    func readableNow(at offset: Int64, count: Int, context: MountContext) -> [UInt8]? {
        state.withLock { s -> [UInt8]? in
            let end = min(offset + Int64(count), s.size)
            guard offset < end else { return [] }
            guard let pieces = try? Self.pieces(s, from: offset, to: end, spill: context.spill) else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(Int(end - offset))
            for piece in pieces {
                switch piece {
                case .bytes(let bytes): out += bytes
                case .zeros(let n): out += [UInt8](repeating: 0, count: n)
                case .chunk(let entry, let range):
                    guard let bytes = context.cache.cached(entry, range) else { return nil }
                    out += bytes
                }
            }
            // Keeps the readahead going while reads are served from memory.
            for entry in Self.readAhead(&s, offset: offset, end: end) { context.cache.prefetch(entry) }
            return out
        }
    }

    // MARK: - Writing

    private enum Step {
        case done(seal: [Int])
        case needOld(block: Int, pieces: [Piece], version: UInt64)
        case refused(Int32)
    }

    /// Writes `data` at `offset` (blocking the calling FUSE thread while old bytes are fetched or
    /// the seal window is full).
    func write(_ data: [UInt8], at offset: Int64, context: MountContext) throws {
        let end = offset + Int64(data.count)
        guard offset >= 0, end <= Self.maxSize else { throw MountError.errno(EFBIG) }
        try holdBase(context: context)
        let block = Int64(Self.blockSize)
        while true {
            let step: Step = try state.withLock { s in
                if let refused = s.refused { return .refused(refused) }
                if end > s.size, try !context.quota.allow(growth: end - s.size, file: id) {
                    s.refused = EDQUOT
                    return .refused(EDQUOT)
                }
                // First make sure every touched block can take the bytes.
                for k in Int(offset / block)...Int((end - 1) / block) {
                    let lo = Int(max(offset, Int64(k) * block) - Int64(k) * block)
                    let hi = Int(min(end, Int64(k + 1) * block) - Int64(k) * block)
                    switch s.blocks[k] {
                    case .memory, .sealing, .spilled:
                        continue
                    case .stored, nil:
                        let existing = Self.blockLength(k, size: s.size)
                        if lo == 0 && hi >= existing { continue }
                        let start = Int64(k) * block
                        return .needOld(block: k, pieces: try Self.pieces(s, from: start, to: start + Int64(existing), spill: context.spill),
                                        version: s.version)
                    }
                }
                let version = s.nextVersion()
                var seal: [Int] = []
                for k in Int(offset / block)...Int((end - 1) / block) {
                    let blockStart = Int64(k) * block
                    let lo = Int(max(offset, blockStart) - blockStart)
                    let hi = Int(min(end, blockStart + block) - blockStart)
                    var bytes: [UInt8]
                    switch s.blocks[k] {
                    case .memory(let current, _), .sealing(let current, _):
                        bytes = current
                    case .spilled(let slot, let count, _):
                        bytes = try context.spill.read(slot: slot, count: count)
                        context.spill.free(slot)
                    case .stored, nil:
                        bytes = []
                    }
                    s.blocks[k] = nil  // one reference to `bytes`: changed in place
                    if bytes.count < hi { bytes += [UInt8](repeating: 0, count: hi - bytes.count) }
                    let source = Int(blockStart + Int64(lo) - offset)
                    bytes.withUnsafeMutableBufferPointer { out in
                        data.withUnsafeBufferPointer { input in
                            out.baseAddress!.advanced(by: lo).update(from: input.baseAddress!.advanced(by: source), count: hi - lo)
                        }
                    }
                    if hi == Self.blockSize && bytes.count == Self.blockSize { seal.append(k) }
                    s.blocks[k] = .memory(bytes, version)
                }
                s.size = max(s.size, end)
                s.mtime = Catalog.now()
                if s.dirtySince == nil { s.dirtySince = .now }
                return .done(seal: seal)
            }
            switch step {
            case .refused(let code):
                throw MountError.errno(code)
            case .needOld(let k, let pieces, let version):
                try loadOld(k, pieces, version: version, context: context)
            case .done(let seal):
                for k in seal { startSealing(k, context: context) }
                context.budget.update(self, context: context, keep: Int((end - 1) / block))
                return
            }
        }
    }

    /// Leases the committed content this file's changes build on (its unchanged blocks go into the next
    /// commit as they are), before the first change after each commit, so that gc keeps it even if the
    /// object is replaced elsewhere meanwhile. EIO when that content is already gone: the change is
    /// refused rather than accepted and lost at the commit.
    private func holdBase(context: MountContext) throws {
        let base = state.withLock { s -> ChunkID? in
            guard let id = s.manifestID, id != context.emptyManifest.id, s.baseLeased != id, !s.base.isEmpty else { return nil }
            return id
        }
        guard let base else { return }
        do {
            try context.leases.acquireManifest(base)
        } catch {
            throw MountError.errno(EIO)
        }
        state.withLock { s in
            s.baseLeased = base
            s.leased.append(base)
        }
    }

    /// Stores block `k` in the background once a seal slot is free (waiting for one).
    func startSealing(_ k: Int, context: MountContext) {
        context.budget.sealSlots.wait()
        let job: ([UInt8], UInt64)? = state.withLock { s in
            guard case .memory(let bytes, let version)? = s.blocks[k], bytes.count == Self.blockSize else { return nil }
            s.blocks[k] = .sealing(bytes, version)
            s.inFlight += 1
            return (bytes, version)
        }
        guard let (bytes, version) = job else {
            context.budget.sealSlots.signal()
            return
        }
        Task {
            defer {
                context.budget.sealSlots.signal()
                sealEnded()
            }
            do {
                let (entry, unrecorded) = try await context.store(bytes, for: self)
                context.cache.remember(entry.id, bytes)
                state.withLock { s in
                    s.inFlight -= 1
                    if case .sealing(_, let current)? = s.blocks[k], current == version { s.blocks[k] = .stored(entry, unrecorded, version) }
                }
            } catch {
                // The block stays changed: the next commit stores it, or reports why it cannot.
                state.withLock { s in
                    s.inFlight -= 1
                    if case .sealing(_, let current)? = s.blocks[k], current == version { s.blocks[k] = .memory(bytes, version) }
                }
            }
        }
    }

    /// Moves this file's changed blocks from memory to the spill file (all but block `keep`).
    func spill(context: MountContext, keep: Int, target: Int) throws {
        try state.withLock { s in
            var freed = 0
            for (k, block) in s.blocks where k != keep && freed < target {
                guard case .memory(let bytes, let version) = block else { continue }
                let slot = try context.spill.write(bytes)
                s.blocks[k] = .spilled(slot: slot, count: bytes.count, version)
                freed += bytes.count
            }
        }
    }

    /// Sets the size (truncate, both ways).
    func truncate(to size: Int64, context: MountContext) throws {
        guard size <= Self.maxSize else { throw MountError.errno(EFBIG) }
        try holdBase(context: context)
        let block = Int64(Self.blockSize)
        while true {
            enum Step { case done, needOld(Int, [Piece], UInt64), refused(Int32) }
            let step: Step = try state.withLock { s in
                if let refused = s.refused { return .refused(refused) }
                if size > s.size, try !context.quota.allow(growth: size - s.size, file: id) {
                    s.refused = EDQUOT
                    return .refused(EDQUOT)
                }
                if size < s.size {
                    let cut = Int(size % block)
                    let k = Int(size / block)
                    if cut != 0 {
                        // The block the new end falls in keeps only its first `cut` bytes.
                        switch s.blocks[k] {
                        case .stored(let entry, _, _):
                            return .needOld(k, [.chunk(entry, 0..<min(cut, entry.length))], s.version)
                        case .spilled(let slot, let count, let version):
                            let bytes = try context.spill.read(slot: slot, count: min(count, cut))
                            context.spill.free(slot)
                            s.blocks[k] = .memory(bytes, version)
                        default:
                            break
                        }
                    }
                    for (index, value) in s.blocks where index > k || (index == k && cut == 0) {
                        if case .spilled(let slot, _, _) = value { context.spill.free(slot) }
                        s.blocks[index] = nil
                    }
                    if cut != 0, case .memory(let bytes, let version)? = s.blocks[k] {
                        s.blocks[k] = .memory(Array(bytes.prefix(cut)), version)
                    }
                    if cut != 0, case .sealing(let bytes, _)? = s.blocks[k] {
                        s.blocks[k] = .memory(Array(bytes.prefix(cut)), s.nextVersion())
                    }
                    s.baseLimit = min(s.baseLimit, size)
                }
                _ = s.nextVersion()
                s.size = size
                s.mtime = Catalog.now()
                if s.dirtySince == nil { s.dirtySince = .now }
                return .done
            }
            switch step {
            case .done: return
            case .refused(let code): throw MountError.errno(code)
            case .needOld(let k, let pieces, let version):
                try loadOld(k, pieces, version: version, context: context)
            }
        }
    }

    /// Brings block `k`'s current bytes into memory for a partial change (unless the file changed
    /// meanwhile: the caller then plans again).
    private func loadOld(_ k: Int, _ pieces: [Piece], version: UInt64, context: MountContext) throws {
        let old = try context.blocking { try await Self.assemble(pieces, cache: context.cache) }
        state.withLock { s in
            if s.version == version { s.blocks[k] = .memory(old, s.nextVersion()) }
        }
    }

    /// Lets go of every lease this file holds (its changes are committed or dropped).
    func releaseLeases(context: MountContext) {
        context.leases.release(state.withLock { s in
            defer { s.leased = [] }
            return s.leased
        })
    }

    /// Drops every change not committed (a file refused over the quota, at its last close).
    func discardChanges(context: MountContext) {
        releaseLeases(context: context)
        state.withLock { s in
            for case .spilled(let slot, _, _) in s.blocks.values { context.spill.free(slot) }
            s.blocks = [:]
            s.dirtySince = nil
            s.refused = nil
            s.size = (s.baseStarts.last ?? 0) + Int64(s.base.last?.length ?? 0)
            s.baseLimit = s.size
        }
        context.quota.committed(file: id)
    }

    // MARK: - Committing

    enum Work {
        case keep(Manifest.Entry, StoredChunk?)
        case store([Piece])
        /// A whole block of a hole (past the committed content, never written): the zero chunk.
        case zeros
    }

    /// The entries of a commit: kept ones as they are, the rest stored, a few blocks at a time.
    static func store(_ work: [Work], of file: FileNode, context: MountContext) async throws -> ([Manifest.Entry], [StoredChunk]) {
        var entries = [Manifest.Entry?](repeating: nil, count: work.count)
        var unrecorded: [StoredChunk] = []
        try await withThrowingTaskGroup(of: (Int, Manifest.Entry, StoredChunk?).self) { group in
            var running = 0
            for (k, item) in work.enumerated() {
                switch item {
                case .keep(let entry, let chunk):
                    entries[k] = entry
                    if let chunk { unrecorded.append(chunk) }
                case .zeros:
                    entries[k] = try await context.zeroBlock()
                case .store(let pieces):
                    if running >= 4, let done = try await group.next() {
                        entries[done.0] = done.1
                        if let chunk = done.2 { unrecorded.append(chunk) }
                        running -= 1
                    }
                    group.addTask {
                        let bytes = try await assemble(pieces, cache: context.cache)
                        let (entry, chunk) = try await context.store(bytes, for: file)
                        context.cache.remember(entry.id, bytes)
                        return (k, entry, chunk)
                    }
                    running += 1
                }
            }
            while let done = try await group.next() {
                entries[done.0] = done.1
                if let chunk = done.2 { unrecorded.append(chunk) }
            }
        }
        return (entries.map { $0! }, unrecorded)
    }

    /// Wakes a commit waiting for background seals.
    func sealEnded() {
        sealed.lock()
        sealed.broadcast()
        sealed.unlock()
    }

    /// Makes the file's changes durable and visible: stores every changed block (and, for content
    /// not laid out in whole blocks, the blocks around them), then the manifest, then points the
    /// file at it. Throws (leaving the changes in place) when a provider fails.
    func commit(context: MountContext, durable: Bool) throws {
        committing.lock()
        defer { committing.unlock() }
        // Background seals in flight finish first (their chunks are then part of this commit).
        sealed.lock()
        while state.withLock({ $0.inFlight > 0 }) { _ = sealed.wait(until: Date().addingTimeInterval(0.05)) }
        sealed.unlock()
        let plan: (work: [Work], version: UInt64, size: Int64, mtime: Int64, leased: Int)? = try state.withLock { s in
            // A file unlinked while open keeps its changes for its handles; they go at its last close.
            if s.unlinked { return nil }
            if let refused = s.refused { throw MountError.errno(refused) }
            guard s.dirty else { return nil }
            var work: [Work] = []
            for k in 0..<Self.blockCount(s.size) {
                let length = Self.blockLength(k, size: s.size)
                let start = Int64(k) * Int64(Self.blockSize)
                switch s.blocks[k] {
                case .stored(let entry, let unrecorded, _) where entry.length == length:
                    work.append(.keep(entry, unrecorded))
                case nil where s.aligned && k < s.base.count && s.base[k].length == length && start + Int64(length) <= s.baseLimit:
                    work.append(.keep(s.base[k], nil))
                case nil where start >= s.baseLimit && length == Self.blockSize:
                    work.append(.zeros)
                default:
                    work.append(.store(try Self.pieces(s, from: start, to: start + Int64(length), spill: context.spill)))
                }
            }
            return (work, s.version, s.size, s.mtime, s.leased.count)
        }
        guard let plan else { return }
        let work = plan.work
        let (entries, unrecorded) = try context.blocking { try await Self.store(work, of: self, context: context) }
        let manifest = Manifest(entries: entries)
        let id = self.id
        let committed = try context.blocking {
            try await context.commitContent(id, manifest: manifest, chunks: unrecorded, mtime: plan.mtime, durable: durable)
        }
        let (released, pending) = state.withLock { s -> ([ChunkID], Int64) in
            s.base = manifest.entries
            s.baseStarts = Self.starts(manifest.entries)
            s.baseLimit = plan.size
            s.aligned = true
            s.manifestID = committed
            // What was leased before the plan is in the file now, or was overwritten: it can go.
            // Unchanged since the plan, so is everything leased since (this commit's own stores,
            // and background seals of the very blocks it stored).
            let done = s.version == plan.version ? s.leased.count : min(plan.leased, s.leased.count)
            defer { s.leased.removeFirst(done) }
            if s.version == plan.version {
                s.blocks = [:]
                s.dirtySince = nil
            } else {
                // Changed while this commit ran: blocks changed since stay for the next one.
                for (k, block) in s.blocks {
                    if case .stored(let entry, _, _) = block, k < entries.count, entries[k] == entry { s.blocks[k] = nil }
                }
                s.dirtySince = .now
            }
            return (Array(s.leased.prefix(done)), s.version == plan.version ? 0 : max(0, s.size - plan.size))
        }
        context.leases.release(released)
        context.quota.committed(file: id, pending: pending)
        context.budget.update(self, context: context, keep: -1)
    }
}
