import ChunkStore
import Foundation

extension Repository {
    public struct ScrubReport: Sendable {
        public var replicasChecked = 0
        public var bytesChecked: Int64 = 0
        /// "provider: chunk: what was wrong", for every replica that was missing or did not verify.
        public var missing: [String] = []
        public var corrupt: [String] = []
        /// Replicas that could not be read for another reason (the provider was unreachable): not judged.
        public var unreadable: [String] = []
        /// Objects that cannot be read whole: a chunk they list is not in the catalog, is recorded on no
        /// provider, or had every replica found missing or damaged. "BUCKET/KEY: N chunk(s) lost".
        public var damagedObjects: [String] = []
        public var seconds = 0.0
    }

    /// Reads every recorded replica and verifies it (see `ScrubJob`).
    public func scrub(rate: Double? = nil, parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> ScrubReport {
        try await ScrubJob(repository: self, rate: rate, parallel: parallel).run(progress: progress)
    }
}

extension Repository.ScrubReport: MaintenanceReport {
    public var summary: String {
        "scrubbed \(replicasChecked) replica(s), \(ByteSize.format(bytesChecked)) in " + String(format: "%.1f s (", seconds)
            + ByteSize.rate(bytesChecked, seconds) + ")"
    }
    public var problems: [String] {
        missing.map { "missing: \($0)" } + corrupt.map { "damaged: \($0)" } + unreadable.map { "not checked: \($0)" }
            + damagedObjects.map { "object lost: \($0)" }
    }
    /// Scrub forgets the copies it found missing or damaged.
    public var changedCatalog: Bool { !missing.isEmpty || !corrupt.isEmpty }
}

/// Reads every recorded replica and verifies it (decrypts, checks the ID and length). A missing or
/// damaged replica is forgotten (never the last recorded copy), so that repair stores it again. Every
/// provider is probed first: the replicas of one that does not answer are reported as not checked,
/// never judged missing on the strength of an unmounted disk or a server that is down. At most
/// `rate` bytes per second when given. The chunks of the latest catalog snapshot are checked too.
public struct ScrubJob: MaintenanceJob {
    public static let name = "scrub"
    public let repository: Repository
    public var rate: Double?
    public var parallel: Int

    public init(repository: Repository, rate: Double? = nil, parallel: Int = 4) {
        self.repository = repository
        self.rate = rate
        self.parallel = parallel
    }

    private enum Verdict: Sendable {
        case good(bytes: Int)
        case missing
        case corrupt(bytes: Int)
        case unreadable(String)
    }

    public func run(progress: ProgressHandler?) async throws -> Repository.ScrubReport {
        let sealer = ChunkSealer(keys: try repository.unlocked())
        let pool = try repository.pool()
        let catalog = repository.catalog
        let down = try await repository.providersDown(pool)
        let started = ContinuousClock.now
        var report = Repository.ScrubReport()
        let pacer = Pacer(rate: rate)
        var damagedSnapshotCopies: [(String, Int64)] = []
        // Chunks in use that had every recorded replica found missing or damaged.
        var lost: Set<ChunkID> = []

        /// Checks `work` (a chunk and one provider recorded as holding it, each).
        func check(_ work: [(Catalog.ChunkPlacement, Int64)]) async throws {
            // Per chunk in use: its recorded replicas, and those found missing or damaged. A page holds
            // every replica of its chunks, so this is settled page by page.
            var replicas: [ChunkID: (recorded: Int, bad: Int)] = [:]
            try await forEach(work, parallel: parallel) { item -> Verdict? in
                let (chunk, provider) = item
                guard let member = pool.member(provider) else { return nil }
                if let error = down[provider] { return .unreadable("the provider does not answer: \(error)") }
                let sealed: [UInt8]
                do {
                    sealed = try await member.backend.get(chunk.id.objectName, range: nil)
                } catch BackendError.notFound {
                    if chunk.want > 0 { try await offPool { try catalog.chunks.forgetLocation(chunk.id, provider: provider) } }
                    return .missing
                } catch {
                    return .unreadable("\(error)")
                }
                await pacer.pace(sealed.count)
                do {
                    _ = try sealer.open(sealed, id: chunk.id, expectedLength: chunk.plainSize)
                    return .good(bytes: sealed.count)
                } catch {
                    if chunk.want > 0 { try await offPool { try catalog.chunks.forgetLocation(chunk.id, provider: provider) } }
                    return .corrupt(bytes: sealed.count)
                }
            } collect: { item, verdict in
                guard let verdict else { return }
                let what = "\(pool.member(item.1)?.name ?? "?"): chunk \(item.0.id.short)"
                var bytes = 0
                report.replicasChecked += 1
                if item.0.want > 0 {
                    var count = replicas[item.0.id] ?? (item.0.providers.count, 0)
                    switch verdict {
                    case .missing, .corrupt: count.bad += 1
                    default: break
                    }
                    replicas[item.0.id] = count
                }
                switch verdict {
                case .good(let size):
                    bytes = size
                case .missing:
                    report.missing.append(what)
                case .corrupt(let size):
                    bytes = size
                    report.corrupt.append(what)
                case .unreadable(let why):
                    report.unreadable.append(what + ": " + why)
                }
                switch verdict {
                case .missing, .corrupt:
                    // A snapshot chunk (wanted by no bucket): the next snapshot stores it there again.
                    if item.0.want == 0 { damagedSnapshotCopies.append((item.0.id.hex, item.1)) }
                default:
                    break
                }
                report.bytesChecked += Int64(bytes)
                progress?(Int64(bytes))
            }
            lost.formUnion(replicas.filter { $0.value.bad >= $0.value.recorded }.keys)
        }

        try await catalog.chunks.forEachPage(.all) { page in
            try await check(page.flatMap { chunk in chunk.providers.map { (chunk, $0) } })
        }
        // The chunks of the latest catalog snapshot, on every provider that holds them.
        let state = repository.loadSnapshotState()
        try await check((state.snapshots.last?.chunks ?? []).flatMap { chunk -> [(Catalog.ChunkPlacement, Int64)] in
            guard let id = ChunkID(hex: chunk.id) else { return [] }
            let placement = Catalog.ChunkPlacement(id: id, plainSize: chunk.length, sealedSize: 0, want: 0, providers: [])
            return (state.holders[chunk.id] ?? []).map { (placement, $0) }
        })
        let audit = try await offPool { [lost] in try catalog.chunks.auditReferences(lost: lost) }
        report.damagedObjects = audit.damaged.map {
            "\($0.name): \($0.missingChunks.count) chunk(s) lost (\($0.missingChunks.prefix(3).map(\.short).joined(separator: ", ")))"
        } + audit.unreadable.map { "\($0) (its chunk list cannot be read)" }
        report.seconds = started.duration(to: .now).seconds
        if !damagedSnapshotCopies.isEmpty {
            try await repository.updateSnapshotState { state in
                for (id, provider) in damagedSnapshotCopies { state.holders[id]?.removeAll { $0 == provider } }
            }
        }
        await repository.saveHealthOffPool()
        return report
    }
}
