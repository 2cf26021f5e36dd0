/// When the proxy stops sending an instance traffic on its own, before the controller notices:
/// after `consecutiveFailures` connection failures in a row (refused, unreachable, timed out;
/// an instance's 5xx answers are the app's business and do not count). See `OutlierState`.
public struct OutlierPolicy: Sendable, Hashable {
    /// Connection failures in a row that eject an instance.
    public var consecutiveFailures: Int
    /// How long the first ejection lasts; each ejection in a row without a success between doubles it.
    public var baseEjection: Duration
    /// The longest an ejection lasts.
    public var maxEjection: Duration

    public init(consecutiveFailures: Int = 3, baseEjection: Duration = .seconds(10), maxEjection: Duration = .seconds(300)) {
        self.consecutiveFailures = max(1, consecutiveFailures)
        self.baseEjection = baseEjection
        self.maxEjection = max(baseEjection, maxEjection)
    }

    /// How long the `times`th ejection in a row lasts (from 1).
    func ejection(_ times: Int) -> Duration {
        var length = baseEjection
        for _ in 1..<max(1, times) where length < maxEjection { length = length * 2 }
        return min(length, maxEjection)
    }
}

/// Passive outlier detection for one instance: a state machine fed with what happened to the
/// connections the proxy made to it, and the time, as values (no clock inside; tested without I/O).
///
/// - `serving(failures)`: in rotation; `failures` connection failures in a row so far.
/// - `ejected(until, times)`: out of rotation until `until`, the `times`th ejection in a row.
///   Once `until` has passed it is in rotation again, on probation: its first connection decides.
///   A success puts it back to `serving(0)`; a failure ejects it again, for twice as long.
///
/// Failures reported while it is ejected and `until` has not passed come from requests sent before
/// the ejection and change nothing.
public enum OutlierState: Sendable, Hashable {
    case serving(failures: Int)
    case ejected(until: ContinuousClock.Instant, times: Int)

    public static let fresh = OutlierState.serving(failures: 0)

    /// Whether the instance is out of rotation at `now`.
    public func isEjected(at now: ContinuousClock.Instant) -> Bool {
        if case .ejected(let until, _) = self { return now < until }
        return false
    }

    /// A connection to the instance worked.
    public mutating func succeeded() { self = .fresh }

    /// A connection to the instance failed at `now`. Returns true when this ejects it.
    @discardableResult
    public mutating func failed(at now: ContinuousClock.Instant, policy: OutlierPolicy) -> Bool {
        switch self {
        case .serving(let failures):
            guard failures + 1 >= policy.consecutiveFailures else {
                self = .serving(failures: failures + 1)
                return false
            }
            self = .ejected(until: now + policy.ejection(1), times: 1)
            return true
        case .ejected(let until, let times):
            guard now >= until else { return false }
            self = .ejected(until: now + policy.ejection(times + 1), times: times + 1)
            return true
        }
    }
}
