import ChunkStore
import Foundation

/// Scrub, repair, drain, rebalance, garbage collection and undelete: each a CLI command now, and a
/// background loop of the server later. All of them work from the catalog's record of where every
/// chunk is, and change that record only after the providers did what it says.
extension Repository {
    // MARK: - Scrub

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

    /// Reads every recorded replica and verifies it (decrypts, checks the ID and length). A missing or
    /// damaged replica is forgotten (never the last recorded copy), so that repair stores it again. Every
    /// provider is probed first: the replicas of one that does not answer are reported as not checked,
    /// never judged missing on the strength of an unmounted disk or a server that is down. At most
    /// `rate` bytes per second when given.
    public func scrub(rate: Double? = nil, parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> ScrubReport {
        let sealer = ChunkSealer(keys: try unlocked())
        let pool = try pool()
        let catalog = self.catalog
        let down = try await providersDown(pool)
        // The chunks of the latest catalog snapshot are checked too, on every provider that holds them.
        let state = loadSnapshotState()
        var damagedSnapshotCopies: [(String, Int64)] = []
        // Per chunk in use: its recorded replicas, and those found missing or damaged.
        var replicas: [ChunkID: (recorded: Int, bad: Int)] = [:]
        var work = try catalog.allChunks().flatMap { chunk in chunk.providers.map { (chunk, $0) } }
        for chunk in state.snapshots.last?.chunks ?? [] {
            guard let id = ChunkID(hex: chunk.id) else { continue }
            let placement = Catalog.ChunkPlacement(id: id, plainSize: chunk.length, sealedSize: 0, want: 0, providers: [])
            work += (state.holders[chunk.id] ?? []).map { (placement, $0) }
        }
        let started = ContinuousClock.now
        var report = ScrubReport()
        let pacer = Pacer(rate: rate)
        enum Verdict: Sendable {
            case good(bytes: Int)
            case missing
            case corrupt(bytes: Int)
            case unreadable(String)
        }
        try await forEach(work, parallel: parallel) { item -> Verdict? in
            let (chunk, provider) = item
            guard let member = pool.member(provider) else { return nil }
            if let error = down[provider] { return .unreadable("the provider does not answer: \(error)") }
            let sealed: [UInt8]
            do {
                sealed = try await member.backend.get(chunk.id.objectName, range: nil)
            } catch BackendError.notFound {
                if chunk.want > 0 { try catalog.forgetLocation(chunk.id, provider: provider) }
                return .missing
            } catch {
                return .unreadable("\(error)")
            }
            await pacer.pace(sealed.count)
            do {
                _ = try sealer.open(sealed, id: chunk.id, expectedLength: chunk.plainSize)
                return .good(bytes: sealed.count)
            } catch {
                if chunk.want > 0 { try catalog.forgetLocation(chunk.id, provider: provider) }
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
        let lost = Set(replicas.filter { $0.value.bad >= $0.value.recorded }.keys)
        let audit = try catalog.auditReferences(lost: lost)
        report.damagedObjects = audit.damaged.map {
            "\($0.name): \($0.missingChunks.count) chunk(s) lost (\($0.missingChunks.prefix(3).map(\.short).joined(separator: ", ")))"
        } + audit.unreadable.map { "\($0) (its chunk list cannot be read)" }
        report.seconds = started.duration(to: .now).seconds
        if !damagedSnapshotCopies.isEmpty {
            try await updateSnapshotState { state in
                for (id, provider) in damagedSnapshotCopies { state.holders[id]?.removeAll { $0 == provider } }
            }
        }
        saveHealth()
        return report
    }

    // MARK: - Repair

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

    /// Brings every chunk in use back to the replicas it should have on providers that answer now,
    /// copying from a surviving replica (verified first) to providers chosen as for a new write.
    ///
    /// Every provider is probed first. The copies on one that does not answer (its directory deleted,
    /// its server gone) do not count: its chunks get new replicas elsewhere, and its breaker stays open
    /// so nothing new goes there. Its locations stay recorded, in case it comes back (then those chunks
    /// have a spare copy until a67 provider rm or rebalance); a67 provider rm forgets them.
    public func repair(parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> RepairReport {
        let sealer = ChunkSealer(keys: try unlocked())
        // Stores before it records, like a put: shared with puts, exclusive of gc.
        return try await whileStoring {
            let pool = try pool()
            let catalog = self.catalog
            let started = ContinuousClock.now
            var report = RepairReport()
            let down = Set(try await providersDown(pool).keys)
            report.providersDown = pool.members.filter { down.contains($0.id) }.map(\.name)
            let reachableGroups = Set(pool.members.filter { !$0.draining && !down.contains($0.id) }.map(\.group)).count
            let work = try down.isEmpty ? catalog.underReplicated() : catalog.chunksInUse().filter { chunk in
                chunk.providers.filter { !down.contains($0) }.count < chunk.want
            }
            try await forEach(work, parallel: parallel) { chunk -> Result<[Int64], StoreError> in
                guard !chunk.providers.isEmpty else {
                    return .failure(StoreError(.integrity, "chunk \(chunk.id.short): no copy is recorded anywhere"))
                }
                do {
                    let sealed = try await pool.fetch(chunk.id, from: chunk.providers, open: Self.verifier(chunk, sealer))
                    // The read may have found some copies bad and forgotten them.
                    let current = (try await catalog.chunkLocations(chunk.id) ?? []).filter { !down.contains($0) }
                    let added = try await pool.store(chunk.id, sealed: sealed, policy: ReplicaPolicy(replicas: chunk.want), existing: current)
                    try catalog.addLocations(chunk.id, providers: added)
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
            report.seconds = started.duration(to: .now).seconds
            saveHealth()
            return report
        }
    }

    // MARK: - Drain, remove, rebalance

    public struct MoveReport: Sendable {
        public var chunksMoved = 0
        public var bytesMoved: Int64 = 0
        public var chunksSeen = 0
        public var failed: [String] = []
        public var seconds = 0.0
    }

    /// Moves every chunk off a provider: each gets its replicas elsewhere first, then the copy on the
    /// drained provider is deleted. The provider takes no new chunks from the moment drain starts, in
    /// every process: the mark raises the catalog's providers version, which each placement reads
    /// first. A store that chose the provider before the mark holds the repository lock shared until it
    /// recorded the chunk, so drain waits for those (taking the lock exclusively for an instant) before
    /// it lists what to move, and lists again after moving until nothing is left: when it reports no
    /// failure, the catalog places nothing there.
    public func drain(provider name: String, parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> MoveReport {
        let sealer = ChunkSealer(keys: try unlocked())
        guard let provider = try providers().first(where: { $0.record.name == name }) else {
            throw StoreError(.notFound, "no provider named \(name): a67 provider ls lists them")
        }
        let id = provider.record.id
        try catalog.setProviderState(id, "draining")
        try reloadProviders()
        try await waitForStoresInFlight()
        return try await whileStoring {
            let pool = try pool()
            let catalog = self.catalog
            let started = ContinuousClock.now
            var report = MoveReport()
            // Chunks recorded there after the first listing (a mount's file committed meanwhile) are moved
            // in further rounds; a few rounds settle it, as nothing new is placed there.
            for _ in 0..<Self.drainRounds {
                let chunks = try catalog.chunks(on: id)
                guard !chunks.isEmpty, report.failed.isEmpty else { break }
                try await forEach(chunks, parallel: parallel) { chunk -> String? in
                    let open = Self.verifier(chunk, sealer)
                    do {
                        // Only copies read back and verified, each from its own provider, count as surviving.
                        let others = try await Self.verifiedCopies(chunk, on: chunk.providers.filter { $0 != id }, pool: pool, open: open)
                        if others.count < min(chunk.want, pool.replicaCount(for: chunk.want)) {
                            let sealed = try await pool.fetch(chunk.id, from: [id] + others, open: open)
                            let added = try await pool.store(chunk.id, sealed: sealed, policy: ReplicaPolicy(replicas: chunk.want), existing: others)
                            try catalog.addLocations(chunk.id, providers: added)
                            if others.isEmpty && added.isEmpty { return "chunk \(chunk.id.short): no other provider could take it" }
                        }
                        guard try await Self.forgetThenDelete(chunk, on: id, pool: pool, catalog: catalog) else {
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
            if report.failed.isEmpty, case let left = try catalog.chunks(on: id).count, left > 0 {
                report.failed.append("\(left) chunk(s) were recorded on \(name) while it drained; run drain again")
            }
            if report.failed.isEmpty { try await dropSnapshotCopies(on: id, pool: pool) }
            report.seconds = started.duration(to: .now).seconds
            saveHealth()
            return report
        }
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
            let sealed = try await pool.fetch(chunk.id, from: chunk.providers.filter { pool.member($0) != nil },
                                              open: Self.verifier(placement, sealer))
            let added = try await pool.store(chunk.id, sealed: sealed, policy: ReplicaPolicy(replicas: chunk.want), existing: active)
            for old in chunk.providers where pool.member(old)?.draining == true {
                // Unless the catalog records that copy (the same bytes stored before): drain moves it.
                if try await catalog.chunkLocations(chunk.id)?.contains(old) != true {
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
            try catalog.removeProvider(provider.record.id, name: name)
            // Its row ID may be handed out again: what the snapshot record says it holds must go with it.
            try await updateSnapshotState { state in
                for key in state.holders.keys { state.holders[key]?.removeAll { $0 == provider.record.id } }
                state.roots[String(provider.record.id)] = nil
            }
            try reloadProviders()
            return (held, try catalog.underReplicated().count)
        }
    }

    /// Moves replicas to where placement puts them now (after providers were added or quotas changed):
    /// a chunk whose best-ranked providers changed gets a copy on each new one, then loses the copies
    /// it no longer needs. With equal weights, adding one provider to N moves about 1/(N+1) of replicas.
    public func rebalance(parallel: Int = 4, progress: ProgressHandler? = nil) async throws -> MoveReport {
        let sealer = ChunkSealer(keys: try unlocked())
        return try await whileStoring {
            let pool = try pool()
            let catalog = self.catalog
            let started = ContinuousClock.now
            var report = MoveReport()
            try await forEach(try catalog.allChunks(), parallel: parallel) { chunk -> (moved: Int, failure: String?) in
                let ideal = pool.idealPlacement(chunk.id, replicas: chunk.want)
                let missing = ideal.filter { !chunk.providers.contains($0) }
                guard !missing.isEmpty, !chunk.providers.isEmpty else { return (0, nil) }
                do {
                    let sealed = try await pool.fetch(chunk.id, from: chunk.providers, open: Self.verifier(chunk, sealer))
                    let added = await pool.store(chunk.id, sealed: sealed, on: missing)
                    try catalog.addLocations(chunk.id, providers: added)
                    // The copies already on ideal providers must be there and good too, each read back.
                    let kept = ideal.filter { chunk.providers.contains($0) }
                    let good = try await Self.verifiedCopies(chunk, on: kept, pool: pool, open: Self.verifier(chunk, sealer))
                    guard added.count == missing.count, good.count == kept.count else {
                        // Keep every old copy: the chunk now has more, never fewer, and the groups stay apart.
                        return (added.count, "chunk \(chunk.id.short): \(missing.count - added.count + kept.count - good.count) of its ideal copies could not be written or read back; its old copies stay")
                    }
                    // The ideal set is complete and verified (distinct groups): the copies outside it go.
                    for provider in chunk.providers where !ideal.contains(provider) {
                        _ = try await Self.forgetThenDelete(chunk, on: provider, pool: pool, catalog: catalog)
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
            report.seconds = started.duration(to: .now).seconds
            saveHealth()
            return report
        }
    }

    // MARK: - Garbage collection

    public static let defaultGraceSeconds: Double = 3600
    public static let defaultTrashDays: Double = 30
    public static let trashDaysSetting = "trash.retention_days"

    public struct GCReport: Sendable {
        public var trashPurged = 0
        public var chunksDeleted = 0
        public var bytesFreed: Int64 = 0
        public var orphansDeleted = 0
        public var orphansWaiting = 0
        /// Chunks whose reference counts `recount` rebuilt from the live objects.
        public var recounted = 0
        /// Providers whose listing failed: nothing was deleted there on the strength of it.
        public var skippedProviders: [String] = []
        public var failed: [String] = []
    }

    /// Mark and sweep. Drops trash entries older than the retention period; marks every chunk the live
    /// objects, the trash and unfinished uploads refer to, reading their manifests; deletes chunks no
    /// live manifest refers to that were recorded more than `grace` seconds ago and that no running
    /// process leases (a mount's stored, uncommitted blocks); and deletes objects found on a provider
    /// that the catalog does not place there once they have been seen for `grace` seconds (left by an
    /// interrupted put). A provider whose listing fails is skipped entirely.
    ///
    /// The stored reference counts must agree with the mark: when they do not (a damaged catalog),
    /// nothing is deleted and the error says so; `recount` first rebuilds them from the live objects.
    /// Runs with the repository's exclusive lock, so no put is between storing and recording a chunk.
    public func collectGarbage(grace: Double = defaultGraceSeconds, trashDays: Double? = nil,
                               recount: Bool = false) async throws -> GCReport {
        _ = try unlocked()
        return try await whileExclusive {
            let pool = try pool()
            var report = GCReport()
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000_000)
            let retention = try trashDays ?? Double(catalog.setting(Self.trashDaysSetting) ?? "") ?? Self.defaultTrashDays
            report.trashPurged = try catalog.purgeTrash(deletedBefore: now - Int64(retention * 86_400 * 1e9))
            let cutoff = now - Int64(grace * 1e9)
            if recount { report.recounted = try catalog.recountReferences() }
            let audit = try catalog.auditReferences()
            guard audit.unreadable.isEmpty else {
                throw StoreError(.integrity, "gc deleted nothing: the chunk lists of \(audit.unreadable.count) object(s) cannot be read "
                    + "(\(audit.unreadable.prefix(3).joined(separator: "; "))), so what they refer to is unknown. The catalog is damaged: "
                    + "run a67 scrub to list them, then a67 rm them (or restore the catalog from a snapshot with a67 recover)")
            }
            guard audit.mismatched.isEmpty else {
                let inUse = audit.mismatched.filter { $0.stored == (0, 0) }.count
                throw StoreError(.integrity, "gc deleted nothing: the catalog's reference counts disagree with its objects for "
                    + "\(audit.mismatched.count) chunk(s)\(inUse > 0 ? ", \(inUse) of them in use but counted as unreferenced" : ""). "
                    + "The catalog may be damaged: run a67 scrub to see which objects are affected, then a67 gc --recount "
                    + "to rebuild the counts from the objects")
            }
            // Chunks a running process stored and has not committed yet (a mount's blocks) stay.
            let leased = try catalog.liveLeases()
            let listings = Catalog.LeasedListings()
            // Snapshot chunks are in no catalog: those of the snapshots kept locally and of every root
            // pointer on the providers stay (a data chunk can have a snapshot chunk's ID: same bytes).
            var keep = try snapshotChunkIDs()
            let found = try await rootsOnProviders()
            for root in found.roots { keep.formUnion(root.chunks.compactMap { ChunkID(hex: $0.id) }) }
            keep.formUnion(leased)

            for chunk in try catalog.unreferencedChunks(recordedBefore: cutoff)
            where !leased.contains(chunk.id) && !audit.live.contains(chunk.id) {
                // Forget first: from here on no put dedupes against it; then delete the copies.
                guard try catalog.forgetUnreferencedChunk(chunk.id, listings: listings) else { continue }
                for provider in chunk.providers where !keep.contains(chunk.id) {
                    do {
                        try await pool.deleteCopy(chunk.id, on: provider, size: chunk.sealedSize)
                    } catch {
                        report.failed.append("\(pool.member(provider)?.name ?? "?"): chunk \(chunk.id.short): \(error)")
                    }
                }
                report.chunksDeleted += 1
                report.bytesFreed += Int64(chunk.sealedSize * chunk.providers.count)
            }

            for member in pool.members {
                if let why = found.unreadable[member.id] {
                    report.skippedProviders.append("\(member.name): \(why)")
                    continue
                }
                let listing: [ObjectInfo]
                var leftovers: [String] = []
                do {
                    listing = try await member.backend.listAll(prefix: "data/")
                    if let hidden = member.backend as? LeftoverListing { leftovers = try await hidden.leftovers(under: "") }
                } catch {
                    report.skippedProviders.append("\(member.name): \(error)")
                    continue
                }
                let recorded = try catalog.chunkIDs(on: member.id)
                var strays: [String] = []
                var sizes: [String: Int] = [:]
                for object in listing {
                    guard let id = ChunkID(objectName: object.name), !recorded.contains(id), !keep.contains(id) else { continue }
                    strays.append(object.name)
                    sizes[object.name] = object.size
                }
                // Interrupted uploads (WebDAV, SFTP) beside an object that exists go the same way.
                strays += leftovers
                // Temporary files of interrupted puts (directory providers), once older than the grace period.
                if let sweeping = member.backend as? LeftoverSweeping,
                   let swept = try? await sweeping.sweepLeftovers(olderThan: grace) {
                    report.orphansDeleted += swept.count
                    report.bytesFreed += swept.bytes
                }
                let expired = try catalog.noteOrphans(strays, provider: member.id, now: now, cutoff: cutoff)
                report.orphansWaiting += strays.count - expired.count
                // No record can appear between the listing and these deletes: gc holds the repository lock
                // exclusively, and everything that stores a chunk before recording it holds it shared.
                for name in expired {
                    do {
                        try await member.backend.delete(name)
                        try catalog.forgetOrphan(name, provider: member.id)
                        report.orphansDeleted += 1
                        report.bytesFreed += Int64(sizes[name] ?? 0)
                    } catch {
                        report.failed.append("\(member.name): \(name): \(error)")
                    }
                }
            }
            saveHealth()
            return report
        }
    }

    // MARK: - Trash

    public func undelete(bucket: String, key: String) throws -> Catalog.TrashEntry {
        _ = try unlocked()
        return try catalog.undelete(bucket: try catalog.bucket(bucket), segments: try Names.keySegments(key))
    }

    public func trash(bucket: String?) throws -> [Catalog.TrashEntry] {
        try catalog.trash(bucket: try bucket.map { try catalog.bucket($0) })
    }
}

extension Repository {
    /// Checks a sealed copy of `chunk` as a get would and hands back the sealed bytes, to store again.
    static func verifier(_ chunk: Catalog.ChunkPlacement, _ sealer: ChunkSealer) -> @Sendable ([UInt8]) throws -> [UInt8] {
        { sealed in
            _ = try sealer.open(sealed, id: chunk.id, expectedLength: chunk.plainSize)
            return sealed
        }
    }

    /// The providers among `candidates` whose copy of `chunk` reads back and verifies, each read from
    /// that provider alone.
    static func verifiedCopies(_ chunk: Catalog.ChunkPlacement, on candidates: [Int64], pool: ReplicatedPool,
                               open: @escaping @Sendable ([UInt8]) throws -> [UInt8]) async throws -> [Int64] {
        var good: [Int64] = []
        for provider in candidates where (try? await pool.fetch(chunk.id, from: [provider], open: open)) != nil {
            good.append(provider)
        }
        return good
    }

    /// Stops recording `chunk` on `provider`, then deletes that copy, unless the catalog still records
    /// it there (it was the last recorded copy, or became so meanwhile). Returns whether it was deleted.
    static func forgetThenDelete(_ chunk: Catalog.ChunkPlacement, on provider: Int64, pool: ReplicatedPool,
                                 catalog: Catalog) async throws -> Bool {
        try catalog.forgetLocation(chunk.id, provider: provider)
        guard try await catalog.chunkLocations(chunk.id)?.contains(provider) != true else { return false }
        try await pool.deleteCopy(chunk.id, on: provider, size: chunk.sealedSize)
        return true
    }

    /// Probes every provider; those that did not answer, with why.
    func providersDown(_ pool: ReplicatedPool) async throws -> [Int64: String] {
        var down: [Int64: String] = [:]
        for result in try await probeProviders() {
            if let error = result.error, let member = pool.members.first(where: { $0.name == result.provider }) {
                down[member.id] = error
            }
        }
        return down
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs `body` on `items` with at most `parallel` at once, handing each result to `collect` in
/// completion order on the caller's task.
func forEach<Item: Sendable, Output: Sendable>(
    _ items: [Item], parallel: Int, _ body: @escaping @Sendable (Item) async throws -> Output,
    collect: (Item, Output) throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: (Item, Output).self) { group in
        var next = 0
        func launch() {
            let item = items[next]
            next += 1
            group.addTask { (item, try await body(item)) }
        }
        while next < items.count && next < max(1, parallel) { launch() }
        while let (item, output) = try await group.next() {
            try collect(item, output)
            if next < items.count { launch() }
        }
    }
}

/// Keeps a loop to at most `rate` bytes per second.
actor Pacer {
    let rate: Double?
    private var bytes = 0.0
    private let started = ContinuousClock.now

    init(rate: Double?) { self.rate = rate }

    func pace(_ count: Int) async {
        guard let rate, rate > 0 else { return }
        bytes += Double(count)
        let due = bytes / rate - started.duration(to: .now).seconds
        if due > 0 { try? await Task.sleep(for: .seconds(due)) }
    }
}
