import ChunkStore
import Foundation
import Synchronization

/// When a provider's circuit breaker opens and how long it stays open.
public struct BreakerPolicy: Sendable, Equatable {
    /// Consecutive failed requests that open the breaker.
    public var failureThreshold: Int
    /// Seconds an open breaker refuses requests before it lets one probe through (half-open).
    public var openSeconds: Double

    public init(failureThreshold: Int = 5, openSeconds: Double = 30) {
        self.failureThreshold = max(1, failureThreshold)
        self.openSeconds = max(0, openSeconds)
    }

    /// Catalog settings that override the defaults (a67 config set breaker.failures 3, ...).
    public static let failuresSetting = "breaker.failures"
    public static let openSecondsSetting = "breaker.open_seconds"
}

/// One provider's health as this process sees it: a circuit breaker (closed, open, half-open) over
/// its recent requests, its error rate and latency.
///
/// Closed: requests flow; `failureThreshold` consecutive failures open it. Open: requests are refused
/// without being sent (a dead provider costs nothing) until `openSeconds` pass. Half-open: one
/// request, the health probe, goes through; success closes the breaker, failure opens it again.
///
/// Apart from the breaker, whether the provider holds this repository's keyring (see
/// `Repository.checkKeyring`): one that does not (a folder emptied or replaced, a disk not mounted,
/// a bucket emptied, another repository's) is open whatever its requests did, and stays open, with no
/// half-open probe, until a keyring check finds the keyring again.
public final class ProviderHealth: Sendable {
    public typealias State = BreakerState

    /// What this process knows of the provider's keyring.
    public enum Keyring: Sendable, Equatable {
        /// Not checked yet in this process, or a put failed in a way that asks for a new check.
        case unchecked
        /// The provider holds this repository's keyring.
        case present
        /// It does not: why, in words for the user.
        case wrong(String)
    }

    private struct Inner {
        var state = State.closed
        var consecutiveFailures = 0
        var openedAt: ContinuousClock.Instant?
        var probeInFlight = false
        /// The last outcomes, true for a failure.
        var outcomes: [Bool] = []
        /// Seconds taken by recent successful chunk reads.
        var readLatencies: [Double] = []
        var requests = 0
        /// What the provider said when it reported being full, once it has.
        var full: String?
        /// The last health probe's round trip: kept apart from chunk reads, whose size differs.
        var probeSeconds: Double?
        var keyring = Keyring.unchecked
        /// What the check that opened the breaker got (see `trip`), until a request succeeds.
        var tripReason: String?
    }

    public let policy: BreakerPolicy
    private let inner = Mutex(Inner())
    private static let window = 64

    public init(policy: BreakerPolicy = .init()) { self.policy = policy }

    public var state: State { inner.withLock { Self.current($0, policy) } }

    private static func current(_ inner: Inner, _ policy: BreakerPolicy) -> State {
        if case .wrong = inner.keyring { return .open }
        if inner.state == .open, let openedAt = inner.openedAt, openedAt.duration(to: .now) >= .seconds(policy.openSeconds) {
            return .halfOpen
        }
        return inner.state
    }

    /// Whether a request may go to the provider now. In half-open state, only one (the probe) may.
    public func admit() -> Bool {
        inner.withLock { inner in
            switch Self.current(inner, policy) {
            case .closed:
                return true
            case .open:
                return false
            case .halfOpen:
                guard !inner.probeInFlight else { return false }
                inner.state = .halfOpen
                inner.probeInFlight = true
                return true
            }
        }
    }

    /// Whether a placement should consider the provider (admits without claiming the probe).
    public var isAvailable: Bool { inner.withLock { Self.current($0, policy) != .open && $0.full == nil } }

    /// The provider said it is out of space: no more chunks go there in this process. (An answer, so
    /// not a failure of the breaker's kind.)
    public func markFull(_ detail: String) {
        inner.withLock { inner in
            inner.full = detail
            inner.requests += 1
            inner.probeInFlight = false
            if inner.state == .halfOpen {
                inner.state = .closed
                inner.openedAt = nil
            }
        }
    }

