import ChunkStore
import Foundation

extension Repository {
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

    /// Mark and sweep (see `GarbageCollectionJob`).
    public func collectGarbage(grace: Double = defaultGraceSeconds, trashDays: Double? = nil,
                               recount: Bool = false) async throws -> GCReport {
        try await GarbageCollectionJob(repository: self, grace: grace, trashDays: trashDays, recount: recount).run(progress: nil)
    }
}

extension Repository.GCReport: MaintenanceReport {
    public var summary: String {
        "\(trashPurged) trash entr\(trashPurged == 1 ? "y" : "ies") dropped, "
            + "\(chunksDeleted) unreferenced chunk(s) and \(orphansDeleted) stray file(s) deleted, "
            + "\(ByteSize.format(bytesFreed)) freed"
            + (orphansWaiting > 0 ? "; \(orphansWaiting) stray file(s) wait out the grace period" : "")
            + (recounted > 0 ? "; reference counts rebuilt for \(recounted) chunk(s)" : "")
    }
    public var problems: [String] { skippedProviders.map { "skipped (listing failed): \($0)" } + failed.map { "not deleted: \($0)" } }
    public var changedCatalog: Bool { trashPurged + chunksDeleted + orphansDeleted + recounted > 0 }
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
///
/// Locking: the providers are listed first, holding no lock (a listing can take minutes, and puts go
/// on meanwhile); then the sweep runs with the repository's exclusive lock, so that no put is between
/// storing and recording a chunk, and rechecks each listed object against the catalog as it is then:
/// an object a put stored and recorded after the listing is recorded by then, and one stored after it
/// is not in the listing.
public struct GarbageCollectionJob: MaintenanceJob {
    public static let name = "gc"
    public let repository: Repository
    public var grace: Double
    public var trashDays: Double?
    public var recount: Bool

    public init(repository: Repository, grace: Double = Repository.defaultGraceSeconds, trashDays: Double? = nil, recount: Bool = false) {
        self.repository = repository
        self.grace = grace
        self.trashDays = trashDays
        self.recount = recount
    }

    /// What one provider's listing found: its chunk objects and its leftovers of interrupted uploads.
    private typealias Listing = Result<(objects: [ObjectInfo], leftovers: [String]), any Error>

    /// Which provider a listing was taken of: a provider removed (and its ID perhaps reused by one
    /// added) while the listings ran, without the lock, is not swept on the strength of it.
    private struct Listed: Equatable {
        let name: String
        let location: String
    }

    public func run(progress: ProgressHandler?) async throws -> Repository.GCReport {
        let repository = self.repository
        _ = try repository.unlocked()
        let pool = try repository.pool()
        // Snapshot chunks are in no catalog: those of every root pointer on the providers stay (a data
        // chunk can have a snapshot chunk's ID: same bytes). A root written after this read names chunks
        // that the local snapshot record, read under the lock, keeps.
        let found = try await repository.rootsOnProviders()
        var listings: [Int64: (Listed, Listing)] = [:]
        for member in pool.members where found.unreadable[member.id] == nil {
            let listed = Listed(name: member.name, location: member.backend.location)
            do {
                let objects = try await member.backend.listAll(prefix: "data/")
                let leftovers = try await (member.backend as? LeftoverListing)?.leftovers(under: "") ?? []
                listings[member.id] = (listed, .success((objects, leftovers)))
            } catch {
                listings[member.id] = (listed, .failure(error))
            }
        }
        return try await repository.whileExclusive {
            try await sweep(pool: pool, roots: found, listings: listings)
        }
    }

