import ChunkStore

/// What the controller needs to let a node agent fetch a bundle without the repository's keys or any
/// provider's credential (FORMAT.md, threat model): each chunk's own key, and the sealed chunk itself,
/// relayed from the providers as they hold it.
extension Repository {
    /// The key chunk `id` is sealed under (FORMAT.md "Keys"): it opens that chunk and no other.
    public func chunkKey(for id: ChunkID) throws -> SecretKey {
        ChunkSealer(keys: try unlocked()).chunkKey(for: id)
    }

    /// Chunk `id`'s sealed bytes as a provider holds them, from the first replica whose copy opens,
    /// has `length` bytes of plaintext and hashes to `id` (a damaged copy is reported and the next
    /// replica tried, as for any read). Not found when no location of it is recorded.
    public func sealedChunk(_ id: ChunkID, length: Int) async throws -> [UInt8] {
        let sealer = ChunkSealer(keys: try unlocked())
        guard let locations = try await catalog.chunks.locations(id), !locations.isEmpty else {
            throw StoreError(.notFound, "chunk \(id.short) is not in this repository")
        }
        return try await pool().fetch(id, from: locations) { sealed in
            _ = try sealer.open(sealed, id: id, expectedLength: length)
            return sealed
        }
    }
}
