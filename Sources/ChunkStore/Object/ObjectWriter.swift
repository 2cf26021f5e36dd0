import Synchronization

/// Streams a source into sealed chunks and commits it as one object.
///
/// Pipeline: one task reads pieces (on the blocking-I/O pool: 5 MiB each, or those a `PieceSource`
/// chooses) while up to `window` chunk tasks run at once, each hashing its piece (HMAC-SHA256), and,
/// unless the catalog already holds that ID, compressing, encrypting and storing it on its replicas. Hashing and sealing run on the cooperative
/// threads (one per core); provider writes run on the I/O pool, so both cores stay busy while disks
/// sync. Memory is bounded by `window` chunks whatever the object's size.
///
/// Visibility: the object appears only in the final catalog transaction, after every chunk and the
/// manifest are durable. A crash before it leaves no object, only chunks recorded as unreferenced
/// (or, for those not yet recorded, files that garbage collection reclaims), and a rerun dedupes
/// against the recorded ones.
public struct ObjectWriter: Sendable {
    public let sealer: ChunkSealer
    public let pool: any ChunkPool
    public let catalog: Catalog
    public let window: Int

    public init(sealer: ChunkSealer, pool: any ChunkPool, catalog: Catalog, window: Int = 10) {
        self.sealer = sealer
        self.pool = pool
        self.catalog = catalog
        self.window = max(1, window)
    }

    public struct Result: Sendable, Equatable {
        public let size: Int64
        public let chunks: Int
        /// Data chunks this put stored (the rest were already in the repository). The manifest is
        /// not counted.
        public let newChunks: Int
        public let newSealedBytes: Int64
        public let manifestID: ChunkID
        /// Chunks (the manifest included) stored with fewer replicas than the bucket wants, because
        /// providers failed: repair restores them.
        public let underReplicated: Int
    }

    /// Puts `source` as `bucket/key`. With `quota`, room under the bucket owner's quota is taken
    /// before the bytes are stored (the whole size up front when it is known), and the put is
    /// refused with `quotaExceeded` when there is none. A `PieceSource` is read by its pieces, each
    /// stored as one chunk; any other source is cut every 5 MiB.
    public func write(from source: ByteSource, bucket: BucketRecord, key: String,
                      owner: (uid: UInt32, gid: UInt32, mode: UInt32),
                      attributes: [String: String] = [:], io: BlockingIOPool = .shared, quota: QuotaReservation? = nil,
                      progress: ProgressHandler? = nil) async throws -> Result {
        if let size = source.knownSize { try quota?.cover(size) }
        var total: Int64 = 0
        func counted(_ bytes: [UInt8]) throws -> [UInt8] {
            total += Int64(bytes.count)
            try quota?.cover(total)
            return bytes
        }
        if let pieces = source as? any PieceSource {
            return try await write(nextPiece: { try await io.run { try pieces.nextPiece() }.map(counted) },
                                   bucket: bucket, key: key, owner: owner, attributes: attributes, progress: progress)
        }
        return try await write(reading: { count in try counted(try await io.run { try source.read(upTo: count) }) },
                               bucket: bucket, key: key, owner: owner, attributes: attributes, progress: progress)
    }

    /// Puts the bytes `read` returns (each call: up to the given count, fewer only at the end) as
    /// `bucket/key`. `read` is called from this task only, one call at a time.
    public func write(reading read: (Int) async throws -> [UInt8], bucket: BucketRecord, key: String,
                      owner: (uid: UInt32, gid: UInt32, mode: UInt32), attributes: [String: String] = [:],
                      progress: ProgressHandler? = nil) async throws -> Result {
        try await write(bucket: bucket, key: key, owner: owner, attributes: attributes) { policy in
            try await storeChunks(reading: read, policy: policy, progress: progress)
        }
    }

    /// Puts the pieces `nextPiece` returns (each one chunk's exact bytes, 1 byte to 5 MiB; nil after
    /// the last) as `bucket/key`. `nextPiece` is called from this task only, one call at a time.
    public func write(nextPiece: () async throws -> [UInt8]?, bucket: BucketRecord, key: String,
                      owner: (uid: UInt32, gid: UInt32, mode: UInt32), attributes: [String: String] = [:],
                      progress: ProgressHandler? = nil) async throws -> Result {
        try await write(bucket: bucket, key: key, owner: owner, attributes: attributes) { policy in
            try await storeChunks(nextPiece: nextPiece, policy: policy, progress: progress)
        }
    }

