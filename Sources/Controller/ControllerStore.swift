import ChunkStore
import Foundation
import GRDB

/// The controller's state in the catalog (`ControllerSchema`): join tokens, nodes and their
/// credentials, apps and their versions, allocations, and the event log.
///
/// Every operation that changes something is one transaction that also appends its event
/// (`ControllerEvent`), so the log holds every change and nothing that was refused. Refusals change
/// nothing. Times are values passed in (`now`, nanoseconds since 1970, `Catalog.now()` in production),
/// so tests control them.
///
/// The calls are synchronous GRDB reads and writes on the caller's thread: an async caller (the
/// controller's HTTP handlers) must run them through ChunkStore's `offPool`, never on Swift's
/// cooperative threads.
public struct ControllerStore: Sendable {
    let pool: DatabasePool

    /// The controller's tables in `catalog`, which must have been opened with `ControllerSchema.schema`
    /// among its modules.
    public init(catalog: Catalog) {
        pool = catalog.database
    }

    /// Up to `limit` events after event `since` (an event's `id`; 0 for the first), oldest first. A
    /// follower passes the last ID it saw.
    public func events(since: Int64 = 0, limit: Int = 100) throws -> [ControllerEvent] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, at, kind, subject, message FROM controller_event WHERE id > ? ORDER BY id LIMIT ?",
                             arguments: [since, limit]).map { row in
                guard let kind = ControllerEvent.Kind(rawValue: row["kind"]) else {
                    throw StoreError(.integrity, "the catalog's controller event \(row["id"] as Int64) has unknown kind \(row["kind"] as String)")
                }
                return ControllerEvent(id: row["id"], at: row["at"], kind: kind, subject: row["subject"], message: row["message"])
            }
        }
    }

    /// Appends an event inside the caller's transaction.
    static func record(_ db: Database, _ kind: ControllerEvent.Kind, _ subject: String, _ message: String, at now: Int64) throws {
        try db.execute(sql: "INSERT INTO controller_event(at, kind, subject, message) VALUES (?, ?, ?, ?)",
                       arguments: [now, kind.rawValue, subject, message])
    }

    /// A Codable value as the JSON a column holds (keys sorted, so equal values are equal text).
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A JSON column decoded; a column that does not decode is damage, named by `what`.
    static func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError(.integrity, "the catalog's \(what) is not valid JSON for \(type): \(error)")
        }
    }

    /// Nanoseconds since 1970 as a Date (for Compute's values, which hold dates).
    static func date(_ nanoseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1_000_000_000) }

    /// A duration in nanoseconds (saturating: a TTL of years does not overflow).
    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }

    /// A new random identifier with a one-letter prefix ("n…" for nodes, "a…" for allocations).
    static func newID(_ prefix: String) -> String { prefix + Hex.encode(Crypto.randomBytes(8)) }
}
