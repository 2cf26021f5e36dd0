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

    /// A watcher stopped at shutdown stops waiting for a keyring read that hangs (the process must not
    /// stay up until a slow provider answers); the read itself goes on for whoever else waits for it.
    @Test func aCancelledWaitForAKeyringCheckEndsAtOnce() async throws {
        let repositoryID = Crypto.randomBytes(16)
        let ring = try Keyring.wrap(master: .random(), passphrase: Passphrase("p"), repositoryID: repositoryID, logN: 10)
        let memory = MemoryBackend(name: "slow")
        try await memory.put(Keyring.objectName, data: ring.encoded)
        let slow = FaultInjectingBackend(memory)
        let gate = Gate()
        slow.inject(.hold(gate), on: .get)
        let pool = ReplicatedPool(members: [.init(id: 1, name: "slow", backend: slow, quota: nil)], used: [:],
                                  repositoryID: repositoryID)
        let member = try #require(pool.member(1))
        let waiting = Task { await pool.checkKeyring(member) }
        while slow.calls(.get) == 0 { await Task.yield() }
        waiting.cancel()
        // Without the fix the wait ends only when the read does: the gate opens 20 s from now at the latest.
        let opener = Task { try? await Task.sleep(for: .seconds(20)); gate.open() }
        #expect(await waiting.value == "the check was cancelled")
        #expect(member.health.keyring == .unchecked)
        gate.open()
        opener.cancel()
        #expect(await pool.checkKeyring(member) == nil, "the read goes on and its answer is kept")
    }
}
