import ChunkStore
import Foundation
import Synchronization

/// A `ChunkPool` over several providers.
///
/// Writes: a chunk goes to the best-ranked providers of its weighted rendezvous order (weights follow
/// each provider's declared capacity, its quota), never two in one failure group, skipping providers
/// whose breaker is open, that are draining, full or at their quota, all in parallel. A provider that fails
/// is replaced by the next in the order, so one dead provider does not fail a put while others have
/// room.
///
/// Reads: replicas are tried healthiest and fastest first; each is verified by `open`. On an error or
/// bad bytes the next replica is tried and a damaged or missing copy is reported to `onDamage` (the
/// repository forgets that location, which queues the chunk for repair). When the first replica is
/// slower than its recent 95th percentile, a hedged request goes to the next one and the first good
/// answer wins.
public final class ReplicatedPool: ChunkPool {
    public struct Member: Sendable {
        public let id: Int64
        public let name: String
        public let backend: any Backend
        public let quota: Int64?
        /// The failure domain; two replicas never share one.
        public let group: String
        /// Draining providers take no new chunks but are still read.
        public let draining: Bool
        public let health: ProviderHealth

        public init(id: Int64, name: String, backend: any Backend, quota: Int64?, group: String? = nil,
                    draining: Bool = false, health: ProviderHealth = ProviderHealth()) {
            self.id = id
            self.name = name
            self.backend = backend
            self.quota = quota
            self.group = group ?? name
            self.draining = draining
            self.health = health
        }
    }

    /// Why a replica was given up on.
    public enum Damage: Sendable, Equatable {
        /// The provider answered that the chunk is not there.
        case missing
        /// The bytes failed verification.
        case corrupt
    }

