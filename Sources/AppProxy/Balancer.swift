/// How the proxy picks the instance of an app a request goes to: the power of two choices over
/// least outstanding requests. Two distinct candidates are drawn at random and the one with fewer
/// requests in flight wins (the first drawn on a tie). Against picking the least loaded of all, it
/// needs no global ordering and does not send a burst to the one instance that just looked idle;
/// against random picking, it steers away from a slow instance whose requests pile up.
public enum Balancer {
    /// Picks one of the instances `0..<count` for which `usable` holds, by `load` (requests in
    /// flight), drawing with `rng`. Nil when none is usable; the only usable one when there is one.
    /// Pure: the same generator state and loads give the same pick (tests seed the generator).
    public static func pick<R: RandomNumberGenerator>(count: Int, usable: (Int) -> Bool, load: (Int) -> Int,
                                                      using rng: inout R) -> Int? {
        var usableCount = 0
        for index in 0..<count where usable(index) { usableCount += 1 }
        guard usableCount > 0 else { return nil }
        guard usableCount > 1 else { return nth(0, of: count, usable) }
        let first = Int.random(in: 0..<usableCount, using: &rng)
        var second = Int.random(in: 0..<(usableCount - 1), using: &rng)
        if second >= first { second += 1 }
        let a = nth(first, of: count, usable), b = nth(second, of: count, usable)
        return load(b) < load(a) ? b : a
    }

    /// The index of the `n`th (from 0) usable instance.
    private static func nth(_ n: Int, of count: Int, _ usable: (Int) -> Bool) -> Int {
        var seen = 0
        for index in 0..<count where usable(index) {
            if seen == n { return index }
            seen += 1
        }
        preconditionFailure("fewer than \(n + 1) usable instances")
    }
}

/// A small, fast, seedable generator (SplitMix64) for the balancer: one per request is cheap, and a
/// fixed seed makes a test's draws repeatable.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
