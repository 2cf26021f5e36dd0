import ChunkStore
import Foundation

extension Repository {
    public struct ProbeResult: Sendable {
        public let provider: String
        public let seconds: Double
        /// Nil when the provider answered.
        public let error: String?
    }

    /// Asks every provider for its keyring (a HEAD), in parallel. A provider that answers has its
    /// breaker closed; one that does not has it opened, so that nothing is placed there in this process.
    /// Records the health for a67 provider ls.
    public func probeProviders() async throws -> [ProbeResult] {
        let pool = try pool()
        let results = await withTaskGroup(of: ProbeResult.self) { group in
            for member in pool.members {
                group.addTask {
                    let started = ContinuousClock.now
                    do {
                        _ = try await member.backend.head(Keyring.objectName)
                        let seconds = started.duration(to: .now).seconds
                        member.health.succeeded(probeSeconds: seconds)
                        return ProbeResult(provider: member.name, seconds: seconds, error: nil)
                    } catch {
                        member.health.trip()
                        return ProbeResult(provider: member.name, seconds: started.duration(to: .now).seconds, error: "\(error)")
                    }
                }
            }
            var results: [ProbeResult] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.provider < $1.provider }
        }
        saveHealth()
        return results
    }
}
