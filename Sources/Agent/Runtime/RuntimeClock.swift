/// The supervisor's time: a monotonic reading as a `Duration` since the supervisor began, and a way
/// to sleep. Made from any `Clock`, so tests may pass their own; deadlines inside the supervisor are
/// plain `Duration` values, compared without I/O.
public struct RuntimeClock: Sendable {
    public let now: @Sendable () -> Duration
    public let sleep: @Sendable (Duration) async throws -> Void

    public init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let start = clock.now
        now = { start.duration(to: clock.now) }
        sleep = { try await clock.sleep(for: $0) }
    }

    public init(now: @escaping @Sendable () -> Duration, sleep: @escaping @Sendable (Duration) async throws -> Void) {
        self.now = now
        self.sleep = sleep
    }
}