    private func sweep(pool: ReplicatedPool, roots found: (roots: [Repository.SnapshotRoot], unreadable: [Int64: String]),
                       listings: [Int64: (Listed, Listing)]) async throws -> Repository.GCReport {
        let (repository, catalog, grace, recount) = (self.repository, self.repository.catalog, self.grace, self.recount)
        // The providers as they are now, under the lock (a67 provider add or rm may have run meanwhile).
        _ = try repository.refreshPoolIfProvidersChanged()
        var report = Repository.GCReport()
        let now = Catalog.now()
        let retention = try trashDays ?? Double(catalog.setting(Repository.trashDaysSetting) ?? "") ?? Repository.defaultTrashDays
        report.trashPurged = try await offPool { try catalog.namespace.purgeTrash(deletedBefore: now - Int64(retention * 86_400 * 1e9)) }
        let cutoff = now - Int64(grace * 1e9)
        if recount { report.recounted = try await offPool { try catalog.chunks.recountReferences() } }
        let audit = try await offPool { try catalog.chunks.auditReferences() }
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
        let leased = try await offPool { try catalog.chunks.liveLeases() }
        let listed = Catalog.LeasedListings()
        // The chunks of the snapshots kept locally and of every root pointer found stay.
        var keep = try repository.snapshotChunkIDs()
        for root in found.roots { keep.formUnion(root.chunks.compactMap { ChunkID(hex: $0.id) }) }
        keep.formUnion(leased)

        // The chunks this sweep forgets: their copies are in the listings, but they are not strays.
        // The audit found every stored count equal to what the live objects make it, so a chunk counted
        // unreferenced is one no live object lists (and forgetUnreferenced checks the counts again).
        var forgotten: Set<ChunkID> = []
        try await catalog.chunks.forEachPage(.unreferenced(recordedBefore: cutoff)) { page in
            for chunk in page where !leased.contains(chunk.id) {
                // Forget first: from here on no put dedupes against it; then delete the copies.
                guard try await offPool({ try catalog.chunks.forgetUnreferenced(chunk.id, listings: listed) }) else { continue }
                forgotten.insert(chunk.id)
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
        }

        for member in pool.members {
            if let why = found.unreadable[member.id] {
                report.skippedProviders.append("\(member.name): \(why)")
                continue
            }
            // A provider added (or replaced) since the listings started is left for the next pass.
            guard let (listed, listing) = listings[member.id],
                  listed == Listed(name: member.name, location: member.backend.location) else { continue }
            let objects: [ObjectInfo], leftovers: [String]
            switch listing {
            case .success(let found): (objects, leftovers) = found
            case .failure(let error):
                report.skippedProviders.append("\(member.name): \(error)")
                continue
            }
            // The recheck: what the catalog records there now, with no store in flight.
            let recorded = try await offPool { try catalog.chunks.ids(on: member.id) }
            var strays: [String] = []
            var sizes: [String: Int] = [:]
            for object in objects {
                guard let id = ChunkID(objectName: object.name), !recorded.contains(id), !keep.contains(id),
                      !forgotten.contains(id) else { continue }
                strays.append(object.name)
                sizes[object.name] = object.size
            }
            // Interrupted uploads (WebDAV, SFTP) beside an object that exists go the same way (one listed
            // but finished since is gone: deleting an absent object is no error).
            strays += leftovers
            // Temporary files of interrupted puts (directory providers), once older than the grace period:
            // swept here, under the lock, as a put in flight may own a young one.
            if let sweeping = member.backend as? LeftoverSweeping,
               let swept = try? await sweeping.sweepLeftovers(olderThan: grace) {
                report.orphansDeleted += swept.count
                report.bytesFreed += swept.bytes
            }
            let expired = try await offPool { [strays] in try catalog.chunks.noteOrphans(strays, provider: member.id, now: now, cutoff: cutoff) }
            report.orphansWaiting += strays.count - expired.count
            // No record can appear between the recheck and these deletes: gc holds the repository lock
            // exclusively, and everything that stores a chunk before recording it holds it shared.
            for name in expired {
                do {
                    try await member.backend.delete(name)
                    try await offPool { try catalog.chunks.forgetOrphan(name, provider: member.id) }
                    report.orphansDeleted += 1
                    report.bytesFreed += Int64(sizes[name] ?? 0)
                } catch {
                    report.failed.append("\(member.name): \(name): \(error)")
                }
            }
        }
        await repository.saveHealthOffPool()
        return report
    }
}
