import ChunkStore

/// Chooses the providers a chunk lives on by rendezvous (highest-random-weight) hashing on its ID:
/// every provider gets a score from hash(ID, provider key) and the chunk goes to the highest scores.
/// Adding a provider moves only the chunks for which it now scores highest (about 1/N of them), and
/// any reader can recompute the order without a lookup table.
public struct RendezvousPlacement: Sendable {
    public struct Candidate: Sendable, Equatable {
        public let id: Int64
        /// A stable name: scores depend on it, not on the catalog's row IDs.
        public let key: String
        public let weight: Double
        public init(id: Int64, key: String, weight: Double = 1) {
            self.id = id
            self.key = key
            self.weight = weight
        }
    }

    public init() {}

    /// Candidates ranked for `chunk`, best first.
    public func rank(_ chunk: ChunkID, among candidates: [Candidate]) -> [Candidate] {
        candidates.map { ($0, score(chunk, $0)) }.sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// Weighted rendezvous score: -weight / ln(u) with u uniform in (0, 1) from SHA-256(ID, key).
    func score(_ chunk: ChunkID, _ candidate: Candidate) -> Double {
        let digest = Crypto.sha256(chunk.bytes + Array(candidate.key.utf8))
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(digest[i]) }
        let u = (Double(value >> 11) + 0.5) / Double(UInt64(1) << 53)
        return -candidate.weight / log(u)
    }
}

#if canImport(Glibc)
import Glibc
#endif
