import ChunkStore
import Compute
import Controller
import Testing

/// Join tokens, node registration and credentials.
@Suite struct ControllerNodeTests {
    let t0 = ControllerFixture.t0

    @Test func aTokenAdmitsOneNodeAndReturnsItsCredential() throws {
        let fixture = try ControllerFixture()
        let token = try fixture.store.createJoinToken(ttl: .seconds(60), now: t0)
        #expect(token.count == 64 && Hex.decode(token) != nil)
        let joined = try fixture.store.register(token: token, name: "vm1", address: "10.0.0.5:7070", labels: ["region": "eu"],
                                                capacity: ControllerFixture.capacity, agentVersion: "0.15.0", now: t0 + 1)
        #expect(try fixture.store.nodes() == [joined.node])
        #expect(joined.node.state == .ready && joined.node.createdAt == t0 + 1 && joined.node.labels == ["region": "eu"])
        #expect(try fixture.store.authenticate(credential: joined.credential) == joined.node)
        // The token and the credential are stored only hashed.
        let stored = try fixture.catalog.database.read { db in
            try String.fetchAll(db, sql: "SELECT hex(hash) FROM controller_join_token UNION ALL SELECT hex(credential_hash) FROM controller_node")
        }
        let secret = String(joined.credential.split(separator: ".")[1])
        #expect(stored.count == 2 && !stored.contains(token.uppercased()) && !stored.contains(secret.uppercased()))
    }

    enum BadToken: CaseIterable {
        case usedTwice, expired, unknown, malformed

        var code: StoreError.Code {
            switch self {
            case .usedTwice, .expired: .conflict
            case .unknown: .notFound
            case .malformed: .invalidArgument
            }
        }

        var words: String {
            switch self {
            case .usedTwice: "already used"
            case .expired: "expired"
            case .unknown: "never issued"
            case .malformed: "not a join token"
            }
        }
    }

    /// Each refusal says which; nothing changes (no node, no event).
    @Test(arguments: BadToken.allCases)
    func badTokensAreRefusedClearly(_ bad: BadToken) throws {
        let fixture = try ControllerFixture()
        var token = try fixture.store.createJoinToken(ttl: .seconds(60), now: t0)
        var now = t0 + 1
        switch bad {
        case .usedTwice: _ = try fixture.store.register(token: token, name: "first", address: "a", labels: [:], capacity: .zero,
                                                        agentVersion: "1", now: now)
        case .expired: now = t0 + 60_000_000_000
        case .unknown: token = String(repeating: "ab", count: 32)
        case .malformed: token = "not-a-token"
        }
        let before = try fixture.store.nodes()
        let eventsBefore = try fixture.store.events()
        #expect {
            try fixture.store.register(token: token, name: "vm2", address: "a", labels: [:], capacity: .zero, agentVersion: "1", now: now)
        } throws: { error in
            (error as? StoreError)?.code == bad.code && (error as? StoreError)?.message.contains(bad.words) == true
        }
        #expect(try fixture.store.nodes() == before)
        #expect(try fixture.store.events() == eventsBefore)
    }

    @Test func aRefusedRegistrationLeavesTheTokenUsable() throws {
        let fixture = try ControllerFixture()
        _ = try fixture.join("vm1")
        let token = try fixture.store.createJoinToken(ttl: .seconds(60), now: t0)
        #expect(fixture.errorCode {
            _ = try fixture.store.register(token: token, name: "vm1", address: "a", labels: [:], capacity: .zero, agentVersion: "1", now: t0)
        } == .alreadyExists)
        #expect(fixture.errorCode {
            _ = try fixture.store.register(token: token, name: "vm 2", address: "a", labels: [:], capacity: .zero, agentVersion: "1", now: t0)
        } == .invalidArgument)
        let second = try fixture.store.register(token: token, name: "vm2", address: "a", labels: [:], capacity: .zero, agentVersion: "1", now: t0)
        #expect(second.node.name == "vm2")
    }

    @Test func credentialsAuthenticateOnlyTheirLiveNode() throws {
        let fixture = try ControllerFixture()
        let one = try fixture.join("vm1")
        let two = try fixture.join("vm2")
        let secretOfTwo = two.credential.split(separator: ".")[1]
        for wrong in ["", "x", one.node.id + "." + secretOfTwo, one.node.id + "." + String(repeating: "0", count: 64),
                      one.credential + "0", "nope." + secretOfTwo] {
            #expect(try fixture.store.authenticate(credential: wrong) == nil, "\(wrong)")
        }
        // The secret's hex digits in either case.
        let secretOfOne = one.credential.split(separator: ".")[1]
        #expect(try fixture.store.authenticate(credential: one.node.id + "." + secretOfOne.uppercased())?.id == one.node.id)
        try fixture.store.remove(node: one.node.id, now: t0 + 5)
        #expect(try fixture.store.authenticate(credential: one.credential) == nil)
        #expect(try fixture.store.nodes().map(\.name) == ["vm2"])
        #expect(try fixture.store.node(id: one.node.id).state == .removed)
        #expect(try fixture.store.nodeSummaries().map(\.name) == ["vm2"])
        #expect(try fixture.store.nodeSummaries(includingRemoved: true).map { "\($0.name) \($0.state)" } == ["vm1 removed", "vm2 ready"])
        // A removed node changes no more.
        #expect(fixture.errorCode { try fixture.store.heartbeat(node: one.node.id, usage: .zero, now: t0 + 6) } == .conflict)
        #expect(fixture.errorCode { try fixture.store.setState(node: one.node.id, .ready, reason: "r", now: t0 + 6) } == .conflict)
        #expect(fixture.errorCode { try fixture.store.remove(node: one.node.id, now: t0 + 6) } == .conflict)
        // The name is free again.
        #expect(try fixture.join("vm1").node.id != one.node.id)
    }

    @Test func heartbeatsRecordUsageAndBringADownNodeBack() throws {
        let fixture = try ControllerFixture()
        let node = try fixture.join("vm1").node
        let usage = Resources(memoryBytes: 1 << 30, cpuMillis: 300, diskBytes: 5)
        try fixture.store.setState(node: node.id, .down, reason: "missed 3 heartbeats", now: t0 + 10)
        try fixture.store.heartbeat(node: node.id, usage: usage, now: t0 + 20)
        let after = try fixture.store.node(id: node.id)
        #expect(after.used == usage && after.lastHeartbeat == t0 + 20 && after.state == .ready)
        #expect(after.schedulerNode.readiness == .ready && after.schedulerNode.used == usage)
        try fixture.store.setState(node: node.id, .draining, reason: "a67 node drain", now: t0 + 30)
        try fixture.store.heartbeat(node: node.id, usage: usage, now: t0 + 40)
        #expect(try fixture.store.node(id: node.id).schedulerNode.readiness == .notReady("draining"))
        let states = try fixture.store.events().filter { $0.kind == .nodeState }.map(\.message)
        #expect(states == ["node vm1: ready -> down: missed 3 heartbeats", "node vm1: down -> ready: its heartbeat came back",
                           "node vm1: ready -> draining: a67 node drain"])
        #expect(fixture.errorCode { try fixture.store.heartbeat(node: "n-none", usage: usage, now: t0) } == .notFound)
    }
}
