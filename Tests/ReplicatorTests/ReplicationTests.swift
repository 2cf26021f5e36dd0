import BackendTesting
import ChunkStore
import Foundation
import Replicator
import Testing

/// The replicated pool's choices, with fault-injecting in-memory providers.
struct ReplicationTests {
    static let chunk = ChunkSealer.maxChunkSize

    @Test func twoReplicasNeverShareAFailureGroup() async throws {
        // p0 and p1 are one cloud account: every chunk must have one copy there and one on p2.
        let h = try Harness(providers: 3, replicas: 2, groups: ["acct", "acct", "disk"])
        _ = try await h.put(seededNoise(8 * Self.chunk, seed: 5), key: "k")
        var perChunk: [ChunkID: Set<Int64>] = [:]
        for (chunk, provider) in try h.catalog.chunks.allLocations() { perChunk[chunk, default: []].insert(provider) }
        #expect(perChunk.count == 9)
        let p2 = h.records[2].id
        #expect(perChunk.values.allSatisfy { $0.count == 2 && $0.contains(p2) }, "one replica in each group")
    }

    @Test func oneGroupMeansOneReplica() async throws {
        let h = try Harness(providers: 2, replicas: 2, groups: ["same", "same"])
        let result = try await h.put(sampleBytes(100), key: "k")
        #expect(try h.pool().replicaCount(for: 2) == 1)
        #expect(result.underReplicated == 0, "R is capped by the number of failure groups")
    }

    @Test func aDeadProviderIsReplacedByTheNextInTheRanking() async throws {
        let h = try Harness(providers: 3, replicas: 2)
        h.providers[0].inject(.fail(.transient("connection reset")), on: .put)
        let data = seededNoise(6 * Self.chunk, seed: 9)
        let result = try await h.put(data, key: "k")
        #expect(result.underReplicated == 0, "p1 and p2 take every replica")
        let locations = try h.catalog.chunks.allLocations()
        #expect(locations.allSatisfy { $0.provider != h.records[0].id })
        #expect(Set(locations.map(\.chunk)).count == 7 && locations.count == 14)
        #expect(try await h.get("k") == data)
    }

