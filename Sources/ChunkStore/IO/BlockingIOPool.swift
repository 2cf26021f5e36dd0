import Foundation

/// A fixed set of threads for blocking work (file and network I/O, fsync), so that blocking calls
/// never occupy Swift concurrency's cooperative threads, which stay free for CPU work (hashing,
/// compression, encryption). On two cores this is what keeps both cores sealing while the disk syncs.
public final class BlockingIOPool: @unchecked Sendable {
    /// Shared by the whole process. Sized for the store's in-flight chunk window plus readers.
    public static let shared = BlockingIOPool(threads: 12)

    private let condition = NSCondition()
    /// Waiting jobs. A job leaves the queue when a thread takes it, so the buffers it captures are
    /// freed as soon as it has run.
    private var jobs: [@Sendable () -> Void] = []
    private let threadCount: Int
    private var started = false

    public init(threads: Int) {
        precondition(threads > 0)
        threadCount = threads
    }

    /// Runs `body` on one of the pool's threads and returns its result to the calling task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        if !started {
            started = true
            for index in 0..<threadCount {
                let thread = Thread { [unowned self] in self.work() }
                thread.name = "a67-io-\(index)"
                thread.start()
            }
        }
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
