import ChunkStore
import Foundation
import Synchronization

/// Whether a provider still is this repository's: it holds the repository's keyring. A folder that
/// was emptied or replaced by an empty one, a disk that is not mounted under its folder, or an
/// emptied bucket answers requests like any provider, so the breaker alone would keep placing chunks
/// there. Every process checks the same way, with `checkKeyring`: before it first places a chunk on a
/// provider, after a put there failed as a missing folder or bucket would (`asksForKeyringCheck`), every
/// few seconds in long-running processes (`Repository.watchProviders`) and in every probe
/// (`Repository.probeProviders`). A provider without the keyring takes nothing until a check finds it
/// again (see `ProviderHealth.Keyring`).
extension ReplicatedPool {
    /// Reads `member`'s keyring, records what it found on the member's health, and returns why the
    /// provider cannot take chunks now (no keyring, another repository's, or no answer), or nil.
    /// Concurrent checks of one provider share one read. As a `probe` (a67 provider ls --probe, repair,
    /// scrub, drain), the answer also closes or opens the provider's breaker; otherwise (a watcher's
    /// round, the check before a first placement) the breaker stays what the provider's own requests
    /// made it: one slow GET does not open it, and a readable keyring does not close it over failing puts.
    public func checkKeyring(_ member: Member, probe: Bool = false) async -> String? {
        await checkKeyring(member, probe: probe, unlessChecked: false)
    }

    /// `unlessChecked`: a check that another one finished since the caller looked reuses its answer
    /// (the keyring is recorded before a check leaves `keyringChecks`), so that concurrent first
    /// placements read the keyring once.
    private func checkKeyring(_ member: Member, probe: Bool, unlessChecked: Bool) async -> String? {
        let task: Task<String?, Never>? = keyringChecks.withLock { running in
            if let task = running[member.id] { return task }
            if unlessChecked && member.health.keyring != .unchecked { return nil }
            let task = Task { await self.readKeyring(member, probe: probe) }
            running[member.id] = task
            return task
        }
        guard let task else { return member.health.problem }
        let problem = await Self.value(of: task)
        keyringChecks.withLock { running in
            if running[member.id] == task { running[member.id] = nil }
        }
        return problem
    }

    private func readKeyring(_ member: Member, probe: Bool) async -> String? {
        let started = ContinuousClock.now
        let found: ProviderHealth.Keyring
        do {
            let bytes = try await member.backend.get(Keyring.objectName)
            let seconds = started.duration(to: .now).seconds
            if probe { member.health.succeeded(probeSeconds: seconds) }
            if let repositoryID {
                do {
                    let keyring = try Keyring(decoding: bytes, source: "\(member.backend.location)/\(Keyring.objectName)")
                    found = keyring.repositoryID == repositoryID ? .present
                        : .wrong("it holds another repository's keyring: was its location given to another repository?"
                                 + " Nothing is placed there until this repository's keyring is back")
                } catch {
                    found = .wrong("its keyring is damaged (\(error)): nothing is placed there until it is restored")
                }
            } else {
                found = .present
            }
        } catch BackendError.notFound {
            if probe { member.health.succeeded(probeSeconds: started.duration(to: .now).seconds) }
            found = .wrong("it holds no keyring of this repository: was its folder or bucket emptied or replaced, or is a disk"
                           + " not mounted there? Nothing is placed there until the keyring is back")
        } catch {
            // No answer: the breaker's business; what the keyring is stays unknown.
            if probe { member.health.trip("\(error)") }
            return "it does not answer: \(error)"
        }
        member.health.keyringChecked(found)
        return member.health.problem
    }

    /// The check's answer, or, when the waiting task is cancelled first, a note saying so at once: the
    /// shared check is not cancelled (others may wait for it) and ends in the background, so that a
    /// watcher stopped at shutdown does not hold the process until a slow provider answers.
    private static func value(of task: Task<String?, Never>) async -> String? {
        let waiter = Waiter()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiter.set(continuation)
                if Task.isCancelled { waiter.resume("the check was cancelled") }
                Task { waiter.resume(await task.value) }
            }
        } onCancel: {
            waiter.resume("the check was cancelled")
        }
    }

    /// A continuation resumed by whichever comes first.
    private final class Waiter: Sendable {
        private let slot = Mutex<CheckedContinuation<String?, Never>?>(nil)
        func set(_ continuation: CheckedContinuation<String?, Never>) { slot.withLock { $0 = continuation } }
        func resume(_ value: String?) { slot.withLock { $0.take() }?.resume(returning: value) }
    }

    /// Checks the keyring of each of `members` not yet checked in this process (and whose breaker is
    /// not open) before a placement considers them.
    func checkKeyringsFirst(_ members: [Member]) async {
        guard repositoryID != nil else { return }
        let due = members.filter { $0.health.keyring == .unchecked && $0.health.state != .open }
        guard !due.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            for member in due { group.addTask { _ = await self.checkKeyring(member, probe: false, unlessChecked: true) } }
        }
    }

    /// Whether a failed put should make the next placement check the provider's keyring again: the
    /// answers a missing folder or bucket gives (not found, refused for good), not a slow or full one.
    static func asksForKeyringCheck(_ error: BackendError?) -> Bool {
        switch error {
        case .notFound?, .permanent?: return true
        default: return false
        }
    }
}
