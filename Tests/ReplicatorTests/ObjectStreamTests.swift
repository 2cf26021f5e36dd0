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

/// A `PieceSource` over pieces given in advance, that counts how it is read.
final class FixedPieces: PieceSource, Sendable {
    let pieces: [[UInt8]]
    private let state = Mutex((next: 0, plainReads: 0))
    let knownSize: Int64?

    init(_ pieces: [[UInt8]]) {
        self.pieces = pieces
        knownSize = Int64(pieces.reduce(0) { $0 + $1.count })
    }

    var plainReads: Int { state.withLock { $0.plainReads } }
    var piecesRead: Int { state.withLock { $0.next } }

    func nextPiece() throws -> [UInt8]? {
        state.withLock { s in
            defer { s.next += 1 }
            return s.next < pieces.count ? pieces[s.next] : nil
        }
    }

    func read(upTo count: Int) throws -> [UInt8] {
        state.withLock { $0.plainReads += 1 }
        return []
    }
}

extension Harness {
    func put(pieces source: FixedPieces, key: String, window: Int = 6) async throws -> ObjectWriter.Result {
        try await ObjectWriter(sealer: sealer, pool: try pool(), catalog: catalog, window: window)
            .write(from: source, bucket: bucket, key: key, owner: (0, 0, 0o644))
    }
}

/// The writer storing a `PieceSource` one chunk a piece (app bundles, cut along their plan).
struct PieceSourceTests {
    static let chunk = ChunkSealer.maxChunkSize
    static let lengths = [1, 1000, chunk, 3, chunk - 1, 777_777, 2]

    /// Pieces of `lengths`, cut from one run of sample bytes.
    static func pieces(_ lengths: [Int], seed: UInt64 = 1) -> [[UInt8]] {
        let data = sampleBytes(lengths.reduce(0, +), seed: seed)
        var offset = 0
        return lengths.map { length in
            defer { offset += length }
            return Array(data[offset..<offset + length])
        }
    }

    @Test func piecesOfVaryingLengthsAreStoredAsTheirChunksAndReadBack() async throws {
        let h = try Harness()
        let pieces = Self.pieces(Self.lengths)
        let source = FixedPieces(pieces)
        let result = try await h.put(pieces: source, key: "app/v1")
        #expect(result.chunks == Self.lengths.count)
        #expect(result.newChunks == Self.lengths.count)
        #expect(result.size == Int64(Self.lengths.reduce(0, +)))
        #expect(source.plainReads == 0, "a piece source is read by its pieces only")
        let object = try h.catalog.namespace.object(bucket: h.bucket, segments: ["app", "v1"])
        #expect(object.manifest.entries.map(\.length) == Self.lengths)
        #expect(try await h.get("app/v1") == Array(pieces.joined()))
    }

