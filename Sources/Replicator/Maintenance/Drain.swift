import ChunkStore
import Foundation

extension Repository {
    public struct MoveReport: Sendable {
        public var chunksMoved = 0
        public var bytesMoved: Int64 = 0
        public var chunksSeen = 0
        public var failed: [String] = []
        public var seconds = 0.0
    }

    /// Moves every chunk off a provider (see `DrainJob`).
    public func drain(provider name: String, parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> MoveReport {
        try await DrainJob(repository: self, provider: name, parallel: parallel).run(progress: progress)
    }

    /// Moves replicas to where placement puts them now (see `RebalanceJob`).
    public func rebalance(parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> MoveReport {
        try await RebalanceJob(repository: self, parallel: parallel).run(progress: progress)
    }

    static let drainRounds = 4

    /// `chunks` with every copy on a provider that no longer takes chunks (draining, or removed)
    /// replaced by one elsewhere. For chunks stored earlier but recorded only now, outside any drain's
    /// wait (the mount records a file's last short block when it commits the file): run it holding the
    /// storing lock (`whileStoring`), right before recording them, so that a finished drain stays
    /// finished. Chunks wholly on active providers come back as they are.
    public func movingOffDrainedProviders(_ chunks: [StoredChunk]) async throws -> [StoredChunk] {
        let pool = try pool()
        try refreshPoolIfProvidersChanged()
        let sealer = ChunkSealer(keys: try unlocked())
        var result: [StoredChunk] = []
        for chunk in chunks {
            let active = chunk.providers.filter { pool.member($0).map { !$0.draining } ?? false }
            guard active.count < chunk.providers.count else {
                result.append(chunk)
                continue
            }
            let placement = Catalog.ChunkPlacement(id: chunk.id, plainSize: chunk.plainSize, sealedSize: chunk.sealedSize,
                                                   want: chunk.want, providers: chunk.providers)
            let added = try await Self.replicate(placement, from: chunk.providers.filter { pool.member($0) != nil }, beside: { active },
                                                 pool: pool, sealer: sealer)
            for old in chunk.providers where pool.member(old)?.draining == true {
                // Unless the catalog records that copy (the same bytes stored before): drain moves it.
                if try await catalog.chunks.locations(chunk.id)?.contains(old) != true {
                    try? await pool.deleteCopy(chunk.id, on: old, size: chunk.sealedSize)
                }
            }
            result.append(StoredChunk(id: chunk.id, plainSize: chunk.plainSize, sealedSize: chunk.sealedSize,
                                      providers: active + added, want: chunk.want))
        }
        return result
    }

    /// Removes a provider from the repository. Refuses while it holds the only copy of anything in use
    /// (drain it first). Its other chunks become under-replicated until `repair` runs. Nothing is
    /// deleted on the provider itself. Holds the repository lock exclusively meanwhile, so that no store
    /// is between placing a chunk there and recording it: the refusal counts every copy.
    public func removeProvider(_ name: String) async throws -> (chunksLeft: Int, underReplicated: Int) {
        _ = try unlocked()
        return try await whileExclusive {
            guard let provider = try providers().first(where: { $0.record.name == name }) else {
                throw StoreError(.notFound, "no provider named \(name): a67 provider ls lists them")
            }
            let held = provider.record.chunkCount
            let catalog = self.catalog
            try await offPool { try catalog.providers.remove(provider.record.id, name: name) }
            // Its row ID may be handed out again: what the snapshot record says it holds must go with it.
            try await updateSnapshotState { state in
                for key in state.holders.keys { state.holders[key]?.removeAll { $0 == provider.record.id } }
                state.roots[String(provider.record.id)] = nil
            }
            try reloadProviders()
            return (held, try await offPool { try catalog.chunks.underReplicated().count })
        }
    }
}

extension Repository.MoveReport: MaintenanceReport {
    public var summary: String {
        "moved \(chunksMoved) of \(chunksSeen) chunk(s), \(ByteSize.format(bytesMoved)) in " + String(format: "%.1f s", seconds)
    }
    public var problems: [String] { failed.map { "not moved: \($0)" } }
    public var changedCatalog: Bool { chunksMoved > 0 }
}

/// Moves every chunk off a provider: each gets its replicas elsewhere first, then the copy on the
/// drained provider is deleted. The provider takes no new chunks from the moment drain starts, in
/// every process: the mark raises the catalog's providers version, which each placement reads
/// first. A store that chose the provider before the mark holds the repository lock shared until it
/// recorded the chunk, so drain waits for those (taking the lock exclusively for an instant) before
/// it lists what to move, and lists again after moving until nothing is left: when it reports no
/// failure, the catalog places nothing there.
public struct DrainJob: MaintenanceJob {
    public static let name = "drain"
    public let repository: Repository
    /// The provider's name.
    public let provider: String
    public var parallel: Int

    public init(repository: Repository, provider: String, parallel: Int = 4) {
        self.repository = repository
        self.provider = provider
        self.parallel = parallel
    }

    public func run(progress: ProgressHandler?) async throws -> Repository.MoveReport {
        let (repository, name) = (self.repository, self.provider)
        let sealer = ChunkSealer(keys: try repository.unlocked())
        guard let provider = try repository.providers().first(where: { $0.record.name == name }) else {
            throw StoreError(.notFound, "no provider named \(name): a67 provider ls lists them")
        }
        let id = provider.record.id
        let catalog = repository.catalog
        try await offPool { try catalog.providers.setState(id, .draining) }
        try repository.reloadProviders()
        try await repository.waitForStoresInFlight()
        return try await repository.whileStoring {
            let pool = try repository.pool()
            let started = ContinuousClock.now
            var report = Repository.MoveReport()
            // Chunks recorded there after the first listing (a mount's file committed meanwhile) are moved
            // in further rounds; a few rounds settle it, as nothing new is placed there.
            for _ in 0..<Repository.drainRounds {
                guard report.failed.isEmpty else { break }
                var seen = 0
                try await catalog.chunks.forEachPage(.on(provider: id)) { chunks in
                    seen += chunks.count
                    try await forEach(chunks, parallel: parallel) { chunk -> String? in
                        let open = Repository.verifier(chunk, sealer)
                        do {
                            // Only copies read back and verified, each from its own provider, count as surviving.
                            let others = try await Repository.verifiedCopies(chunk, on: chunk.providers.filter { $0 != id }, pool: pool, open: open)
                            if others.count < min(chunk.want, pool.replicaCount(for: chunk.want)) {
                                let added = try await Repository.replicate(chunk, from: [id] + others, beside: { others }, pool: pool, sealer: sealer)
                                try await offPool { try catalog.chunks.addLocations(chunk.id, providers: added) }
                                if others.isEmpty && added.isEmpty { return "chunk \(chunk.id.short): no other provider could take it" }
                            }
                            guard try await Repository.forgetThenDelete(chunk, on: id, pool: pool, catalog: catalog) else {
                                return "chunk \(chunk.id.short): \(name) still holds its only copy"
                            }
                            return nil
                        } catch {
                            return "chunk \(chunk.id.short): \(error)"
                        }
                    } collect: { chunk, failure in
                        report.chunksSeen += 1
                        if let failure {
                            report.failed.append(failure)
                        } else {
                            report.chunksMoved += 1
                            report.bytesMoved += Int64(chunk.sealedSize)
                            progress?(Int64(chunk.sealedSize))
                        }
                    }
                }
                guard seen > 0 else { break }
            }
            if report.failed.isEmpty, case let left = try await offPool({ try catalog.chunks.ids(on: id).count }), left > 0 {
                report.failed.append("\(left) chunk(s) were recorded on \(name) while it drained; run drain again")
            }
            if report.failed.isEmpty { try await repository.dropSnapshotCopies(on: id, pool: pool) }
            report.seconds = started.duration(to: .now).seconds
            await repository.saveHealthOffPool()
            return report
        }
    }
}

/// Moves replicas to where placement puts them now (after providers were added or quotas changed):
/// a chunk whose best-ranked providers changed gets a copy on each new one, then loses the copies
/// it no longer needs. With equal weights, adding one provider to N moves about 1/(N+1) of replicas.
public struct RebalanceJob: MaintenanceJob {
    public static let name = "rebalance"
    public let repository: Repository
    public var parallel: Int

    public init(repository: Repository, parallel: Int = 4) {
        self.repository = repository
        self.parallel = parallel
    }

    public func run(progress: ProgressHandler?) async throws -> Repository.MoveReport {
        let repository = self.repository
        let sealer = ChunkSealer(keys: try repository.unlocked())
        return try await repository.whileStoring {
            let pool = try repository.pool()
            let catalog = repository.catalog
            let started = ContinuousClock.now
            var report = Repository.MoveReport()
            try await catalog.chunks.forEachPage(.all) { page in
                try await forEach(page, parallel: parallel) { chunk -> (moved: Int, failure: String?) in
                    let ideal = pool.idealPlacement(chunk.id, replicas: chunk.want)
                    let missing = ideal.filter { !chunk.providers.contains($0) }
                    guard !missing.isEmpty, !chunk.providers.isEmpty else { return (0, nil) }
                    do {
                        let sealed = try await pool.fetch(chunk.id, from: chunk.providers, open: Repository.verifier(chunk, sealer))
                        let added = await pool.store(chunk.id, sealed: sealed, on: missing)
                        try await offPool { try catalog.chunks.addLocations(chunk.id, providers: added) }
                        // The copies already on ideal providers must be there and good too, each read back.
                        let kept = ideal.filter { chunk.providers.contains($0) }
                        let good = try await Repository.verifiedCopies(chunk, on: kept, pool: pool, open: Repository.verifier(chunk, sealer))
                        guard added.count == missing.count, good.count == kept.count else {
                            // Keep every old copy: the chunk now has more, never fewer, and the groups stay apart.
                            return (added.count, "chunk \(chunk.id.short): \(missing.count - added.count + kept.count - good.count) of its ideal copies could not be written or read back; its old copies stay")
                        }
                        // The ideal set is complete and verified (distinct groups): the copies outside it go.
                        for provider in chunk.providers where !ideal.contains(provider) {
                            _ = try await Repository.forgetThenDelete(chunk, on: provider, pool: pool, catalog: catalog)
                        }
                        return (added.count, nil)
                    } catch {
                        return (0, "chunk \(chunk.id.short): \(error)")
                    }
                } collect: { chunk, outcome in
                    report.chunksSeen += 1
                    if outcome.moved > 0 {
                        report.chunksMoved += 1
                        report.bytesMoved += Int64(chunk.sealedSize * outcome.moved)
                        progress?(Int64(chunk.sealedSize))
                    }
                    if let failure = outcome.failure { report.failed.append(failure) }
                }
            }
            report.seconds = started.duration(to: .now).seconds
            await repository.saveHealthOffPool()
            return report
        }
    }
}