    /// The providers as last loaded; replaced whole when they change (see `reload`), so that one
    /// operation works on one consistent set.
    private struct Membership: Sendable {
        let members: [Member]
        let byID: [Int64: Member]
        init(_ members: [Member]) {
            self.members = members
            byID = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) })
        }
        /// Providers that accept new chunks.
        var writable: [Member] { members.filter { !$0.draining } }
    }

    private let membership: Mutex<Membership>
    private let placement = RendezvousPlacement()
    /// Bytes placed on each provider, including writes in flight (reserved before they start).
    private let used: Mutex<[Int64: Int64]>
    private let onDamage: @Sendable (ChunkID, Int64, Damage) async -> Void
    /// Called before every placement: reloads the providers when another process changed them.
    private let beforePlacing: @Sendable () -> Void
    /// The repository whose keyring a provider must hold; nil for pools that check none (tests).
    let repositoryID: [UInt8]?
    /// Keyring checks in flight, so that concurrent callers share one.
    let keyringChecks = Mutex<[Int64: Task<String?, Never>]>([:])
    /// Hedged reads started (for tests and status).
    private let hedges = Atomic<Int>(0)

    /// `used`: the bytes the catalog already places on each provider. `repositoryID`: the ID a
    /// provider's keyring must carry before a chunk is placed there (nil: not checked).
    public init(members: [Member], used: [Int64: Int64], repositoryID: [UInt8]? = nil,
                beforePlacing: @escaping @Sendable () -> Void = {},
                onDamage: @escaping @Sendable (ChunkID, Int64, Damage) async -> Void = { _, _, _ in }) {
        membership = Mutex(Membership(members))
        self.used = Mutex(used)
        self.repositoryID = repositoryID
        self.beforePlacing = beforePlacing
        self.onDamage = onDamage
    }

    /// Replaces the providers (another process added, drained or removed one). Operations already
    /// running finish on the set they started with; `used` is the catalog's count afresh.
    public func reload(members: [Member], used: [Int64: Int64]) {
        membership.withLock { $0 = Membership(members) }
        self.used.withLock { $0 = used }
    }

    public var members: [Member] { membership.withLock { $0.members } }

    public func member(_ id: Int64) -> Member? { membership.withLock { $0.byID[id] } }

    public var hedgedReads: Int { hedges.load(ordering: .relaxed) }

    public func replicaCount(for replicas: Int) -> Int {
        Self.replicaCount(for: replicas, membership.withLock { $0 })
    }

    private static func replicaCount(for replicas: Int, _ m: Membership) -> Int {
        min(max(1, replicas), Set(m.writable.map(\.group)).count)
    }

    /// Placement weights: a provider with a quota weighs its quota relative to the largest quota; one
    /// without weighs as much as the largest. The weights depend only on declared limits, so a chunk's
    /// ranking does not drift as providers fill (rebalance converges); free room is a filter instead:
    /// a provider whose quota has no room for a chunk is passed over.
    private static func candidates(_ m: Membership, excluding: Set<Int64>) -> [RendezvousPlacement.Candidate] {
        let largest = Double(m.members.compactMap(\.quota).max() ?? 1)
        return m.writable.filter { !excluding.contains($0.id) }.map { member in
            let weight = member.quota.map { Double($0) / max(largest, 1) } ?? 1
            return .init(id: member.id, key: member.name, weight: max(weight, 1e-9))
        }
    }

    /// The providers `id` should live on now, best first (for rebalance): the top of its ranking, one
    /// per failure group.
    public func idealPlacement(_ id: ChunkID, replicas: Int) -> [Int64] {
        let m = membership.withLock { $0 }
        var groups: Set<String> = []
        var chosen: [Int64] = []
        for candidate in placement.rank(id, among: Self.candidates(m, excluding: [])) where chosen.count < Self.replicaCount(for: replicas, m) {
            let member = m.byID[candidate.id]!
            if groups.insert(member.group).inserted { chosen.append(member.id) }
        }
        return chosen
    }

    private enum WriteOutcome: Sendable {
        case stored(Int64)
        case failed(Int64, BackendError?, String)
    }

    public func store(_ id: ChunkID, sealed: [UInt8], policy: ReplicaPolicy, existing: [Int64]) async throws -> [Int64] {
        beforePlacing()
        let m = membership.withLock { $0 }
        let byID = m.byID
        guard !m.members.isEmpty else {
            throw StoreError(.providerFailure, "this repository has no providers: add one with a67 provider add NAME --dir PATH")
        }
        let wanted = Self.replicaCount(for: policy.replicas, m)
        let minimum = min(policy.minimum, wanted)
        let need = wanted - existing.count
        guard need > 0 else { return [] }
        let ranked = placement.rank(id, among: Self.candidates(m, excluding: Set(existing))).map { byID[$0.id]! }
        await checkKeyringsFirst(ranked)
        let size = Int64(sealed.count)
        var groupsTaken = Set(existing.compactMap { byID[$0]?.group })
        var tried: Set<Int64> = []
        var skipped: [String: String] = [:]  // name -> why it was passed over
        var failures: [String] = []
        var stored: [Int64] = []

        await withTaskGroup(of: WriteOutcome.self) { group in
            var inFlight = 0
            /// Starts a write on the best provider not yet tried whose group is free; false if none is left.
            func launchNext() -> Bool {
                for member in ranked where !tried.contains(member.id) && !groupsTaken.contains(member.group) {
                    if let detail = member.health.fullDetail {
                        skipped[member.name] = "it answered earlier that it is full (\(detail))"
                        continue
                    }
                    if let problem = member.health.problem {
                        skipped[member.name] = problem
                        continue
                    }
                    if let reason = member.health.tripReason {
                        failures.append("\(member.name) (\(member.backend.location)): \(reason)")
                        tried.insert(member.id)
                        continue
                    }
                    if !member.health.isAvailable {
                        skipped[member.name] = "its circuit breaker is open after repeated failures"
                        continue
                    }
                    guard reserve(member, size) else {
                        skipped[member.name] = "it is at its quota"
                        tried.insert(member.id)
                        continue
                    }
                    guard member.health.admit() else {
                        release([member], size)
                        skipped[member.name] = "its circuit breaker is open after repeated failures"
                        continue
                    }
                    tried.insert(member.id)
                    skipped[member.name] = nil
                    groupsTaken.insert(member.group)
                    group.addTask {
                        do {
                            try await member.backend.put(id.objectName, data: sealed)
                            return .stored(member.id)
                        } catch {
                            return .failed(member.id, error as? BackendError, "\(error)")
                        }
                    }
                    inFlight += 1
                    return true
                }
                return false
            }
            for _ in 0..<need where !launchNext() { break }
            while let outcome = await group.next() {
                inFlight -= 1
                switch outcome {
                case .stored(let provider):
                    byID[provider]!.health.succeeded()
                    stored.append(provider)
                case .failed(let provider, let error, let message):
                    let member = byID[provider]!
                    if case .full = error { member.health.markFull(message) } else { member.health.failed() }
                    if Self.asksForKeyringCheck(error) { member.health.recheckKeyring() }
                    release([member], size)
                    groupsTaken.remove(member.group)
                    failures.append("\(member.name) (\(member.backend.location)): \(message)")
                    if stored.count + inFlight < need && !Task.isCancelled { _ = launchNext() }
                }
            }
        }
        let total = existing.count + stored.count
        if total >= minimum && (total >= wanted || stored.count > 0 || existing.count > 0) {
            return stored
        }
        release(stored.compactMap { byID[$0] }, size)
        var reasons = failures
        reasons += skipped.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        let detail = reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; ")
        throw StoreError(.providerFailure, "chunk \(id.short) could not be stored on enough providers: it has \(total) of \(wanted) replicas, at least \(minimum) needed\(detail). Check the providers (a67 provider ls --probe), raise a quota or add a provider")
    }

    /// Stores `sealed` on exactly `targets` (rebalance moves a replica to a chosen provider), in
    /// parallel, skipping one whose quota has no room; returns those that succeeded.
    public func store(_ id: ChunkID, sealed: [UInt8], on targets: [Int64]) async -> [Int64] {
        beforePlacing()
        let size = Int64(sealed.count)
        let chosen = targets.compactMap { member($0) }
        await checkKeyringsFirst(chosen)
        return await withTaskGroup(of: Int64?.self) { group in
            var reserved: [Int64] = []
            for member in chosen where member.health.problem == nil {
                guard reserve(member, size) else { continue }
                reserved.append(member.id)
                group.addTask {
                    do {
                        try await member.backend.put(id.objectName, data: sealed)
                        member.health.succeeded()
                        return member.id
                    } catch {
                        member.health.failed()
                        if Self.asksForKeyringCheck(error as? BackendError) { member.health.recheckKeyring() }
                        return nil
                    }
                }
            }
            var stored: [Int64] = []
            for await result in group {
                if let result { stored.append(result) }
            }
            release(chosen.filter { reserved.contains($0.id) && !stored.contains($0.id) }, size)
            return stored
        }
    }

    /// Deletes `id`'s copy on `provider` (after the catalog stopped pointing at it).
    public func deleteCopy(_ id: ChunkID, on provider: Int64, size: Int) async throws {
        guard let member = member(provider) else { return }
        try await member.backend.delete(id.objectName)
        used.withLock { $0[provider, default: 0] -= Int64(size) }
    }

    /// Reserves room for `size` bytes on a provider under its quota; false when it has none.
    private func reserve(_ member: Member, _ size: Int64) -> Bool {
        used.withLock { used in
            let now = used[member.id, default: 0]
            if let quota = member.quota, now + size > quota { return false }
            used[member.id] = now + size
            return true
        }
    }

    private func release(_ members: [Member], _ size: Int64) {
        used.withLock { used in for member in members { used[member.id, default: 0] -= size } }
    }

    // MARK: - Reads

    private enum ReadOutcome<T: Sendable>: Sendable {
        case opened(T)
        case failed(String, integrity: Bool)
        /// The hedge timer armed after the `launch`-th read fired.
        case hedge(launch: Int)
    }

    /// `locations` in the order to read them: providers whose breaker admits requests first, then the
    /// faster ones (by their recent median read), ties broken by the chunk's rendezvous order.
    func readOrder(_ id: ChunkID, _ locations: [Int64]) -> [Member] {
        let byID = membership.withLock { $0.byID }
        let ranked = placement.rank(id, among: locations.compactMap { byID[$0] }.map { .init(id: $0.id, key: $0.name) })
        let indexed = ranked.enumerated().map { (index: $0.offset, member: byID[$0.element.id]!) }
        return indexed.sorted { a, b in
            let aUp = a.member.health.state != .open, bUp = b.member.health.state != .open
            if aUp != bUp { return aUp }
            let aTime = a.member.health.typicalReadSeconds, bTime = b.member.health.typicalReadSeconds
            if let aTime, let bTime, abs(aTime - bTime) > 0.25 * min(aTime, bTime) { return aTime < bTime }
            return a.index < b.index
        }.map(\.member)
    }

    /// One read of `id` from `member`, verified by `open`.
    private func attempt<T: Sendable>(_ id: ChunkID, _ member: Member,
                                      _ open: @escaping @Sendable ([UInt8]) throws -> T) async -> ReadOutcome<T> {
        let started = ContinuousClock.now
        let sealed: [UInt8]
        do {
            sealed = try await member.backend.get(id.objectName, range: nil)
        } catch let error as BackendError {
            if case .notFound = error {
                member.health.succeeded()
                await onDamage(id, member.id, .missing)
                return .failed("\(member.name): \(error)", integrity: true)
            }
            if Task.isCancelled { member.health.abandoned() } else { member.health.failed() }
            return .failed("\(member.name): \(error)", integrity: false)
        } catch {
            member.health.abandoned()
            return .failed("\(member.name): \(error)", integrity: false)
        }
        member.health.succeeded(readSeconds: started.duration(to: .now).seconds)
        do {
            return .opened(try open(sealed))
        } catch let error as StoreError {
            if error.code == .integrity { await onDamage(id, member.id, .corrupt) }
            return .failed("\(member.name): \(error.message)", integrity: error.code == .integrity)
        } catch {
            return .failed("\(member.name): \(error)", integrity: false)
        }
    }

    public func fetch<T: Sendable>(_ id: ChunkID, from locations: [Int64],
                                   open: @escaping @Sendable ([UInt8]) throws -> T) async throws -> T {
        let order = readOrder(id, locations)
        var failures: [String] = []
        var judged = 0  // replicas found missing or bad
        // Reads and hedge timers are unstructured tasks reporting to one stream, so that the first
        // verified answer returns at once, even while a losing read is stuck in a blocking call (a
        // directory read cannot be interrupted); the losers are cancelled and finish on their own.
        let (stream, continuation) = AsyncStream<ReadOutcome<T>>.makeStream()
        var tasks: [Task<Void, Never>] = []
        defer {
            for task in tasks { task.cancel() }
            continuation.finish()
        }
        var next = 0
        var running = 0
        /// Starts a read from the next replica; one whose breaker is open is passed over unless it is
        /// the last one left. False when none is left.
        func launch() -> Bool {
            var chosen: Member?
            while next < order.count, chosen == nil {
                let member = order[next]
                next += 1
                if member.health.admit() || next == order.count {
                    chosen = member
                } else {
                    failures.append("\(member.name): skipped, its circuit breaker is open")
                }
            }
            guard let member = chosen else { return false }
            running += 1
            tasks.append(Task { continuation.yield(await self.attempt(id, member, open)) })
            // A hedged request to the next replica if this one is slower than its usual 95th percentile.
            if next < order.count, let p95 = member.health.readP95 {
                let launched = next
                tasks.append(Task {
                    try? await Task.sleep(for: .seconds(max(p95, 0.002)))
                    if !Task.isCancelled { continuation.yield(.hedge(launch: launched)) }
                })
            }
            return true
        }
        if launch() {
            reading: for await outcome in stream {
                switch outcome {
                case .opened(let value):
                    return value
                case .failed(let message, let bad):
                    running -= 1
                    failures.append(message)
                    if bad { judged += 1 }
                    if Task.isCancelled || (!launch() && running == 0) { break reading }
                case .hedge(let launched):
                    // Only the timer of the latest read counts, and only while it is still out.
                    if launched == next && running > 0 && !Task.isCancelled && launch() {
                        hedges.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        try Task.checkCancellation()
        if failures.isEmpty { failures.append("no provider of this repository holds it") }
        // An integrity failure only when every replica was found missing or bad: one that could not be
        // reached may still be good.
        let integrity = judged > 0 && judged == order.count
        throw StoreError(integrity ? .integrity : .providerFailure,
                         "chunk \(id.short) could not be read: \(failures.joined(separator: "; "))")
    }
}