    /// Checks the key and attributes, stores the chunks with `store`, and commits them as the object.
    private func write(bucket: BucketRecord, key: String, owner: (uid: UInt32, gid: UInt32, mode: UInt32),
                       attributes: [String: String], store: (ReplicaPolicy) async throws -> StoredChunks) async throws -> Result {
        let segments = try Names.keySegments(key)
        try Self.validate(attributes)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        let stored = try await store(policy)
        return try await commit(stored, attributes: attributes, bucket: bucket, key: key, segments: segments, owner: owner)
    }

    static func validate(_ attributes: [String: String]) throws {
        for (name, value) in attributes where name.utf8.count > 1024 || value.utf8.count > 65536 {
            throw StoreError(.invalidArgument, "attribute \(name.prefix(64)) is too long: names are at most 1 KiB, values 64 KiB")
        }
    }

    /// What `storeChunks` stored: the chunks of a stream, in order, each durable on its replicas.
    public struct StoredChunks: Sendable {
        public let entries: [Manifest.Entry]
        /// The chunks this call stored (or added replicas to), to be recorded with the object.
        public let stored: [StoredChunk]
        public let newChunks: Int
        public let newSealedBytes: Int64
        public let underReplicated: Int
        /// Stored but not yet recorded in the catalog: whoever commits them (the object, or a
        /// multipart part) records them in the same transaction.
        public let unrecorded: [StoredChunk]
        public var size: Int64 { entries.reduce(0) { $0 + Int64($1.length) } }

        public init(entries: [Manifest.Entry], stored: [StoredChunk] = [], newChunks: Int = 0, newSealedBytes: Int64 = 0,
                    underReplicated: Int = 0, unrecorded: [StoredChunk] = []) {
            self.entries = entries
            self.stored = stored
            self.newChunks = newChunks
            self.newSealedBytes = newSealedBytes
            self.underReplicated = underReplicated
            self.unrecorded = unrecorded
        }
    }

    /// Cuts the bytes `read` returns into chunks of 5 MiB (the last one shorter) and stores each
    /// that the repository lacks, without making an object of them (a multipart upload's part; the
    /// first half of `write`). `read` is asked for 5 MiB at a time; its first short (or empty) answer
    /// ends the stream. Chunks are recorded as `storeChunks(nextPiece:)` says.
    public func storeChunks(reading read: (Int) async throws -> [UInt8], policy: ReplicaPolicy,
                            progress: ProgressHandler? = nil) async throws -> StoredChunks {
        var ended = false
        return try await storeChunks(nextPiece: {
            if ended { return nil }
            let bytes = try await read(ChunkSealer.maxChunkSize)
            // A short read is the end: `read` is not asked again (a network body may not allow it).
            if bytes.count < ChunkSealer.maxChunkSize { ended = true }
            return bytes.isEmpty ? nil : bytes
        }, policy: policy, progress: progress)
    }