    @Test func theBreakerOpensAfterRepeatedFailuresAndStopsTraffic() async throws {
        let h = try Harness(providers: 3, replicas: 2, master: SecretKey(bytes: [UInt8](repeating: 4, count: 32)))
        h.providers[0].inject(.fail(.transient("connection refused")), on: .put)
        // Open for longer than the put can take on a loaded machine: no half-open probe counts here.
        let pool = try h.pool(breaker: BreakerPolicy(openSeconds: 3600))
        let writer = ObjectWriter(sealer: h.sealer, pool: pool, catalog: h.catalog, window: 1)
        _ = try await writer.write(from: BytesSource(seededNoise(20 * Self.chunk, seed: 3)), bucket: h.bucket, key: "k",
                                   owner: (0, 0, 0o644))
        let member = pool.members[0]
        #expect(member.health.state == .open)
        #expect(h.providers[0].calls(.put) == BreakerPolicy().failureThreshold,
                "after the threshold, no more requests reach the dead provider (\(h.providers[0].calls(.put)))")
        #expect(member.health.errorRate == 1)
    }

    @Test func halfOpenLetsOneProbeThroughAndClosesOnSuccess() {
        let health = ProviderHealth(policy: BreakerPolicy(failureThreshold: 2, openSeconds: 0))
        health.failed()
        #expect(health.state == .closed)
        health.failed()
        // openSeconds 0: open at once turns half-open.
        #expect(health.state == .halfOpen)
        #expect(health.admit(), "the probe goes through")
        #expect(!health.admit(), "only one probe at a time")
        health.failed()
        #expect(health.admit(), "a failed probe reopens; with no wait the next probe is admitted")
        health.succeeded()
        #expect(health.state == .closed)
        #expect(health.admit() && health.admit())

        let slow = ProviderHealth(policy: BreakerPolicy(failureThreshold: 1, openSeconds: 3600))
        slow.failed()
        #expect(slow.state == .open)
        #expect(!slow.admit() && !slow.isAvailable)
    }

    @Test func aBadReplicaIsForgottenAndRepairableWhileTheReadSucceeds() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        let data = sampleBytes(2 * Self.chunk)
        _ = try await h.put(data, key: "k")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["k"])
        let bad = object.manifest.entries[0].id
        // Damage the copy that is read first (the chunk's first in rendezvous order).
        let first = RendezvousPlacement().rank(bad, among: h.records.map { .init(id: $0.id, key: $0.name) })[0].id
        let index = h.records.firstIndex { $0.id == first }!
        h.memories[index].tamper(bad.objectName) { b in var b = b; b[b.count - 1] ^= 1; return b }
        #expect(try await h.get("k") == data)
        let locations = try await h.catalog.chunks.locations(bad) ?? []
        #expect(locations == [h.records[1 - index].id], "the bad copy is no longer counted")
        #expect(try h.catalog.chunks.underReplicated().map(\.id) == [bad])
    }

    @Test func aSlowReplicaGetsAHedgedRequestToTheOther() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        let data = sampleBytes(100)
        _ = try await h.put(data, key: "k")
        let pool = try h.pool()
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["k"])
        let id = object.manifest.entries[0].id
        // Teach the pool both providers' usual latency: fast.
        for _ in 0..<20 {
            _ = try await pool.fetch(id, from: h.records.map(\.id)) { try h.sealer.open($0, id: id) }
        }
        // The provider read first now holds the read in a wait that cancellation cannot cut short (as a
        // blocking read would) until the test opens the gate: the fetch must return through the hedge
        // while it is held. (A fetch that waited for the held read would only return once the safety
        // timer below opened the gate, after five minutes.)
        let before = h.providers.map { $0.calls(.get) }
        _ = try await pool.fetch(id, from: h.records.map(\.id)) { try h.sealer.open($0, id: id) }
        let first = h.providers.indices.first { h.providers[$0].calls(.get) > before[$0] }!
        #expect(pool.hedgedReads == 0, "a fast read is not hedged")
        let gate = Gate()
        h.providers[first].inject(.hold(gate), on: .get, times: 1)
        let safety = Task {
            try? await Task.sleep(for: .seconds(300))
            gate.open()
        }
        let plaintext = try await pool.fetch(id, from: h.records.map(\.id)) { try h.sealer.open($0, id: id) }
        #expect(!gate.isOpen, "the fetch returned while the first read was still held")
        #expect(plaintext == data)
        #expect(pool.hedgedReads == 1)
        safety.cancel()
        gate.open()
    }

    @Test func aMissingCopyAndAnUnreachableOneIsNotAnIntegrityFailure() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        _ = try await h.put(sampleBytes(100), key: "k")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["k"])
        let id = object.manifest.entries[0].id
        try await h.memories[0].delete(id.objectName)
        h.providers[1].inject(.fail(.transient("connection refused")), on: .get)
        // The copy on p1 may well be fine: a provider failure, not "damaged".
        let error = await expectStoreError(.providerFailure) { _ = try await h.get("k") }
        #expect(error?.message.contains("connection refused") == true)
        // Both judged bad: integrity.
        h.providers[1].clearFaults()
        h.memories[1].tamper(id.objectName) { b in var b = b; b[b.count / 2] ^= 1; return b }
        try h.catalog.chunks.addLocations(id, providers: h.records.map(\.id))
        await expectStoreError(.integrity) { _ = try await h.get("k") }
    }

    @Test func weightsFollowDeclaredQuotasAndDoNotDriftAsProvidersFill() throws {
        let h = try Harness(providers: 3, replicas: 1, quotas: [10 << 30, 5 << 30, nil])
        let pool = try h.pool()
        let before = (0..<200).map { i in pool.idealPlacement(ChunkID(bytes: Crypto.sha256(Array("c\(i)".utf8))), replicas: 1) }
        // Filling p0 (a put's reservation) does not move any chunk's ideal place.
        let filled = ReplicatedPool(members: pool.members, used: [h.records[0].id: 9 << 30])
        let after = (0..<200).map { i in filled.idealPlacement(ChunkID(bytes: Crypto.sha256(Array("c\(i)".utf8))), replicas: 1) }
        #expect(before == after)
        // p1 declares half of p0's quota: it is first for clearly fewer chunks.
        let firsts = before.map { $0[0] }
        let p0 = firsts.filter { $0 == h.records[0].id }.count, p1 = firsts.filter { $0 == h.records[1].id }.count
        #expect(p1 < p0, "p0 \(p0), p1 \(p1)")
    }
}
