import ChunkStore
import Foundation

/// Scrub, repair, drain, rebalance and garbage collection are `MaintenanceJob`s, one type each in
/// this folder, with a `Repository` method that runs one pass for the CLI; undelete and the trash are
/// here. All of them work from the catalog's record of where every chunk is, and change that record
/// only after the providers did what it says.
extension Repository {
    // MARK: - Trash

    public func undelete(bucket: String, key: String) async throws -> Catalog.TrashEntry {
        _ = try unlocked()
        let catalog = self.catalog
        return try await offPool {
            try catalog.namespace.undelete(bucket: try catalog.namespace.bucket(bucket), segments: try Names.keySegments(key))
        }
    }

    public func trash(bucket: String?) throws -> [Catalog.TrashEntry] {
        try catalog.namespace.trash(bucket: try bucket.map { try catalog.namespace.bucket($0) })
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

    /// Reads a verified copy of `chunk` from `sources` and stores it on providers chosen as for a new
    /// write until it has `chunk.want` copies, counting those on `existing` (asked once the read is
    /// done: the read may have found some copies bad and forgotten them). Returns the providers it
    /// added, not yet recorded: the move (repair, drain, the mount's late blocks) records them.
    static func replicate(_ chunk: Catalog.ChunkPlacement, from sources: [Int64], beside existing: () async throws -> [Int64],
                          pool: ReplicatedPool, sealer: ChunkSealer) async throws -> [Int64] {
        let sealed = try await pool.fetch(chunk.id, from: sources, open: verifier(chunk, sealer))
        return try await pool.store(chunk.id, sealed: sealed, policy: ReplicaPolicy(replicas: chunk.want), existing: try await existing())
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
        try await offPool { try catalog.chunks.forgetLocation(chunk.id, provider: provider) }
        guard try await catalog.chunks.locations(chunk.id)?.contains(provider) != true else { return false }
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
    /// The duration in seconds, with its fraction.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
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
