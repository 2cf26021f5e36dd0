import BackendTesting
import ChunkStore
import Foundation
import Testing

/// Conditional writes and deletes at the catalog: the condition is checked in the transaction that
/// makes the change, so racing creates of one key have exactly one winner and a refused write
/// changes nothing but the records of the chunks it stored.
@Suite struct ObjectConditionTests {
    /// Stores `data` as chunks (nothing visible yet), as an upload does before its commit.
    func stored(_ h: Harness, _ data: [UInt8]) async throws -> (ObjectWriter, ObjectWriter.StoredChunks) {
        let writer = ObjectWriter(sealer: h.sealer, pool: try h.pool(), catalog: h.catalog, window: 4)
        var left = data[...]
        let chunks = try await writer.storeChunks(reading: { count in
            defer { left = left.dropFirst(count) }
            return Array(left.prefix(count))
        }, policy: ReplicaPolicy(replicas: h.bucket.replicas, minimum: h.bucket.minReplicas))
        return (writer, chunks)
    }

    func commit(_ h: Harness, _ writer: ObjectWriter, _ chunks: ObjectWriter.StoredChunks, key: String,
                etag: String? = nil, _ condition: ObjectCondition?) async throws {
        _ = try await writer.commit(chunks, attributes: etag.map { [Manifest.etagAttribute: $0] } ?? [:], bucket: h.bucket, key: key,
                                    owner: (0, 0, 0o644), condition: condition)
    }

    @Test func racingCreatesOfOneKeyHaveOneWinner() async throws {
        let h = try Harness()
        let bodies = (0..<8).map { seededNoise(100_000 + $0, seed: UInt64($0) + 1) }
        var prepared: [(ObjectWriter, ObjectWriter.StoredChunks)] = []
        for body in bodies { prepared.append(try await stored(h, body)) }
        let create = ObjectCondition(ifNoneMatchAny: true)
        let outcomes = try await withThrowingTaskGroup(of: (Int, ObjectConditionFailed?).self) { group in
            for (index, (writer, chunks)) in prepared.enumerated() {
                group.addTask {
                    do {
                        try await commit(h, writer, chunks, key: "lock/race", create)
                        return (index, nil)
                    } catch let failure as ObjectConditionFailed {
                        return (index, failure)
                    }
                }
            }
            var all: [(Int, ObjectConditionFailed?)] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        let winners = outcomes.filter { $0.1 == nil }.map(\.0)
        #expect(winners.count == 1)
        #expect(outcomes.compactMap(\.1).allSatisfy { $0 == ObjectConditionFailed(header: "If-None-Match", noObject: false) })
        let winner = try #require(winners.first)
        #expect(try await h.get("lock/race") == bodies[winner])
        // The losers' chunks are recorded but referenced by nothing: gc takes them.
        #expect(try h.catalog.statistics().unreferencedChunks >= bodies.count - 1)
        #expect(try h.keys() == ["lock/race"])
    }

    @Test func ifMatchComparesTheETagOfEachKindOfObject() async throws {
        let h = try Harness()
        // An object of `a67 put` has no stored ETag: it is a form of its manifest's ID.
        let first = try await h.put([1, 2, 3], key: "k")
        let cliETag = Manifest.etag(attributes: [:], id: first.manifestID)
        #expect(cliETag.hasSuffix("-1") && cliETag.count == 34)
        let (writer, chunks) = try await stored(h, [4, 5, 6])
        let wrong = ObjectCondition(ifMatch: "\"0123456789abcdef0123456789abcdef\"")
        await #expect(throws: ObjectConditionFailed(header: "If-Match", noObject: false)) {
            try await commit(h, writer, chunks, key: "k", etag: "abc", wrong)
        }
        #expect(try await h.get("k") == [1, 2, 3])
        await #expect(throws: ObjectConditionFailed(header: "If-None-Match", noObject: false)) {
            try await commit(h, writer, chunks, key: "k", etag: "abc", ObjectCondition(ifNoneMatchAny: true))
        }
        await #expect(throws: ObjectConditionFailed(header: "If-Match", noObject: true)) {
            try await commit(h, writer, chunks, key: "absent", etag: "abc", ObjectCondition(ifMatch: "*"))
        }
        // A match, quoted or weak, replaces it; the new object's ETag is the stored one.
        try await commit(h, writer, chunks, key: "k", etag: "abc", ObjectCondition(ifMatch: "W/\"\(cliETag)\""))
        #expect(try await h.get("k") == [4, 5, 6])

        // Deletes: a wrong ETag removes nothing; an absent key fails If-Match; the right ETag removes it.
        let segments = ["k"]
        #expect(throws: ObjectConditionFailed(header: "If-Match", noObject: false)) {
            try h.catalog.namespace.removeObject(bucket: h.bucket, segments: segments, condition: ObjectCondition(ifMatch: cliETag))
        }
        #expect(try h.keys() == ["k"])
        #expect(throws: ObjectConditionFailed(header: "If-Match", noObject: true)) {
            try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["absent"], condition: ObjectCondition(ifMatch: "*"))
        }
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: segments, condition: ObjectCondition(ifMatch: "\"abc\", \"def\""))
        #expect(try h.keys().isEmpty)
    }
}