    @Test func rangesAcrossPiecesOfVaryingLengthsReturnTheirBytes() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let data = Array(Self.pieces(Self.lengths).joined())
        _ = try await h.put(pieces: FixedPieces(Self.pieces(Self.lengths)), key: "r")
        // Every boundary between pieces, and ranges that straddle one, several or none.
        var boundaries: [Int64] = []
        for length in Self.lengths.dropLast() { boundaries.append((boundaries.last ?? 0) + Int64(length)) }
        var cases: [ClosedRange<Int64>] = [0...0, 0...1, 0...1001, 2...Int64(data.count) - 2, Int64(data.count) - 1...Int64(data.count) + 9]
        for b in boundaries { cases += [b - 1...b, b...b, max(0, b - 3)...b + 2] }
        for range in cases {
            let expected = Array(data[Int(range.lowerBound)...min(Int(range.upperBound), data.count - 1)])
            #expect(try await h.get("r", range: range) == expected, "range \(range)")
        }
        // A range inside the third piece (a whole chunk) fetches that chunk only.
        let before = h.providers[0].calls(.get)
        _ = try await h.get("r", range: boundaries[1] + 10...boundaries[1] + 20)
        #expect(h.providers[0].calls(.get) - before == 1)
    }

    @Test(arguments: [
        [0],                          // an empty first piece
        [chunk + 1],                  // a first piece longer than a chunk
        [10, 0],                      // an empty piece after a short one
        [10, chunk + 1],              // a long piece after a short one
    ])
    func aPieceOfNoBytesOrMoreThanAChunkIsRefusedWithNothingStored(lengths: [Int]) async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let error = await expectStoreError(.invalidArgument) {
            _ = try await h.put(pieces: FixedPieces(Self.pieces(lengths)), key: "bad")
        }
        #expect(error?.message.contains("piece \(lengths.count)") == true, "the error names the piece: \(String(describing: error))")
        #expect(try h.keys().isEmpty)
        #expect(try h.catalog.chunks.allLocations().isEmpty, "no chunk recorded")
        #expect(h.providers[0].calls(.put) == 0, "no chunk stored")
    }

    @Test func aBadPieceAfterStoredOnesLeavesNoObject() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        await expectStoreError(.invalidArgument) {
            _ = try await h.put(pieces: FixedPieces(Self.pieces([Self.chunk, 5, 0])), key: "bad")
        }
        #expect(try h.keys().isEmpty)
        let stats = try h.catalog.statistics()
        #expect(stats.objects == 0)
        #expect(stats.uniqueChunks == 0, "what was stored is unreferenced, for garbage collection")
    }

    /// (pieces, whether the one chunk is left for the commit to record)
    @Test(arguments: [([100], true), ([chunk - 1], true), ([chunk], false), ([100, 100], false), ([100, 200], false)])
    func onlyALoneShortPieceIsRecordedWithTheObject(lengths: [Int], lone: Bool) async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let source = FixedPieces(Self.pieces(lengths))
        let writer = ObjectWriter(sealer: h.sealer, pool: try h.pool(), catalog: h.catalog)
        let stored = try await writer.storeChunks(nextPiece: { try source.nextPiece() },
                                                  policy: ReplicaPolicy(replicas: 1, minimum: 1))
        #expect(stored.entries.map(\.length) == lengths)
        #expect(stored.unrecorded.map(\.id) == (lone ? stored.entries.map(\.id) : []))
        for entry in stored.entries {
            #expect(try await h.catalog.chunks.locations(entry.id) == (lone ? nil : [h.records[0].id]))
        }
        _ = try await writer.commit(stored, attributes: [:], bucket: h.bucket, key: "k", owner: (0, 0, 0o644))
        #expect(try await h.get("k") == Array(source.pieces.joined()))
        #expect(try h.catalog.statistics().unreferencedChunks == 0)
    }

    @Test func oneShortPieceIsStoredAsASmallObjectOfThoseBytes() async throws {
        let h = try Harness()
        let data = sampleBytes(4321)
        let plain = try await h.put(data, key: "plain")
        let piece = try await h.put(pieces: FixedPieces([data]), key: "piece")
        #expect(piece.manifestID == plain.manifestID, "the same manifest as a plain put of the bytes")
        #expect(piece.chunks == 1)
        #expect(piece.newChunks == 0)
        #expect(try await h.get("piece") == data)
    }

    @Test func equalPiecesAreStoredOnce() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let a = sampleBytes(1000, seed: 7), b = sampleBytes(3000, seed: 8)
        let first = try await h.put(pieces: FixedPieces([a, b, a, a, b]), key: "x")
        #expect(first.chunks == 5)
        #expect(first.newChunks == 2)
        #expect(h.providers[0].calls(.put) == 3, "two data chunks and a manifest")
        #expect(try await h.get("x") == a + b + a + a + b)
        let second = try await h.put(pieces: FixedPieces([b, a]), key: "y")
        #expect(second.newChunks == 0)
        #expect(h.providers[0].calls(.put) == 4, "only the second manifest")
    }

    @Test func piecesAreStoredInParallelWithinTheWindow() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let gate = InFlightGauge()
        let pool = GaugedPool(inner: try h.pool(), gauge: gate)
        let source = FixedPieces((0..<12).map { sampleBytes(300_000, seed: UInt64($0)) })
        _ = try await ObjectWriter(sealer: h.sealer, pool: pool, catalog: h.catalog, window: 3)
            .write(from: source, bucket: h.bucket, key: "many", owner: (0, 0, 0o644))
        #expect(gate.peak <= 3)
        #expect(gate.peak >= 2, "pieces must be stored in parallel")
    }
}
