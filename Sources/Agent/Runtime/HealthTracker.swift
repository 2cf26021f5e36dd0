import Compute

/// Whether an instance counts as healthy, from its checks' results in order: healthy after
/// `healthyThreshold` passes in a row, unhealthy again after `unhealthyThreshold` failures in a row;
/// failures within `grace` of the start do not count. A plain value: the supervisor feeds it results
/// and the time since the start.
public struct HealthTracker: Sendable, Equatable {
    public let check: HealthCheck
    public private(set) var healthy: Bool
    public private(set) var passes = 0
    public private(set) var failures = 0

    /// An instance just started: healthy at once when there is no check (`.running`), else not yet.
    public init(check: HealthCheck) {
        self.check = check
        healthy = check.probe == .running
    }

    /// Records one check's result; returns whether `healthy` changed.
    @discardableResult
    public mutating func record(passed: Bool, sinceStart: Duration) -> Bool {
        let before = healthy
        if passed {
            passes += 1
            failures = 0
            if passes >= max(1, check.healthyThreshold) { healthy = true }
        } else {
            guard sinceStart >= check.grace else { return false }
            failures += 1
            passes = 0
            if failures >= max(1, check.unhealthyThreshold) { healthy = false }
        }
        return healthy != before
    }
}
