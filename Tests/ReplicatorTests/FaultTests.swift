import BackendTesting
import ChunkStore
import Replicator
import Testing

struct FaultTests {
    static let chunk = ChunkSealer.maxChunkSize

    @Test func failingProviderFailsAPutThatWantsEveryReplicaAndNothingBecomesVisible() async throws {
        let h = try Harness(providers: 2, replicas: 2, minReplicas: 2)
        h.providers[1].inject(.fail(.permanent("disk on fire")), on: .put, matching: { $0.hasPrefix("data/") })
        let error = await expectStoreError(.providerFailure) { _ = try await h.put(sampleBytes(3 * Self.chunk), key: "k") }
        #expect(error?.message.contains("p1") == true, "the error must name the provider")
        #expect(error?.message.contains("disk on fire") == true)
        #expect(try h.keys().isEmpty)
        #expect(try h.catalog.statistics().objects == 0)
        #expect(try await h.everyRecordedLocationExists(), "no catalog row may point at a chunk that is not stored")
        // Once the provider recovers, the same put works.
        h.providers[1].clearFaults()
        let data = sampleBytes(3 * Self.chunk)
        _ = try await h.put(data, key: "k")
        #expect(try await h.get("k") == data)
        #expect(try await h.everyRecordedLocationExists())
    }

    @Test func failingProviderLeavesAPutUnderReplicatedAboveItsMinimum() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        h.providers[1].inject(.fail(.permanent("disk on fire")), on: .put, matching: { $0.hasPrefix("data/") })
        let data = sampleBytes(3 * Self.chunk)
        let result = try await h.put(data, key: "k")
        #expect(result.underReplicated == 4, "three data chunks and the manifest have one replica of two")
        #expect(try h.catalog.chunks.underReplicated().count == 4)
        #expect(try h.catalog.chunks.replicationSummary().underReplicatedChunks == 4)
        #expect(try await h.get("k") == data)
        #expect(try await h.everyRecordedLocationExists())
    }

    @Test func tooFewHealthyProvidersFailsNamingThem() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        for p in h.providers { p.inject(.fail(.transient("connection refused")), on: .put) }
        let error = await expectStoreError(.providerFailure) { _ = try await h.put(sampleBytes(100), key: "k") }
        #expect(error?.message.contains("p0") == true && error?.message.contains("p1") == true, "\(error?.message ?? "")")
        #expect(try h.keys().isEmpty)
    }

    @Test func fullProviderFailsThePutCleanly() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        h.providers[0].inject(.fail(.full("no space left")), on: .put, times: 1)
        await expectStoreError(.providerFailure) { _ = try await h.put(sampleBytes(Self.chunk * 2), key: "k") }
        #expect(try h.keys().isEmpty)
        #expect(try await h.everyRecordedLocationExists())
    }

    @Test func corruptReplicaFailsOverToTheOther() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        let data = sampleBytes(2 * Self.chunk)
        _ = try await h.put(data, key: "k")
        var damagedCount = 0
        for (index, provider) in h.providers.enumerated() {
            provider.inject(.corrupt { bytes in var b = bytes; b[b.count / 2] ^= 0xff; return b }, on: .get)
            #expect(try await h.get("k") == data, "the other replica must serve the read")
            provider.clearFaults()
            // The copies read from it were marked bad: no longer counted, queued for repair.
            let damaged = try h.catalog.chunks.underReplicated()
            damagedCount += damaged.count
            #expect(damaged.allSatisfy { !$0.providers.contains(h.records[index].id) })
            // (The bytes at rest were fine: put the locations back, as repair would.)
            for chunk in damaged { try h.catalog.chunks.addLocations(chunk.id, providers: [h.records[index].id]) }
        }
        // Reads go to each chunk's first provider in the read order, which latency measured during the
        // get itself can change: at least one bad copy was met and forgotten, at most one per data chunk
        // per round (the manifest comes from the catalog).
        #expect((1...4).contains(damagedCount), "bad copies met: \(damagedCount)")
    }

    @Test func corruptionOnEveryReplicaIsAnIntegrityErrorAndNoWrongBytes() async throws {
        let h = try Harness(providers: 2, replicas: 2)
        let data = sampleBytes(3 * Self.chunk)
        _ = try await h.put(data, key: "photos/a.jpg")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["photos", "a.jpg"])
        let bad = object.manifest.entries[1].id.objectName
        for memory in h.memories { memory.tamper(bad) { bytes in var b = bytes; b[40] ^= 1; return b } }
        let sink = BytesSink()
        let error = await expectStoreError(.integrity) {
            try await ObjectReader(sealer: h.sealer, pool: try h.pool(), catalog: h.catalog)
                .read(object, bucket: h.bucket.name, to: sink)
        }
        #expect(error?.message.contains("test-bucket/photos/a.jpg") == true, "the error must name the object")
        #expect(error?.message.contains("chunk 1") == true)
        #expect(sink.bytes == Array(data.prefix(Self.chunk)), "only the verified first chunk may have been written")
    }

    @Test func truncatedAndSwappedChunksAreCaught() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        _ = try await h.put(sampleBytes(2 * Self.chunk), key: "k")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["k"])
        let first = object.manifest.entries[0].id.objectName, second = object.manifest.entries[1].id.objectName
        let original = try await h.memories[0].get(first)
        h.memories[0].tamper(first) { Array($0.prefix($0.count - 100)) }
        await expectStoreError(.integrity) { _ = try await h.get("k") }
        let other = try await h.memories[0].get(second)
        h.memories[0].tamper(first) { _ in other }
        await expectStoreError(.integrity) { _ = try await h.get("k") }
        h.memories[0].tamper(first) { _ in original }
        _ = try await h.get("k")
    }

    @Test func missingChunkOnEveryReplicaIsAnIntegrityError() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        _ = try await h.put(sampleBytes(100), key: "k")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["k"])
        try await h.memories[0].delete(object.manifest.entries[0].id.objectName)
        let error = await expectStoreError(.integrity) { _ = try await h.get("k") }
        #expect(error?.message.contains("no such object") == true)
    }
}

