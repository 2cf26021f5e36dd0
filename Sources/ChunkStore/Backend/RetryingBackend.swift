import Foundation
import Synchronization

/// When and how often to try a failed provider request again.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// The first backoff; each retry doubles it, up to `maxDelay`. The wait is drawn uniformly
    /// from zero to that ("full jitter"), so many clients retrying at once spread out.
    public var baseDelay: Double
    public var maxDelay: Double
    /// A provider's Retry-After is honoured up to this many seconds.
    public var maxRetryAfter: Double

    public init(maxAttempts: Int = 5, baseDelay: Double = 0.2, maxDelay: Double = 8, maxRetryAfter: Double = 60) {
        precondition(maxAttempts >= 1 && baseDelay >= 0 && maxDelay >= baseDelay)
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
    }

    /// Seconds to wait before attempt `attempt + 1`, after `error` ended attempt `attempt`.
    func delay(after attempt: Int, error: BackendError) -> Double {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        let jittered = Double.random(in: 0...max(ceiling, 0))
        if case .throttled(_, let retryAfter?) = error { return max(jittered, min(retryAfter, maxRetryAfter)) }
        return jittered
    }
}

/// Wraps any backend: retries what the backend classified as transient or throttled, with
/// exponential backoff and jitter, and never what is permanent, full or not found; and holds the
/// provider to at most `maxConcurrent` requests at a time (free tiers throttle, and SSH servers
/// refuse bursts of connections).
public final class RetryingBackend: Backend {
    public let wrapped: any Backend
    public let policy: RetryPolicy
    private let gate: ConcurrencyGate
    private let counters = Mutex(Counters())

    public struct Counters: Sendable, Equatable {
        /// Requests sent to the wrapped backend, retries included.
        public var attempts = 0
        /// Of those, retries.
        public var retries = 0
    }

    public init(_ wrapped: any Backend, policy: RetryPolicy = .init(), maxConcurrent: Int = 8) {
        precondition(maxConcurrent >= 1)
        self.wrapped = wrapped
        self.policy = policy
        gate = ConcurrencyGate(permits: maxConcurrent)
    }

    public var location: String { wrapped.location }
    public var counts: Counters { counters.withLock { $0 } }

    public func put(_ name: String, data: [UInt8]) async throws {
        try await run { try await self.wrapped.put(name, data: data) }
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        try await run { try await self.wrapped.get(name, range: range) }
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        try await run { try await self.wrapped.head(name) }
    }

    public func delete(_ name: String) async throws {
        try await run { try await self.wrapped.delete(name) }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        try await run { try await self.wrapped.list(prefix: prefix, after: after, limit: limit) }
    }

    public func usage() async throws -> BackendUsage {
        try await run { try await self.wrapped.usage() }
    }

    /// Once, by `provider add`: not retried, so that a location that cannot be made ready says so at once.
    public func prepare() async throws { try await wrapped.prepare() }

    private func run<T: Sendable>(_ operation: @Sendable () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            counters.withLock { $0.attempts += 1; if attempt > 1 { $0.retries += 1 } }
            do {
                return try await gate.withPermit {
                    try Task.checkCancellation() // it may have waited for the permit past its cancellation
                    return try await operation()
                }
            } catch let error as BackendError where error.isRetryable {
                guard attempt < policy.maxAttempts else {
                    let note = " (gave up after \(attempt) attempt\(attempt == 1 ? "" : "s"))"
                    switch error {
                    case .throttled(let detail, let after): throw BackendError.throttled(detail + note, retryAfter: after)
                    default: throw BackendError.transient(error.description + note)
                    }
                }
                try await Task.sleep(nanoseconds: UInt64(policy.delay(after: attempt, error: error) * 1e9))
                attempt += 1
            }
        }
    }
}

/// A counting semaphore for async code: first come, first served.
final class ConcurrencyGate: Sendable {
    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(permits: Int) { state = Mutex(State(free: permits)) }

    func withPermit<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        let granted = state.withLock { state -> Bool in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }
        if granted { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst() // the permit passes straight to the next waiter
        }
        next?.resume()
    }
}

extension RetryingBackend: LeftoverListing {
    /// The wrapped backend's interrupted uploads, if it can leave any.
    public func leftovers(under prefix: String) async throws -> [String] {
        guard let listing = wrapped as? LeftoverListing else { return [] }
        return try await listing.leftovers(under: prefix)
    }
}

extension RetryingBackend: LeftoverSweeping {
    /// The wrapped backend's leftovers, if it can leave any.
    public func sweepLeftovers(olderThan seconds: Double) async throws -> (count: Int, bytes: Int64) {
        guard let sweeping = wrapped as? LeftoverSweeping else { return (0, 0) }
        return try await sweeping.sweepLeftovers(olderThan: seconds)
    }
}
