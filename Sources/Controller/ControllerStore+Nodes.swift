import ChunkStore
import Compute
import Foundation
import GRDB

extension ControllerStore {
    // MARK: - Join tokens

    /// A new join token, valid for `ttl` from `now` and for one node: 64 hex digits (256 random bits)
    /// returned this once; the catalog keeps only its SHA-256. `a67 node token create` prints it and
    /// `a67 agent join` presents it to `register`.
    public func createJoinToken(ttl: Duration, now: Int64) throws -> String {
        let expiresAt = Self.nanoseconds(ttl).addingReportingOverflow(now)
        guard ttl > .zero, !expiresAt.overflow else {
            throw StoreError(.invalidArgument, "a join token's lifetime must be positive and below 292 years (was \(ttl))")
        }
        let token = ControllerSecret.make()
        guard let hash = ControllerSecret.hash(token[...]) else { throw StoreError(.internal, "a new join token is not 64 hex digits") }
        try pool.write { db in
            try db.execute(sql: "INSERT INTO controller_join_token(hash, created_at, expires_at) VALUES (?, ?, ?)",
                           arguments: [hash, now, expiresAt.partialValue])
            try Self.record(db, .tokenCreated, Hex.encode([UInt8](hash.prefix(6))),
                            "join token created, valid until \(Self.date(expiresAt.partialValue))", at: now)
        }
        return token
    }

    /// Consumes join token `token` for node `nodeID` inside the caller's transaction, or refuses it:
    /// not a token's shape (invalid argument), unknown (not found), expired or already used (conflict).
    static func redeemJoinToken(_ db: Database, _ token: String, node nodeID: String, now: Int64) throws {
        let remedy = "make a new one with a67 node token create on the controller"
        guard let hash = ControllerSecret.hash(token[...]) else {
            throw StoreError(.invalidArgument, "that is not a join token (one is 64 hex digits, as a67 node token create prints it): \(remedy)")
        }
        guard let row = try Row.fetchOne(db, sql: "SELECT expires_at, used_at FROM controller_join_token WHERE hash = ?", arguments: [hash]) else {
            throw StoreError(.notFound, "this controller never issued that join token (or it was copied wrong): \(remedy)")
        }
        if let usedAt: Int64 = row["used_at"] {
            throw StoreError(.conflict, "that join token was already used, at \(date(usedAt)); a token admits one node: \(remedy)")
        }
        let expiresAt: Int64 = row["expires_at"]
        guard now < expiresAt else {
            throw StoreError(.conflict, "that join token expired at \(date(expiresAt)): \(remedy)")
        }
        try db.execute(sql: "UPDATE controller_join_token SET used_at = ?, node_id = ? WHERE hash = ?", arguments: [now, nodeID, hash])
    }

    // MARK: - Nodes

