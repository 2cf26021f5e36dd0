import BackendTesting
import ChunkStore
import Replicator
import Testing

struct ObjectStreamTests {
    static let chunk = ChunkSealer.maxChunkSize

    @Test(arguments: [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 12345])
    func roundTrip(size: Int) async throws {
        let h = try Harness()
        let data = sampleBytes(size)
        let result = try await h.put(data, key: "dir/file.bin")
        #expect(result.size == Int64(size))
        #expect(result.chunks == (size + Self.chunk - 1) / Self.chunk)
        #expect(try await h.get("dir/file.bin") == data)
    }

    @Test func rangesFetchOnlyTheChunksTheyTouch() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let size = 3 * Self.chunk + 1000
        let data = sampleBytes(size)
        _ = try await h.put(data, key: "r")
        let c = Int64(Self.chunk)
        let cases: [ClosedRange<Int64>] = [0...0, 0...9, c - 1...c, c...c, 2 * c - 5...3 * c + 5, Int64(size) - 1...Int64(size) - 1,
                                           10...Int64(size) + 100]
        for range in cases {
            let expected = Array(data[Int(range.lowerBound)...min(Int(range.upperBound), size - 1)])
            #expect(try await h.get("r", range: range) == expected, "range \(range)")
        }
        let before = h.providers[0].calls(.get)
        _ = try await h.get("r", range: c + 10...c + 20)
        #expect(h.providers[0].calls(.get) - before == 1, "a range inside one chunk must fetch one chunk")
        await expectStoreError(.invalidArgument) { _ = try await h.get("r", range: Int64(size)...Int64(size) + 1) }
    }

    @Test func equalContentIsStoredOnceAcrossKeysAndBuckets() async throws {
        let h = try Harness()
        let data = sampleBytes(2 * Self.chunk + 7)
        let first = try await h.put(data, key: "a")
        let putsAfterFirst = h.providers.map { $0.calls(.put) }.reduce(0, +)
        let second = try await h.put(data, key: "copies/b")
        #expect(first.newChunks == 3)
        #expect(second.newChunks == 0)
        #expect(second.manifestID == first.manifestID)
        #expect(h.providers.map { $0.calls(.put) }.reduce(0, +) == putsAfterFirst, "a second put of known content must not write")
        let other = try h.catalog.namespace.createBucket("other-bucket", replicas: 2)
        let third = try await ObjectWriter(sealer: h.sealer, pool: try h.pool(), catalog: h.catalog)
            .write(from: BytesSource(data), bucket: other, key: "c", owner: (0, 0, 0o644))
        #expect(third.newChunks == 0)
        let stats = try h.catalog.statistics()
        #expect(stats.logicalBytes == 3 * Int64(data.count))
        #expect(stats.uniquePlainBytes == Int64(data.count))
    }

    @Test func repeatedChunksInsideOneObjectAreStoredOnce() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let data = [UInt8](repeating: 0, count: 6 * Self.chunk)
        let result = try await h.put(data, key: "zeros")
        #expect(result.newChunks == 1)
        #expect(h.providers[0].calls(.put) == 2, "one data chunk and one manifest")
        #expect(try await h.get("zeros") == data)
    }

    @Test func onePutRequestPerChunkReplica() async throws {
        let h = try Harness(providers: 3, replicas: 2)
        _ = try await h.put(sampleBytes(4 * Self.chunk), key: "x")
        let puts = h.providers.map { $0.calls(.put) }.reduce(0, +)
        #expect(puts == (4 + 1) * 2, "4 data chunks and a manifest, twice each")
        #expect(h.providers.map { $0.calls(.head) + $0.calls(.get) + $0.calls(.list) }.reduce(0, +) == 0,
                "dedupe checks must come from the catalog, never from providers")
    }

    @Test func writerKeepsABoundedNumberOfChunksInFlight() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let gate = InFlightGauge()
        let pool = GaugedPool(inner: try h.pool(), gauge: gate)
        _ = try await ObjectWriter(sealer: h.sealer, pool: pool, catalog: h.catalog, window: 3)
            .write(from: BytesSource(sampleBytes(20 * Self.chunk)), bucket: h.bucket, key: "big", owner: (0, 0, 0o644))
        #expect(gate.peak <= 3)
        #expect(gate.peak >= 2, "chunks must be stored in parallel")
    }

    @Test func overwriteReplacesAndKeepsReferenceCountsRight() async throws {
        let h = try Harness()
        _ = try await h.put(sampleBytes(Self.chunk + 5, seed: 1), key: "k")
        let newer = sampleBytes(100, seed: 2)
        _ = try await h.put(newer, key: "k")
        #expect(try await h.get("k") == newer)
        let stats = try h.catalog.statistics()
        #expect(stats.objects == 1)
        #expect(stats.uniquePlainBytes == 100)
        #expect(stats.unreferencedChunks == 3, "two old data chunks and the old manifest")
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["k"])
        #expect(try h.catalog.statistics().unreferencedChunks == 3, "a deleted object keeps its chunks while in the trash")
        #expect(try h.catalog.namespace.purgeTrash(deletedBefore: .max) == 1)
        #expect(try h.catalog.statistics().unreferencedChunks == 5)
        #expect(try h.keys().isEmpty)
    }
}