struct PlacementTests {
    @Test func replicasNeverShareAProvider() async throws {
        // Fixed keys: the placement is the same on every run.
        let h = try Harness(providers: 3, replicas: 2, master: SecretKey(bytes: [UInt8](repeating: 3, count: 32)))
        _ = try await h.put(sampleBytes(8 * ChunkSealer.maxChunkSize), key: "k")
        var perChunk: [ChunkID: [Int64]] = [:]
        for (chunk, provider) in try h.catalog.chunks.allLocations() { perChunk[chunk, default: []].append(provider) }
        #expect(perChunk.count == 9)
        #expect(perChunk.values.allSatisfy { Set($0).count == 2 && $0.count == 2 })
        #expect(Set(perChunk.values.flatMap { $0 }).count == 3, "eight chunks should use all three providers")
    }

    @Test func addingAProviderMovesAboutOneNth() {
        let placement = RendezvousPlacement()
        let four = (0..<4).map { RendezvousPlacement.Candidate(id: Int64($0), key: "provider-\($0)") }
        let five = four + [.init(id: 4, key: "provider-4")]
        var moved = 0
        let n = 10_000
        for i in 0..<n {
            let id = ChunkID(bytes: Crypto.sha256(Array("chunk \(i)".utf8)))
            if placement.rank(id, among: four)[0].id != placement.rank(id, among: five)[0].id { moved += 1 }
        }
        // Expect 1/5 of first choices to move to the new provider: 2,000 of 10,000.
        #expect((1_700...2_300).contains(moved), "moved \(moved)")
    }

    @Test func quotaMovesPlacementOnAndFullQuotaFailsCleanly() async throws {
        // Room for two sealed chunks on p0. With fixed keys and data the placement is the same on every
        // run, and ranks p0 first for more than two of the twelve chunks: p0 fills up, the rest move on.
        let sealedChunk = Int64(ChunkSealer.maxChunkSize + ChunkSealer.overhead)
        let quota = 2 * sealedChunk
        let h = try Harness(providers: 2, replicas: 1, quotas: [quota, nil], master: SecretKey(bytes: [UInt8](repeating: 7, count: 32)))
        let data = seededNoise(12 * ChunkSealer.maxChunkSize, seed: 67)
        _ = try await h.put(data, key: "k")
        let used = try h.catalog.providers.all()
        #expect(used[0].usedBytes <= quota, "quota exceeded: \(used[0].usedBytes)")
        #expect(used[0].usedBytes > quota - sealedChunk, "p0 must be filled to within one chunk of its quota")
        #expect(used[0].chunkCount + used[1].chunkCount == 13, "twelve data chunks and a manifest, one copy each")
        #expect(try await h.get("k") == data)

        let tight = try Harness(providers: 1, replicas: 1, quotas: [1024 * 1024])
        let error = await expectStoreError(.providerFailure) { _ = try await tight.put(Crypto.randomBytes(2 << 20), key: "k") }
        #expect(error?.message.contains("quota") == true)
        #expect(try tight.keys().isEmpty)
    }
}
