import ChunkStore
import Foundation

extension Repository {
    public struct RepairReport: Sendable {
        public var chunksRepaired = 0
        public var replicasAdded = 0
        public var bytesCopied: Int64 = 0
        /// Chunks still short of replicas afterwards, with why.
        public var failed: [String] = []
        /// Chunks no provider holds a good copy of.
        public var lost: [String] = []
        /// Providers that did not answer the probe: their copies were not counted.
        public var providersDown: [String] = []
        public var seconds = 0.0
    }

    /// Brings every chunk in use back to the replicas it should have (see `RepairJob`).
    public func repair(parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> RepairReport {
        try await RepairJob(repository: self, parallel: parallel).run(progress: progress)
    }
}

extension Repository.RepairReport: MaintenanceReport {
    public var summary: String {
        "repaired \(chunksRepaired) chunk(s): \(replicasAdded) replica(s), \(ByteSize.format(bytesCopied)) copied in "
            + String(format: "%.1f s", seconds)
    }
    public var problems: [String] {
        providersDown.map { "not answering (its copies were not counted): \($0)" } + failed.map { "still short: \($0)" }
            + lost.map { "lost: \($0)" }
    }
    public var changedCatalog: Bool { replicasAdded > 0 }
}

/// Brings every chunk in use back to the replicas it should have on providers that answer now,
/// copying from a surviving replica (verified first) to providers chosen as for a new write.
///
/// Every provider is probed first. The copies on one that does not answer (its directory deleted,
/// its server gone) do not count: its chunks get new replicas elsewhere, and its breaker stays open
/// so nothing new goes there. Its locations stay recorded, in case it comes back (then those chunks
/// have a spare copy until a67 provider rm or rebalance); a67 provider rm forgets them.
public struct RepairJob: MaintenanceJob {
    public static let name = "repair"
    public let repository: Repository
    public var parallel: Int

    public init(repository: Repository, parallel: Int = 4) {
        self.repository = repository
        self.parallel = parallel
    }

    public func run(progress: ProgressHandler?) async throws -> Repository.RepairReport {
        let sealer = ChunkSealer(keys: try repository.unlocked())
        // Stores before it records, like a put: shared with puts, exclusive of gc.
        return try await repository.whileStoring {
            let pool = try repository.pool()
            let catalog = repository.catalog
            let started = ContinuousClock.now
            var report = Repository.RepairReport()
            let down = Set(try await repository.providersDown(pool).keys)
            report.providersDown = pool.members.filter { down.contains($0.id) }.map(\.name)
            let reachableGroups = Set(pool.members.filter { !$0.draining && !down.contains($0.id) }.map(\.group)).count
            try await catalog.chunks.forEachPage(down.isEmpty ? .underReplicated : .inUse) { page in
                let work = down.isEmpty ? page : page.filter { chunk in chunk.providers.filter { !down.contains($0) }.count < chunk.want }
                try await forEach(work, parallel: parallel) { chunk -> Result<[Int64], StoreError> in
                    guard !chunk.providers.isEmpty else {
                        return .failure(StoreError(.integrity, "chunk \(chunk.id.short): no copy is recorded anywhere"))
                    }
                    do {
                        let added = try await Repository.replicate(chunk, from: chunk.providers, beside: {
                            // The read may have found some copies bad and forgotten them.
                            (try await catalog.chunks.locations(chunk.id) ?? []).filter { !down.contains($0) }
                        }, pool: pool, sealer: sealer)
                        try await offPool { try catalog.chunks.addLocations(chunk.id, providers: added) }
                        return .success(added)
                    } catch let error as StoreError {
                        return .failure(error)
                    } catch {
                        return .failure(StoreError(.providerFailure, "\(error)"))
                    }
                } collect: { chunk, outcome in
                    switch outcome {
                    case .success(let added):
                        if !added.isEmpty {
                            report.chunksRepaired += 1
                            report.replicasAdded += added.count
                            report.bytesCopied += Int64(chunk.sealedSize * added.count)
                            progress?(Int64(chunk.sealedSize))
                        }
                        let live = chunk.providers.filter { !down.contains($0) }.count + added.count
                        if live < min(chunk.want, reachableGroups) || live == 0 {
                            report.failed.append("chunk \(chunk.id.short): \(live) of \(chunk.want) replicas on providers that answer (not enough of them with room)")
                        }
                    case .failure(let error) where error.code == .integrity:
                        report.lost.append("chunk \(chunk.id.short): \(error.message)")
                    case .failure(let error):
                        report.failed.append("chunk \(chunk.id.short): \(error.message)")
                    }
                }
            }
            report.seconds = started.duration(to: .now).seconds
            await repository.saveHealthOffPool()
            return report
        }
    }
}