/// A pool that measures how many stores run at once.
final class InFlightGauge: @unchecked Sendable {
    private let state = Mutex((now: 0, peak: 0))
    var peak: Int { state.withLock { $0.peak } }
    func enter() { state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
}

struct GaugedPool: ChunkPool {
    let inner: ReplicatedPool
    let gauge: InFlightGauge

    func store(_ id: ChunkID, sealed: [UInt8], policy: ReplicaPolicy, existing: [Int64]) async throws -> [Int64] {
        gauge.enter()
        defer { gauge.leave() }
        try await Task.sleep(for: .milliseconds(20))  // a slow provider, so that stores overlap
        return try await inner.store(id, sealed: sealed, policy: policy, existing: existing)
    }

    func replicaCount(for replicas: Int) -> Int { inner.replicaCount(for: replicas) }

    func fetch<T: Sendable>(_ id: ChunkID, from locations: [Int64], open: @escaping @Sendable ([UInt8]) throws -> T) async throws -> T {
        try await inner.fetch(id, from: locations, open: open)
    }
}

import Synchronization

struct SharedChunkTests {
    @Test func aFileWhoseBytesEqualAManifestKeepsBothCountsApart() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let data = sampleBytes(1000)
        _ = try await h.put(data, key: "original")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["original"])
        // Store the manifest's own encoding as a file: its one data chunk is the manifest chunk.
        _ = try await h.put(object.manifest.encoded, key: "looks-like-a-manifest")
        #expect(try h.catalog.statistics().uniqueChunks == 2)
        // Removing the original frees its data chunk even though its manifest chunk is still used as data.
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["original"])
        _ = try h.catalog.namespace.purgeTrash(deletedBefore: .max)
        let stats = try h.catalog.statistics()
        #expect(stats.uniqueChunks == 1, "only the look-alike's one data chunk is referenced")
        #expect(stats.unreferencedChunks == 1, "the original's data chunk is unreferenced")
        #expect(try await h.get("looks-like-a-manifest") == object.manifest.encoded)
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["looks-like-a-manifest"])
        _ = try h.catalog.namespace.purgeTrash(deletedBefore: .max)
        #expect(try h.catalog.statistics().uniqueChunks == 0)
        #expect(try h.catalog.statistics().unreferencedChunks == 3)
    }

    @Test func dedupeAddsReplicasForABucketThatWantsMore() async throws {
        let h = try Harness(providers: 3, replicas: 1)
        let data = sampleBytes(ChunkSealer.maxChunkSize + 10)
        _ = try await h.put(data, key: "one-copy")
        let safer = try h.catalog.namespace.createBucket("two-copies", replicas: 2)
        _ = try await ObjectWriter(sealer: h.sealer, pool: try h.pool(), catalog: h.catalog)
            .write(from: BytesSource(data), bucket: safer, key: "k", owner: (0, 0, 0o644))
        var perChunk: [ChunkID: Set<Int64>] = [:]
        for (chunk, provider) in try h.catalog.chunks.allLocations() { perChunk[chunk, default: []].insert(provider) }
        let object = try h.catalog.namespace.object(bucket: safer, segments: ["k"])
        for entry in object.manifest.entries { #expect(perChunk[entry.id]?.count == 2) }
        #expect(perChunk[object.manifestID]?.count == 2)
    }
}
