/// How long to wait before starting an instance again after it exited: `base`, doubling with each
/// exit in a row up to `cap`, back to `base` once the instance had run healthy for `resetAfter`
/// before it exited. A crash loop so costs the node little, and an instance that ran well for an
/// hour and then crashed comes back at once.
public struct RestartBackoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration
    public var resetAfter: Duration
    /// Exits in a row so far (since the last reset).
    public private(set) var exits: Int = 0

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(60), resetAfter: Duration = .seconds(60)) {
        self.base = base
        self.cap = cap
        self.resetAfter = resetAfter
    }

    /// The wait before the next start, after an exit of a run that had been healthy for `healthyFor`
    /// (zero when it never was).
    public mutating func delay(afterHealthyFor healthyFor: Duration) -> Duration {
        if healthyFor >= resetAfter { exits = 0 }
        var delay = base
        for _ in 0..<min(exits, 62) where delay < cap { delay *= 2 }
        exits += 1
        return min(delay, cap)
    }
}