    /// Admits a node with join token `token` and records it, ready, in one transaction: the token is
    /// consumed only when the node is recorded, so a refusal (bad token, name taken) changes nothing
    /// and the token can be used again. `name`: 1 to 32 letters, digits, '-' or '_'. Returns the node and its credential, which the agent keeps and
    /// presents from then on (`authenticate`); the catalog keeps only its hash.
    public func register(token: String, name: String, address: String, labels: [String: String], capacity: Resources,
                         agentVersion: String, now: Int64) throws -> NodeRegistration {
        try Names.validateProvider(name, what: "node name")
        let secret = ControllerSecret.make()
        guard let credentialHash = ControllerSecret.hash(secret[...]) else { throw StoreError(.internal, "a new credential is not 64 hex digits") }
        let node = Node(id: Self.newID("n"), name: name, address: address, labels: labels, capacity: capacity, used: .zero,
                        state: .ready, lastHeartbeat: nil, agentVersion: agentVersion, createdAt: now)
        try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM controller_node WHERE name = ? AND state != 'removed'", arguments: [name]) == true {
                throw StoreError(.alreadyExists, "a node named \(name) is already in the cluster: join under another --name, "
                    + "or remove the old one first (a67 node rm \(name))")
            }
            try db.execute(sql: """
                INSERT INTO controller_node(id, name, address, labels, capacity_memory, capacity_cpu, capacity_disk, state,
                                            agent_version, credential_hash, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?)
                """, arguments: [node.id, name, address, try Self.json(labels), capacity.memoryBytes, capacity.cpuMillis,
                                 capacity.diskBytes, agentVersion, credentialHash, now])
            try Self.redeemJoinToken(db, token, node: node.id, now: now)
            try Self.record(db, .nodeJoined, name, "node \(name) (\(node.id)) joined from \(address), agent \(agentVersion)", at: now)
        }
        return NodeRegistration(node: node, credential: node.id + "." + secret)
    }

    /// The node whose credential this is, or nil: malformed, unknown, wrong, or of a removed node. The
    /// stored hash is compared in constant time.
    public func authenticate(credential: String) throws -> Node? {
        let parts = credential.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let hash = ControllerSecret.hash(parts[1]) else { return nil }
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM controller_node WHERE id = ? AND state != 'removed'",
                                             arguments: [String(parts[0])]),
                  Crypto.constantTimeEqual(row["credential_hash"] as Data, hash) else { return nil }
            return try Self.node(row)
        }
    }

    /// Records a node's heartbeat: what it has in use now, and what it has in all when `capacity` is
    /// given (a VM resized, a data folder's disk grown). A node that was down is ready again (an
    /// event says so); a draining one stays draining; a removed one is refused (conflict).
    public func heartbeat(node id: String, usage: Resources, capacity: Resources? = nil, now: Int64) throws {
        try pool.write { db in
            let node = try Self.liveNode(db, id)
            let total = capacity ?? node.capacity
            guard total.memoryBytes >= 0, total.cpuMillis >= 0, total.diskBytes >= 0 else {
                throw StoreError(.invalidArgument, "node \(node.name) reports a negative capacity")
            }
            try db.execute(sql: """
                UPDATE controller_node SET used_memory = ?, used_cpu = ?, used_disk = ?, capacity_memory = ?, capacity_cpu = ?,
                    capacity_disk = ?, last_heartbeat = ? WHERE id = ?
                """, arguments: [usage.memoryBytes, usage.cpuMillis, usage.diskBytes, total.memoryBytes, total.cpuMillis, total.diskBytes,
                                 now, id])
            if node.state == .down { try Self.changeState(db, node, to: .ready, because: "its heartbeat came back", now: now) }
        }
    }

    /// Sets a node's state (ready, draining or down; removing is `remove`). Setting the state it has
    /// already records nothing.
    public func setState(node id: String, _ state: NodeState, reason: String, now: Int64) throws {
        guard state != .removed else { throw StoreError(.invalidArgument, "a node leaves the cluster with remove, not by setting its state") }
        try pool.write { db in try Self.changeState(db, try Self.liveNode(db, id), to: state, because: reason, now: now) }
    }

    /// Removes a node from the cluster: its credential stops working at once, its name is free again,
    /// and its row stays (state removed) so that its allocations and events still name it. The
    /// instances it still held are marked failed ("node removed"), for the controller to place again.
    /// Removing it again is refused (conflict).
    public func remove(node id: String, now: Int64) throws {
        try pool.write { db in
            let node = try Self.liveNode(db, id)
            let live = try String.fetchAll(db, sql: """
                SELECT id FROM controller_allocation WHERE node_id = ? AND state IN \(Self.holdingStates)
                """, arguments: [id])
            try db.execute(sql: "UPDATE controller_node SET state = 'removed', credential_hash = NULL WHERE id = ?", arguments: [id])
            for allocation in live {
                try db.execute(sql: "UPDATE controller_allocation SET state = 'failed', updated_at = ? WHERE id = ?", arguments: [now, allocation])
                try Self.record(db, .allocationChanged, allocation, "failed: node \(node.name) was removed", at: now)
            }
            try Self.record(db, .nodeRemoved, node.name, "node \(node.name) (\(id)) removed; its credential is revoked", at: now)
        }
    }

    /// The nodes in the cluster (not removed), by name.
    public func nodes() throws -> [Node] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM controller_node WHERE state != 'removed' ORDER BY name").map(Self.node)
        }
    }

    /// The node with ID `id` (removed ones too, for the history).
    public func node(id: String) throws -> Node {
        try pool.read { db in try Self.node(db, id) }
    }

    static func node(_ db: Database, _ id: String) throws -> Node {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM controller_node WHERE id = ?", arguments: [id]) else {
            throw StoreError(.notFound, "no node \(id) in this cluster (a67 node ls lists them)")
        }
        return try node(row)
    }

    /// The node with ID `id`, refused (conflict) when it was removed: for the changes only a node in
    /// the cluster may have.
    static func liveNode(_ db: Database, _ id: String) throws -> Node {
        let node = try node(db, id)
        guard node.state != .removed else { throw StoreError(.conflict, "node \(node.name) (\(node.id)) was removed; it can only join again") }
        return node
    }

    static func changeState(_ db: Database, _ node: Node, to state: NodeState, because reason: String, now: Int64) throws {
        guard node.state != state else { return }
        try db.execute(sql: "UPDATE controller_node SET state = ? WHERE id = ?", arguments: [state.rawValue, node.id])
        try record(db, .nodeState, node.name, "node \(node.name): \(node.state.rawValue) -> \(state.rawValue): \(reason)", at: now)
    }

    static func node(_ row: Row) throws -> Node {
        let id: String = row["id"]
        guard let state = NodeState(rawValue: row["state"]) else {
            throw StoreError(.integrity, "the catalog's node \(id) has unknown state \(row["state"] as String)")
        }
        return Node(id: id, name: row["name"], address: row["address"],
                    labels: try decode([String: String].self, row["labels"], "labels of node \(id)"),
                    capacity: Resources(memoryBytes: row["capacity_memory"], cpuMillis: row["capacity_cpu"], diskBytes: row["capacity_disk"]),
                    used: Resources(memoryBytes: row["used_memory"], cpuMillis: row["used_cpu"], diskBytes: row["used_disk"]),
                    state: state, lastHeartbeat: row["last_heartbeat"], agentVersion: row["agent_version"], createdAt: row["created_at"])
    }
}
