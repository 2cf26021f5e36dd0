import BackendTesting
import ChunkStore
import Foundation
import Replicator
import Testing

/// A process reads each provider's keyring once before it first places chunks there, however many
/// placements start at once: a placement that looked while another's check was finishing reuses
/// that check's answer instead of reading again.
@Suite struct KeyringCheckTests {
    @Test func concurrentFirstPlacementsReadTheKeyringOnce() async throws {
        let repositoryID = Crypto.randomBytes(16)
        let ring = try Keyring.wrap(master: .random(), passphrase: Passphrase("p"), repositoryID: repositoryID, logN: 10)
        let sealer = ChunkSealer(keys: RepositoryKeys(master: .random()))
        for round in 0..<100 {
            let memory = MemoryBackend(name: "p\(round)")
            try await memory.put(Keyring.objectName, data: ring.encoded)
            let counted = FaultInjectingBackend(memory)
            // A keyring read that takes a moment, as on a real provider, so that checks overlap.
            counted.inject(.delay(0.002), on: .get)
            let pool = ReplicatedPool(members: [.init(id: 1, name: "p", backend: counted, quota: nil)], used: [:],
                                      repositoryID: repositoryID)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<32 {
                    group.addTask {
                        // Placements that start while the first check is under way and as it ends.
                        try await Task.sleep(for: .microseconds(i * 100))
                        let data = Array("chunk \(round) \(i)".utf8)
                        let id = sealer.id(of: data)
                        _ = try await pool.store(id, sealed: sealer.seal(data, id: id),
                                                 policy: ReplicaPolicy(replicas: 1, minimum: 1), existing: [])
                    }
                }
                try await group.waitForAll()
            }
            #expect(counted.calls(.get) == 1, "round \(round): \(counted.calls(.get)) keyring reads")
            #expect(counted.calls(.put) == 32)
        }
    }
}