    /// Stores each piece `nextPiece` returns as one chunk (unless the repository holds it), in order,
    /// without making an object of them; nil ends the stream. A piece must be 1 byte to 5 MiB
    /// (`ChunkSealer.maxChunkSize`): another is refused with `invalidArgument`, and chunks already
    /// stored stay unreferenced, as after an interrupted put, for garbage collection.
    ///
    /// Each chunk is recorded (unreferenced) as soon as it is durable, except the one chunk of a
    /// stream shorter than a chunk: that one is returned in `unrecorded`, for the commit to record.
    public func storeChunks(nextPiece: () async throws -> [UInt8]?, policy: ReplicaPolicy,
                            progress: ProgressHandler? = nil) async throws -> StoredChunks {
        let pool = self.pool, catalog = self.catalog
        let claimed = ClaimedChunks()
        var entries: [Manifest.Entry?] = []
        var stored: [StoredChunk] = []
        var newChunks = 0
        var newBytes: Int64 = 0
        var underReplicated = 0
        var unrecorded = false
        let wanted = pool.replicaCount(for: policy.replicas)
        try await withThrowingTaskGroup(of: (Int, Manifest.Entry, StoredChunk?, Bool).self) { group in
            var index = 0
            var inFlight = 0
            // (position, entry, what this put stored of it, whether the chunk is new to the repository)
            func collect(_ done: (Int, Manifest.Entry, StoredChunk?, Bool)) {
                entries[done.0] = done.1
                if let chunk = done.2 {
                    stored.append(chunk)
                    if chunk.providers.count < wanted { underReplicated += 1 }
                    if done.3 {
                        newChunks += 1
                        newBytes += Int64(chunk.sealedSize)
                    }
                }
                progress?(Int64(done.1.length))
            }
            // The next piece (number `position`, from 0), checked; nil at the end.
            func next(_ position: Int) async throws -> [UInt8]? {
                guard let bytes = try await nextPiece() else { return nil }
                guard (1...ChunkSealer.maxChunkSize).contains(bytes.count) else {
                    throw StoreError(.invalidArgument, "piece \(position + 1) of the stream is \(bytes.count) bytes, and a piece (one chunk) must be 1 byte to 5 MiB (\(ChunkSealer.maxChunkSize) bytes): nothing was stored as an object")
                }
                return bytes
            }
            // The second piece when it was read before the first was stored (see `lone`).
            var ahead: [UInt8]?? = nil
            while true {
                let bytes: [UInt8]
                if let early = ahead {
                    guard let early else { break }
                    bytes = early
                    ahead = nil
                } else {
                    guard let read = try await next(index) else { break }
                    bytes = read
                }
                let length = bytes.count
                // A lone chunk (the whole stream, shorter than a chunk) is recorded with the object.
                // Only a short first piece can be one; whether another follows is known by reading
                // it now, before the first is stored: for a plain stream the short piece was its end
                // (nothing is read), for a piece source it is one more call of `nextPiece`. Reading
                // ahead only here keeps the window's memory bound (one extra piece, once), and a
                // piece refused there leaves nothing stored.
                var lone = false
                if index == 0 && length < ChunkSealer.maxChunkSize {
                    let second = try await next(1)
                    ahead = .some(second)
                    lone = second == nil
                }
                let piece = PlaintextPiece(bytes)
                if inFlight == window, let done = try await group.next() {
                    collect(done)
                    inFlight -= 1
                }
                let position = index
                if lone { unrecorded = true }
                entries.append(nil)
                group.addTask {
                    // Hash, dedupe and seal; the plaintext is freed here, before the slow provider write.
                    let (entry, sealed, existing) = try await prepare(piece, policy: policy, claimed: claimed)
                    guard let sealed else { return (position, entry, nil, false) }
                    try Task.checkCancellation()
                    let added = try await pool.store(entry.id, sealed: sealed, policy: policy, existing: existing)
                    let chunk = StoredChunk(id: entry.id, plainSize: entry.length, sealedSize: sealed.count,
                                            providers: existing + added, want: policy.replicas)
                    // Recorded at once, so that a rerun after an interruption reuses it; except the one
                    // chunk of a small object, recorded with the object in a single transaction (one
                    // catalog commit per small upload instead of two).
                    if !lone { try await catalog.chunks.record([chunk]) }
                    return (position, entry, chunk, existing.isEmpty)
                }
                inFlight += 1
                index += 1
            }
            while let done = try await group.next() { collect(done) }
        }
        return StoredChunks(entries: entries.map { $0! }, stored: stored, newChunks: newChunks, newSealedBytes: newBytes,
                            underReplicated: underReplicated, unrecorded: unrecorded ? stored : [])
    }

