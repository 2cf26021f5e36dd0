import ChunkStore
import Foundation

extension Repository {
    public struct ProbeResult: Sendable {
        public let provider: String
        public let seconds: Double
        /// Nil when the provider answered with this repository's keyring; else why it takes no chunks.
        public let error: String?
    }

    /// Checks every provider's keyring (`ReplicatedPool.checkKeyring`), in parallel. One that answers
    /// with this repository's keyring has its breaker closed; one that does not answer has it opened, and
    /// one without the keyring is kept out of placement until it is back, so that nothing is placed there
    /// in this process. Records the health for a67 provider ls.
    public func probeProviders() async throws -> [ProbeResult] {
        let pool = try pool()
        let results = await withTaskGroup(of: ProbeResult.self) { group in
            for member in pool.members {
                group.addTask {
                    let started = ContinuousClock.now
                    let problem = await pool.checkKeyring(member, probe: true)
                    return ProbeResult(provider: member.name, seconds: started.duration(to: .now).seconds, error: problem)
                }
            }
            var results: [ProbeResult] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.provider < $1.provider }
        }
        await saveHealthOffPool()
        return results
    }

    /// Seconds between rounds of `watchProviders` in long-running processes.
    public static let providerWatchSeconds = 5.0

    /// One round of what a long-running process (a67 serve, a67 mount) does every few seconds: takes up
    /// providers another command added, drained or removed, and checks every provider's keyring.
    /// Returns what changed, in words for the process's log; records the health when a provider's
    /// keyring went missing or came back, so that a67 provider ls and a67 status say so.
    public func watchProviders() async -> [String] {
        var lines: [String] = []
        _ = try? refreshPoolIfProvidersChanged()
        if reloadedUnreported.withLock({ reloaded in defer { reloaded = false }; return reloaded }) {
            lines.append("the providers changed; new uploads use the new set")
        }
        guard let pool = try? pool() else { return lines }
        await withTaskGroup(of: Void.self) { group in
            for member in pool.members { group.addTask { _ = await pool.checkKeyring(member) } }
        }
        // Compared with what this process last said (a placement may have found it first).
        var changed = false
        for member in pool.members {
            let problem = member.health.problem
            guard reportedProblems.withLock({ reported in
                defer { reported[member.id] = problem }
                return reported[member.id] != problem
            }) else { continue }
            changed = true
            if let problem {
                lines.append("provider \(member.name) (\(member.backend.location)) takes no chunks: \(problem)")
            } else {
                lines.append("provider \(member.name) (\(member.backend.location)) has its keyring again and takes chunks")
            }
        }
        if changed { await saveHealthOffPool() }
        return lines
    }
}
