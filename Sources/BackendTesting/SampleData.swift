import ChunkStore

// Test data, shared by the test targets.

/// Random bytes (incompressible, different on every run).
public func randomBytes(_ count: Int) -> [UInt8] { Crypto.randomBytes(count) }

/// Incompressible bytes from a fixed seed (xorshift64*), the same on every run.
public func seededNoise(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            words[i] = state &* 2685821657736338717
        }
    }
    return out
}

/// Text that compresses, with a marker every 4 KiB so that no two chunks are alike.
public func sampleBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(count + 64)
    var n: UInt64 = seed
    while out.count < count {
        n = n &* 6364136223846793005 &+ 1442695040888963407
        out += Array("block \(n % 1_000_000_007) of sample text for automator67 tests. ".utf8)
    }
    return Array(out.prefix(count))
}

/// Ordinary numbered lines of text (compresses well; alike chunks where the text repeats its shape).
public func textBytes(_ count: Int) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while out.count < count {
        out += Array("line \(i) of some very ordinary text that compresses well\n".utf8)
        i += 1
    }
    return Array(out.prefix(count))
}
