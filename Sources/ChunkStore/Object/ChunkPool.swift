/// Where sealed chunks live: one or more providers. The object streams talk to this seam only;
/// the Replicator implements it over placement and replicas.
public protocol ChunkPool: Sendable {
    /// Stores a sealed chunk on more providers until it has `policy.replicas` replicas counting
    /// `existing` (the providers that already hold it), in parallel, and returns the providers it
    /// newly stored it on, once the bytes are durable there. A provider that fails is replaced by the
    /// next in the placement order. Returns with fewer than wanted (the chunk is then under-replicated)
    /// only when at least `policy.minimum` replicas exist; otherwise throws
    /// `StoreError(.providerFailure)` naming the providers that failed.
    func store(_ id: ChunkID, sealed: [UInt8], policy: ReplicaPolicy, existing: [Int64]) async throws -> [Int64]

    /// How many replicas a bucket that asks for `replicas` gets (fewer when the pool has fewer
    /// providers or failure groups).
    func replicaCount(for replicas: Int) -> Int

    /// Fetches a chunk from one of `locations` and passes its bytes to `open`, which verifies them;
    /// when fetching or `open` fails, tries the next location. Throws the last failure when none
    /// yields bytes that `open` accepts.
    func fetch<T: Sendable>(_ id: ChunkID, from locations: [Int64],
                            open: @escaping @Sendable ([UInt8]) throws -> T) async throws -> T
}

/// How many replicas a chunk should have, and how few a write may settle for when providers fail.
public struct ReplicaPolicy: Sendable, Equatable {
    public let replicas: Int
    public let minimum: Int
    public init(replicas: Int, minimum: Int = 1) {
        self.replicas = max(1, replicas)
        self.minimum = max(1, min(minimum, self.replicas))
    }
}

/// Progress callbacks receive the number of plaintext bytes just finished.
public typealias ProgressHandler = @Sendable (Int64) -> Void
