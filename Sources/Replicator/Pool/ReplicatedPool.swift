import ChunkStore
import Synchronization

/// A `ChunkPool` over several providers: each chunk is written to the top `replicas` providers of
/// its rendezvous ranking that have room under their quota, in parallel, and read from the first
/// location that returns bytes which verify, falling back to the others.
public final class ReplicatedPool: ChunkPool {
    public struct Member: Sendable {
        public let id: Int64
        public let name: String
        public let backend: any Backend
        public let quota: Int64?
        public init(id: Int64, name: String, backend: any Backend, quota: Int64?) {
            self.id = id
            self.name = name
            self.backend = backend
            self.quota = quota
        }
    }

    public let members: [Member]
    private let byID: [Int64: Member]
    private let placement = RendezvousPlacement()
    /// Bytes placed on each provider, including writes in flight (reserved before they start).
    private let used: Mutex<[Int64: Int64]>

    /// `used`: the bytes the catalog already places on each provider.
    public init(members: [Member], used: [Int64: Int64]) {
        self.members = members
        byID = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) })
        self.used = Mutex(used)
    }

    public func store(_ id: ChunkID, sealed: [UInt8], replicas: Int) async throws -> [Int64] {
        guard !members.isEmpty else {
            throw StoreError(.providerFailure, "this repository has no providers: add one with a67 provider add NAME --dir PATH")
        }
        let wanted = replicaCount(for: replicas)
        let ranked = placement.rank(id, among: members.map { .init(id: $0.id, key: $0.name) })
        let size = Int64(sealed.count)
        // Reserve room on the best-ranked providers whose quota allows it.
        let targets: [Member] = used.withLock { used in
            var chosen: [Member] = []
            for candidate in ranked where chosen.count < wanted {
                let member = byID[candidate.id]!
                let now = used[member.id, default: 0]
                if let quota = member.quota, now + size > quota { continue }
                used[member.id] = now + size
                chosen.append(member)
            }
            return chosen
        }
        guard targets.count == wanted else {
            release(targets, size)
            let full = members.filter { m in !targets.contains { $0.id == m.id } }.map(\.name).sorted()
            throw StoreError(.providerFailure, "not enough room for \(wanted) replica(s) of a chunk: provider(s) \(full.joined(separator: ", ")) are at their quota; raise a quota or add a provider")
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for member in targets {
                    group.addTask {
                        do {
                            try await member.backend.put(id.objectName, data: sealed)
                        } catch {
                            throw StoreError(.providerFailure, "provider \(member.name) (\(member.backend.location)) could not store chunk \(id.short): \(error)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            release(targets, size)
            throw error
        }
        return targets.map(\.id)
    }

    public func replicaCount(for replicas: Int) -> Int { min(max(1, replicas), members.count) }

    public func fetch<T: Sendable>(_ id: ChunkID, from locations: [Int64],
                                   open: @Sendable ([UInt8]) throws -> T) async throws -> T {
        var failures: [String] = []
        var integrity = false
        // Members in ranking order first: the same chunk is read from the same provider each time.
        let order = placement.rank(id, among: locations.compactMap { byID[$0] }.map { .init(id: $0.id, key: $0.name) })
        for candidate in order {
            let member = byID[candidate.id]!
            let sealed: [UInt8]
            do {
                sealed = try await member.backend.get(id.objectName, range: nil)
            } catch let error as BackendError {
                if case .notFound = error { integrity = true }
                failures.append("\(member.name): \(error)")
                continue
            }
            do {
                return try open(sealed)
            } catch let error as StoreError {
                integrity = integrity || error.code == .integrity
                failures.append("\(member.name): \(error.message)")
            }
        }
        if failures.isEmpty { failures.append("no provider of this repository holds it") }
        throw StoreError(integrity ? .integrity : .providerFailure,
                         "chunk \(id.short) could not be read: \(failures.joined(separator: "; "))")
    }

    private func release(_ members: [Member], _ size: Int64) {
        used.withLock { used in for member in members { used[member.id, default: 0] -= size } }
    }
}
