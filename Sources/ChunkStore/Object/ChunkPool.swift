/// Where sealed chunks live: one or more providers. The object streams talk to this seam only;
/// the Replicator implements it over placement and replicas.
public protocol ChunkPool: Sendable {
    /// Stores a sealed chunk on `replicas` providers and returns only once it is durable on all of
    /// them; returns their IDs. Throws `StoreError(.providerFailure)` naming the provider that failed.
    func store(_ id: ChunkID, sealed: [UInt8], replicas: Int) async throws -> [Int64]

    /// How many providers `store` writes for a bucket that asks for `replicas` (fewer when the pool
    /// has fewer providers).
    func replicaCount(for replicas: Int) -> Int

    /// Fetches a chunk from one of `locations` and passes its bytes to `open`, which verifies them;
    /// when fetching or `open` fails, tries the next location. Throws the last failure when none
    /// yields bytes that `open` accepts.
    func fetch<T: Sendable>(_ id: ChunkID, from locations: [Int64],
                            open: @Sendable ([UInt8]) throws -> T) async throws -> T
}

/// Progress callbacks receive the number of plaintext bytes just finished.
public typealias ProgressHandler = @Sendable (Int64) -> Void
