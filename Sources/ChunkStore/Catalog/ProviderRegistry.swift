import Foundation
import GRDB

/// The provider registry: each provider's kind, settings, sealed credentials, failure group, state
/// and last recorded health, and a version every change raises. One of the catalog's aggregates (see
/// Catalog): `catalog.providers`.
public struct ProviderRegistry: Sendable {
    let pool: DatabasePool
}

extension ProviderRegistry {
    public func add(name: String, kind: String, config: String, quota: Int64?, sealedSecret: [UInt8]? = nil,
                    group: String? = nil) throws -> ProviderRecord {
        try pool.write { db in
            let now = Catalog.now()
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM provider WHERE name = ?", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "a provider named \(name) already exists; pick another name")
            }
            try db.execute(sql: """
                INSERT INTO provider(name, kind, config, quota, created_at, sealed_secret, fault_group) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [name, kind, config, quota, now, sealedSecret.map { Data($0) }, group])
            let id = db.lastInsertedRowID
            try Self.providersChanged(db)
            return ProviderRecord(id: id, name: name, kind: kind, config: config, quota: quota, usedBytes: 0,
                                  chunkCount: 0, sealedSecret: sealedSecret, group: group ?? name, createdAt: now)
        }
    }

    /// Every provider, with the bytes and chunks the catalog places on it.
    public func all() throws -> [ProviderRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT p.id, p.name, p.kind, p.config, p.quota, p.created_at, p.sealed_secret, p.fault_group, p.state,
                       p.health_breaker, p.health_latency, p.health_error_rate, p.health_requests, p.health_checked_at,
                       p.health_problem,
                       COALESCE(SUM(c.sealed_size), 0) AS used, COUNT(c.id) AS chunks
                FROM provider p
                LEFT JOIN chunk_location l ON l.provider_id = p.id
                LEFT JOIN chunk c ON c.id = l.chunk_id
                GROUP BY p.id ORDER BY p.name
                """).map { row in
                var health: ProviderHealthRecord?
                if let breaker = try ProviderRegistry.decode(BreakerState.self, row["health_breaker"] as String?, "health_breaker") {
                    health = ProviderHealthRecord(breaker: breaker, latencySeconds: row["health_latency"],
                                                  errorRate: row["health_error_rate"] ?? 0, requests: row["health_requests"] ?? 0,
                                                  checkedAt: row["health_checked_at"] ?? 0, problem: row["health_problem"])
                }
                return ProviderRecord(id: row["id"], name: row["name"], kind: row["kind"], config: row["config"], quota: row["quota"],
                                      usedBytes: row["used"], chunkCount: row["chunks"],
                                      sealedSecret: (row["sealed_secret"] as Data?).map { [UInt8]($0) },
                                      group: row["fault_group"] ?? row["name"],
                                      state: try ProviderRegistry.decode(ProviderState.self, row["state"] as String?, "state") ?? .active,
                                      health: health, createdAt: row["created_at"])
            }
        }
    }

    /// A counter every change to the providers (added, draining, removed) raises in the same
    /// transaction. Long-running processes read it before placing a chunk (one indexed read) and
    /// reload their providers when it moved.
    public func version() throws -> Int64 {
        try pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", arguments: [Self.providersVersionKey]) ?? 0
        }
    }

    static let providersVersionKey = "providers_version"

    static func providersChanged(_ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO meta(key, value) VALUES (?, '1')
            ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
            """, arguments: [providersVersionKey])
    }

    public func setState(_ provider: Int64, _ state: ProviderState) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE provider SET state = ? WHERE id = ?", arguments: [state.rawValue, provider])
            try Self.providersChanged(db)
        }
    }

    public func setHealth(_ provider: Int64, _ health: ProviderHealthRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE provider SET health_breaker = ?, health_latency = ?, health_error_rate = ?, health_requests = ?,
                       health_checked_at = ?, health_problem = ? WHERE id = ?
                """, arguments: [health.breaker.rawValue, health.latencySeconds, health.errorRate, health.requests, health.checkedAt,
                                 health.problem, provider])
        }
    }

    /// Removes a provider from the catalog with every location it held. Refuses while it holds the
    /// only copy of a chunk in use, or leased by a running process (a mount's block not yet committed).
    public func remove(_ provider: Int64, name: String) throws {
        try pool.write { db in
            try ChunkIndex.dropDeadLeases(db)
            let sole = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM chunk_location l JOIN chunk c ON c.id = l.chunk_id
                WHERE l.provider_id = ?
                  AND (c.refcount > 0 OR c.entry_refs > 0 OR EXISTS (SELECT 1 FROM chunk_lease k WHERE k.chunk_id = c.id))
                  AND (SELECT COUNT(*) FROM chunk_location o WHERE o.chunk_id = l.chunk_id) = 1
                """, arguments: [provider]) ?? 0
            guard sole == 0 else {
                throw StoreError(.conflict, "provider \(name) holds the only copy of \(sole) chunk(s) in use: run a67 provider drain \(name) first, which moves them to the other providers")
            }
            // Blocks a running process (a mount) stored there and will record when it commits a file.
            let pending = try Int.fetchOne(db, sql: """
                SELECT COUNT(DISTINCT c.chunk_id) FROM chunk_lease_copy c
                WHERE c.provider_id = ?1
                  AND NOT EXISTS (SELECT 1 FROM chunk_location l WHERE l.chunk_id = c.chunk_id AND l.provider_id != ?1)
                  AND NOT EXISTS (SELECT 1 FROM chunk_lease_copy o WHERE o.chunk_id = c.chunk_id AND o.provider_id != ?1)
                """, arguments: [provider]) ?? 0
            guard pending == 0 else {
                throw StoreError(.conflict, "provider \(name) holds the only copy of \(pending) block(s) that a running a67 mount stored and has "
                    + "not recorded yet (files still open or not yet flushed): close those files or unmount, or run a67 provider drain \(name) "
                    + "first, then run provider rm again")
            }
            try db.execute(sql: "DELETE FROM chunk_lease_copy WHERE provider_id = ?", arguments: [provider])
            try db.execute(sql: "DELETE FROM chunk_location WHERE provider_id = ?", arguments: [provider])
            try db.execute(sql: "DELETE FROM orphan WHERE provider_id = ?", arguments: [provider])
            try db.execute(sql: "DELETE FROM provider WHERE id = ?", arguments: [provider])
            try Self.providersChanged(db)
        }
    }

    /// A state column's value as its enum; a value no enum case has is damage, not a default.
    static func decode<State: RawRepresentable>(_ type: State.Type, _ value: String?, _ column: String) throws -> State?
    where State.RawValue == String {
        guard let value else { return nil }
        guard let state = State(rawValue: value) else {
            throw StoreError(.integrity, "the catalog holds provider.\(column) \"\(value)\", which no version of a67 writes: the catalog is damaged")
        }
        return state
    }
}