    /// Makes an object of chunks already stored: stores its manifest (unless the repository holds
    /// it) and commits it in one catalog transaction. With `upload`, that multipart upload is
    /// forgotten in the same transaction; with `condition`, the key's object must meet it there
    /// (`Catalog.commitObject`).
    public func commit(_ chunks: StoredChunks, attributes: [String: String], bucket: BucketRecord, key: String,
                       segments: [String]? = nil, owner: (uid: UInt32, gid: UInt32, mode: UInt32),
                       releasing upload: String? = nil, condition: ObjectCondition? = nil) async throws -> Result {
        let segments = try segments ?? Names.keySegments(key)
        try Self.validate(attributes)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        let wanted = pool.replicaCount(for: policy.replicas)
        var underReplicated = chunks.underReplicated
        let manifest = Manifest(entries: chunks.entries, attributes: attributes)
        guard manifest.entries.count <= Manifest.maxEntries else {
            throw StoreError(.invalidArgument, "object \(bucket.name)/\(key) is larger than one manifest chunk can describe (about 711 GiB)")
        }
        let (manifestID, manifestChunk) = try await storeManifest(manifest, policy: policy)
        var last: [StoredChunk] = chunks.unrecorded
        if let manifestChunk {
            if manifestChunk.providers.count < wanted { underReplicated += 1 }
            last.append(manifestChunk)
        }
        try await catalog.namespace.commitObject(bucket: bucket, segments: segments, manifestID: manifestID, manifest: manifest,
                                       chunks: last, owner: owner, releasing: upload, condition: condition)
        return Result(size: manifest.size, chunks: manifest.entries.count, newChunks: chunks.newChunks,
                      newSealedBytes: chunks.newSealedBytes, manifestID: manifestID, underReplicated: underReplicated)
    }
}

extension ObjectWriter {
    /// Stores `manifest` as a chunk unless the repository holds it on enough providers; returns its
    /// ID and, when this call stored it, the chunk to record with whatever refers to it.
    public func storeManifest(_ manifest: Manifest, policy: ReplicaPolicy) async throws -> (id: ChunkID, stored: StoredChunk?) {
        let body = manifest.encoded
        guard body.count <= ChunkSealer.maxChunkSize else {
            throw StoreError(.invalidArgument, "the object is larger than one manifest chunk can describe (about 711 GiB)")
        }
        let id = sealer.id(of: body)
        let existing = try await catalog.chunks.locations(id) ?? []
        guard existing.count < pool.replicaCount(for: policy.replicas) else { return (id, nil) }
        let sealed = sealer.seal(body, id: id)
        let added = try await pool.store(id, sealed: sealed, policy: policy, existing: existing)
        return (id, StoredChunk(id: id, plainSize: body.count, sealedSize: sealed.count, providers: existing + added, want: policy.replicas))
    }

    /// Names a piece and, unless it is already stored (in the catalog, or by another task of this
    /// put), seals it. Takes the plaintext out of `piece`, so it is freed when this returns.
    /// A chunk the catalog holds on fewer providers than this put wants (first stored for a bucket
    /// with fewer replicas, or left under-replicated by a failure) is sealed again and stored on more
    /// providers: `existing` are those that already hold it.
    func prepare(_ piece: PlaintextPiece, policy: ReplicaPolicy, claimed: ClaimedChunks) async throws
        -> (entry: Manifest.Entry, sealed: [UInt8]?, existing: [Int64]) {
        let plaintext = piece.take()
        let entry = Manifest.Entry(id: sealer.id(of: plaintext), length: plaintext.count)
        let existing = try await catalog.chunks.locations(entry.id) ?? []
        if existing.count >= pool.replicaCount(for: policy.replicas) { return (entry, nil, existing) }
        guard claimed.claim(entry.id) else { return (entry, nil, existing) }
        // After another chunk failed, the group is cancelled: seal nothing more.
        try Task.checkCancellation()
        return (entry, sealer.seal(plaintext, id: entry.id), existing)
    }
}

/// A piece of plaintext handed to one chunk task, which takes it out so that it can be freed as
/// soon as the piece is sealed, while the sealed bytes are still being written.
final class PlaintextPiece: Sendable {
    private let bytes: Mutex<[UInt8]>
    let count: Int

    init(_ bytes: [UInt8]) {
        count = bytes.count
        self.bytes = Mutex(bytes)
    }

    func take() -> [UInt8] { bytes.withLock { b in defer { b = [] }; return b } }
}

/// The chunk IDs the tasks of one put are storing, so that a chunk repeated inside an object is
/// stored once.
final class ClaimedChunks: Sendable {
    private let ids = Mutex<Set<ChunkID>>([])

    /// True for the first task to store `id` in this put.
    func claim(_ id: ChunkID) -> Bool { ids.withLock { $0.insert(id).inserted } }
}
