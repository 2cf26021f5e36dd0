/// Which ports to hand an instance: free ones from the agent's range, never one another instance
/// holds or one something else on the machine listens on. The choice is pure (tested with a fake
/// `isFree`); the supervisor passes `LocalSockets.isPortFree`, which binds to find out.
public struct PortPicker: Sendable, Equatable {
    public let range: ClosedRange<Int>
    /// Where the next search starts: it moves on past each port handed out, so a port just freed is
    /// not handed out again at once (a proxy may still hold connections to its last owner).
    public private(set) var cursor: Int

    public init(range: ClosedRange<Int> = 20000...29999) {
        self.range = range
        cursor = range.lowerBound
    }

    /// `count` distinct ports from the range, none in `taken` and each `isFree`; nil when the range
    /// does not hold that many.
    public mutating func pick(_ count: Int, taken: Set<Int>, isFree: (Int) -> Bool) -> [Int]? {
        var picked: [Int] = []
        var port = cursor
        for _ in 0..<range.count where picked.count < count {
            if !taken.contains(port) && isFree(port) { picked.append(port) }
            port = port == range.upperBound ? range.lowerBound : port + 1
        }
        guard picked.count == count else { return nil }
        cursor = port
        return picked
    }
}
