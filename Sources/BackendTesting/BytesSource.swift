import ChunkStore
import Synchronization

/// An in-memory byte source for tests. `trigger`, when given, runs once, as soon as `after` bytes
/// have been read: to act in the middle of a put (kill a server, fill a disk).
public final class BytesSource: ByteSource, Sendable {
    private let data: [UInt8]
    private let offset = Mutex(0)
    private let after: Int
    private let trigger: (@Sendable () -> Void)?
    public let knownSize: Int64?

    public init(_ data: [UInt8], after: Int = 0, trigger: (@Sendable () -> Void)? = nil) {
        self.data = data
        self.after = after
        self.trigger = trigger
        knownSize = Int64(data.count)
    }

    public func read(upTo count: Int) throws -> [UInt8] {
        let (slice, fire) = offset.withLock { offset -> ([UInt8], Bool) in
            let end = min(offset + count, data.count)
            defer { offset = end }
            return (Array(data[offset..<end]), offset < after && end >= after)
        }
        if fire { trigger?() }
        return slice
    }
}

/// An in-memory byte sink for tests: what an object read wrote.
public final class BytesSink: ByteSink, Sendable {
    private let buffer = Mutex<[UInt8]>([])
    public var bytes: [UInt8] { buffer.withLock { $0 } }
    public init() {}
    public func write(_ bytes: ArraySlice<UInt8>) throws { buffer.withLock { $0 += bytes } }
}
