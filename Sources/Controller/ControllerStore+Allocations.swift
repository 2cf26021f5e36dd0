import ChunkStore
import Compute
import Foundation
import GRDB

extension ControllerStore {
    /// The allocation states that hold a node's resources (`Allocation.State.holdsResources`), as SQL.
    static let holdingStates = "('pending', 'starting', 'running', 'stopping')"

    /// Records the scheduler's placements for version `version` of the decision's app: one pending
    /// allocation per placement, reserving the version's `[resources]`, in one transaction. Refused
    /// (conflict) when a node named is no longer ready, so the caller places again on fresh facts.
    public func place(_ decision: PlacementDecision, version: Int, now: Int64) throws -> [Allocation] {
        try pool.write { db in try Self.insertPlacements(db, decision, version: version, now: now) }
    }

    /// `place` inside the caller's transaction.
    static func insertPlacements(_ db: Database, _ decision: PlacementDecision, version: Int, now: Int64) throws -> [Allocation] {
        let appID = try Self.appID(db, decision.app)
        guard let manifestJSON = try String.fetchOne(db, sql: "SELECT manifest FROM controller_version WHERE app_id = ? AND number = ?",
                                                     arguments: [appID, version]) else {
            throw StoreError(.notFound, "no version \(version) of \(decision.app) (a67 app versions \(decision.app) lists them)")
        }
        let resources = try Self.decode(AppManifest.self, manifestJSON, "manifest of \(decision.app) version \(version)").resources
        return try decision.placements.map { placement in
            let node = try Self.node(db, placement.nodeID)
            guard node.state == .ready else {
                throw StoreError(.conflict, "node \(node.name) is \(node.state.rawValue) now, no longer ready: place \(decision.app) again")
            }
            let allocation = Allocation(id: Self.newID("a"), app: decision.app, version: version, nodeID: node.id, resources: resources,
                                        state: .pending, createdAt: Self.date(now))
            try db.execute(sql: """
                INSERT INTO controller_allocation(id, node_id, app_id, version, state, memory, cpu, disk, created_at, updated_at)
                VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)
                """, arguments: [allocation.id, node.id, appID, version, resources.memoryBytes, resources.cpuMillis,
                                 resources.diskBytes, now, now])
            try Self.record(db, .allocationPlaced, allocation.id,
                            "instance \(placement.instance) of \(decision.app) version \(version) placed on node \(node.name)", at: now)
            return allocation
        }
    }

    /// Applies what node `node` reports about its allocation `id`. A node reads and changes only its
    /// own allocations: another node's is refused as not found, exactly like one that does not exist,
    /// so that a node learns nothing about the others'. Refused too (conflict): changing the state of
    /// an allocation that is stopped or failed (those are final; a new instance is a new allocation),
    /// and lowering its restart count. Nothing that changes records no event.
    public func update(allocation id: String, node: String, _ change: AllocationChange, now: Int64) throws -> AllocationRecord {
        if let port = change.port, !(1...65535).contains(port) {
            throw StoreError(.invalidArgument, "allocation \(id): port \(port) is not between 1 and 65535")
        }
        return try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: Self.allocationSelect + " WHERE a.id = ? AND a.node_id = ?", arguments: [id, node]) else {
                throw StoreError(.notFound, "no allocation \(id) on node \(node)")
            }
            var record = try Self.allocation(row)
            var changes: [String] = []
            if let state = change.state, state != record.allocation.state {
                guard record.allocation.state.holdsResources else {
                    throw StoreError(.conflict, "allocation \(id) is \(record.allocation.state.rawValue), which is final: it cannot become \(state.rawValue)")
                }
                changes.append("\(record.allocation.state.rawValue) -> \(state.rawValue)")
                record.allocation.state = state
            }
            if let port = change.port, port != record.port {
                changes.append("port \(port)")
                record.port = port
            }
            if let restarts = change.restarts, restarts != record.restarts {
                guard restarts > record.restarts else {
                    throw StoreError(.conflict, "allocation \(id) was restarted \(record.restarts) times already, not \(restarts)")
                }
                changes.append("restarts \(restarts)")
                record.restarts = restarts
            }
            if let exitCode = change.exitCode, exitCode != record.exitCode {
                changes.append("exit code \(exitCode)")
                record.exitCode = exitCode
            }
            if let healthy = change.healthy, healthy != record.healthy {
                changes.append(healthy ? "healthy" : "not healthy")
                record.healthy = healthy
                record.healthySince = healthy ? now : nil
            }
            // An empty message clears the last one (the instance is fine again).
            let reported = change.message.map { $0.isEmpty ? nil : $0 }
            let newMessage = reported.map { $0 != record.message } ?? false
            if newMessage, let reported { record.message = reported }
            guard !changes.isEmpty || newMessage else { return record }
            if !changes.isEmpty { record.updatedAt = now }
            try db.execute(sql: """
                UPDATE controller_allocation SET state = ?, port = ?, restarts = ?, exit_code = ?, healthy = ?, healthy_since = ?,
                    message = ?, updated_at = ? WHERE id = ?
                """, arguments: [record.allocation.state.rawValue, record.port, record.restarts, record.exitCode, record.healthy,
                                 record.healthySince, record.message, record.updatedAt, id])
            if !changes.isEmpty {
                let why = record.message.map { ": " + $0 } ?? ""
                try Self.record(db, .allocationChanged, id, changes.joined(separator: ", ") + why, at: now)
            }
            return record
        }
    }

    /// Node `node`'s allocations, oldest first (ties by ID): what its agent should run (and has run).
    public func allocations(node: String) throws -> [AllocationRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.node_id = ? ORDER BY a.created_at, a.id", arguments: [node])
                .map(Self.allocation)
        }
    }

    /// The app's allocations on every node, oldest first (ties by ID); not found when there is no such app.
    public func allocations(app: String) throws -> [AllocationRecord] {
        try pool.read { db in
            let appID = try Self.appID(db, app)
            return try Row.fetchAll(db, sql: Self.allocationSelect + " WHERE a.app_id = ? ORDER BY a.created_at, a.id", arguments: [appID])
                .map(Self.allocation)
        }
    }

    static let allocationSelect = """
        SELECT a.*, p.name AS app FROM controller_allocation a JOIN controller_app p ON p.id = a.app_id
        """

    static func allocation(_ row: Row) throws -> AllocationRecord {
        let id: String = row["id"]
        guard let state = Allocation.State(rawValue: row["state"]) else {
            throw StoreError(.integrity, "the catalog's allocation \(id) has unknown state \(row["state"] as String)")
        }
        let allocation = Allocation(id: id, app: row["app"], version: row["version"], nodeID: row["node_id"],
                                    resources: Resources(memoryBytes: row["memory"], cpuMillis: row["cpu"], diskBytes: row["disk"]),
                                    state: state, createdAt: date(row["created_at"]))
        guard let desired = AllocationRecord.Desired(rawValue: row["desired"]) else {
            throw StoreError(.integrity, "the catalog's allocation \(id) has unknown desired state \(row["desired"] as String)")
        }
        return AllocationRecord(allocation: allocation, port: row["port"], restarts: row["restarts"], exitCode: row["exit_code"],
                                updatedAt: row["updated_at"], desired: desired, healthy: row["healthy"], healthySince: row["healthy_since"],
                                drainAt: row["drain_at"], message: row["message"])
    }
}