    /// The provider's own words when it said it is full.
    public var fullDetail: String? { inner.withLock { $0.full } }

    public func succeeded(readSeconds: Double? = nil, probeSeconds: Double? = nil) {
        inner.withLock { inner in
            if let probeSeconds { inner.probeSeconds = probeSeconds }
            inner.requests += 1
            inner.consecutiveFailures = 0
            inner.tripReason = nil
            inner.state = .closed
            inner.openedAt = nil
            inner.probeInFlight = false
            Self.push(&inner.outcomes, false)
            if let readSeconds { Self.push(&inner.readLatencies, readSeconds) }
        }
    }

    public func failed() {
        inner.withLock { inner in
            inner.requests += 1
            inner.consecutiveFailures += 1
            Self.push(&inner.outcomes, true)
            let wasProbe = inner.state == .halfOpen
            inner.probeInFlight = false
            if wasProbe || inner.consecutiveFailures >= policy.failureThreshold {
                inner.state = .open
                inner.openedAt = .now
            }
        }
    }

    /// Opens the breaker now (a health probe found the provider down, with `reason`).
    public func trip(_ reason: String? = nil) {
        inner.withLock { inner in
            inner.tripReason = reason
            inner.requests += 1
            Self.push(&inner.outcomes, true)
            inner.state = .open
            inner.openedAt = .now
            inner.probeInFlight = false
        }
    }

    public var keyring: Keyring { inner.withLock { $0.keyring } }

    /// Why a health check opened the breaker, while it is open for that.
    public var tripReason: String? {
        inner.withLock { Self.current($0, policy) == .open ? $0.tripReason : nil }
    }

    /// Why nothing goes to the provider whatever its breaker says (its keyring), or nil.
    public var problem: String? {
        inner.withLock { inner in
            if case .wrong(let why) = inner.keyring { return why }
            return nil
        }
    }

    /// Records what a keyring check found.
    public func keyringChecked(_ found: Keyring) { inner.withLock { $0.keyring = found } }

    /// A put failed in a way a missing folder or bucket would explain: check the keyring again before
    /// the next placement there.
    public func recheckKeyring() {
        inner.withLock { inner in
            if inner.keyring == .present { inner.keyring = .unchecked }
        }
    }

    /// A request that was let through but not finished (cancelled): frees the probe slot.
    public func abandoned() { inner.withLock { $0.probeInFlight = false } }

    /// Appends to a sliding window of the last `window` values.
    private static func push<T>(_ list: inout [T], _ value: T) {
        list.append(value)
        if list.count > window { list.removeFirst(list.count - window) }
    }

    public var errorRate: Double {
        inner.withLock { inner in
            inner.outcomes.isEmpty ? 0 : Double(inner.outcomes.filter { $0 }.count) / Double(inner.outcomes.count)
        }
    }

    public var requests: Int { inner.withLock { $0.requests } }

    /// The median of recent chunk reads, for ranking replicas; nil before any.
    public var typicalReadSeconds: Double? { inner.withLock { Self.percentile($0.readLatencies, 0.5) } }

    /// The 95th percentile of recent chunk reads: a read slower than this gets a hedged second request.
    /// Nil until there are enough samples to say.
    public var readP95: Double? {
        inner.withLock { $0.readLatencies.count >= 8 ? Self.percentile($0.readLatencies, 0.95) : nil }
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded(.up)))]
    }

    /// What `a67 provider ls` shows.
    public func record() -> ProviderHealthRecord {
        ProviderHealthRecord(breaker: state, latencySeconds: typicalReadSeconds ?? inner.withLock { $0.probeSeconds },
                             errorRate: errorRate,
                             requests: requests, checkedAt: Catalog.now(), problem: problem)
    }
}
