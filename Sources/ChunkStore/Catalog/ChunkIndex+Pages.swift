import Foundation
import GRDB

/// The chunk index in pages, for the passes over every chunk (scrub, repair, drain, rebalance, gc):
/// keyset pagination by chunk ID (`WHERE id > last ORDER BY id LIMIT n`), so that a pass holds one
/// page in memory however many chunks the catalog has, and each page is a short read. A chunk added
/// or removed during a walk is visited or not according to where its ID sorts; the passes are written
/// for that (they recheck what they change).
extension ChunkIndex {
    /// Which chunks a walk visits.
    public enum ChunkSelection: Sendable, Equatable {
        /// Every chunk the catalog records.
        case all
        /// Chunks in use, by an object or by a deleted object in the trash.
        case inUse
        /// Chunks in use with fewer recorded replicas than they should have (capped by the number of
        /// failure groups among the active providers).
        case underReplicated
        /// Chunks with a copy on the provider.
        case on(provider: Int64)
        /// Chunks no object refers to, recorded before the time (nanoseconds since 1970).
        case unreferenced(recordedBefore: Int64)
    }

    public static let pageSize = 1000

    /// Up to `limit` chunks of `selection` whose IDs sort after `after` (from the first when nil), in
    /// ID order, with their locations. Read on the `BlockingIOPool`: a synchronous read there, not
    /// GRDB's async read (see `locations`), and never on the cooperative threads.
    public func page(_ selection: ChunkSelection, after: ChunkID?, limit: Int = pageSize) async throws -> [Catalog.ChunkPlacement] {
        let cursor = after.map { Data($0.bytes) } ?? Data()
        let (filter, having, arguments): (String, String, StatementArguments) = switch selection {
        case .all: ("", "", [cursor, limit])
        case .inUse: ("(c.refcount > 0 OR c.entry_refs > 0) AND", "", [cursor, limit])
        case .underReplicated:
            ("(c.refcount > 0 OR c.entry_refs > 0) AND", "HAVING COUNT(l.provider_id) < \(Self.reachableWant)", [cursor, limit])
        case .on(let provider):
            ("c.id IN (SELECT chunk_id FROM chunk_location WHERE provider_id = ?) AND", "", [provider, cursor, limit])
        case .unreferenced(let cutoff):
            ("c.refcount = 0 AND c.entry_refs = 0 AND c.created_at < ? AND", "", [cutoff, cursor, limit])
        }
        let sql = Self.placementSelect + "WHERE \(filter) c.id > ? GROUP BY c.id \(having) ORDER BY c.id LIMIT ?"
        return try await BlockingIOPool.shared.run {
            try self.pool.read { db in try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.placement) }
        }
    }

    /// Calls `body` with each page of `selection` in turn, in ID order.
    public func forEachPage(_ selection: ChunkSelection, pageSize: Int = ChunkIndex.pageSize, isolation: isolated (any Actor)? = #isolation,
                                 _ body: ([Catalog.ChunkPlacement]) async throws -> Void) async throws {
        var after: ChunkID?
        while true {
            let page = try await self.page(selection, after: after, limit: pageSize)
            guard let last = page.last else { return }
            try await body(page)
            guard page.count == pageSize else { return }
            after = last.id
        }
    }
}
