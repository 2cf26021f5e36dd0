import Foundation

/// A fixed set of threads for blocking work (file and network I/O, fsync, flock waits), so that
/// blocking calls never occupy Swift concurrency's cooperative threads, which stay free for CPU work
/// (hashing, compression, encryption). On two cores this is what keeps both cores sealing while the
/// disk syncs.
///
/// The queue in front of the threads is bounded: once `queueLimit` jobs wait, further callers are
/// suspended (never blocked) until one is taken, and queued in the order they came. A job whose task
/// is cancelled before a thread takes it is dropped, and `run` throws `CancellationError`; one that
/// has started runs to its end (a blocking call cannot be interrupted).
public final class BlockingIOPool: @unchecked Sendable {
    /// Shared by the whole process. Sized for the store's in-flight chunk window plus readers.
    public static let shared = BlockingIOPool(threads: 12)

    private struct Job {
        let id: UInt64
        let run: @Sendable () -> Void
        /// Resumes the caller with `CancellationError` instead.
        let drop: @Sendable () -> Void
    }

    /// Guards everything below; the threads wait on it for jobs.
    private let condition = NSCondition()
    /// Jobs waiting for a thread (at most `queueLimit`). A job leaves the queue when a thread takes
    /// it, so the buffers it captures are freed as soon as it has run.
    private var jobs: [Job] = []
    /// Jobs waiting for room in `jobs`, in order; their callers are suspended.
    private var overflow: [Job] = []
    private var lastID: UInt64 = 0
    private let threadCount: Int
    public let queueLimit: Int
    private var started = false

    public init(threads: Int, queueLimit: Int = 256) {
        precondition(threads > 0 && queueLimit > 0)
        threadCount = threads
        self.queueLimit = queueLimit
    }

    /// Jobs waiting for a thread, and callers waiting for room in that queue.
    public var waiting: (queued: Int, overflow: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (jobs.count, overflow.count)
    }

    /// Runs `body` on one of the pool's threads and returns its result to the calling task. Throws
    /// `CancellationError` without running `body` when the task is cancelled before a thread takes it.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let id = nextID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                let job = Job(id: id, run: { continuation.resume(with: Result { try body() }) },
                              drop: { continuation.resume(throwing: CancellationError()) })
                if !submit(job) { job.drop() }
            }
        } onCancel: {
            withdraw(id)?.drop()
        }
    }

    private func nextID() -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        lastID += 1
        return lastID
    }

    /// Queues `job` (or puts it in line for room). False when the calling task is cancelled: checked
    /// under the lock, as a cancellation handler that ran before found nothing to withdraw.
    private func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if Task.isCancelled { return false }
        if !started {
            started = true
            for index in 0..<threadCount {
                let thread = Thread { [unowned self] in self.work() }
                thread.name = "a67-io-\(index)"
                thread.start()
            }
        }
        if jobs.count < queueLimit && overflow.isEmpty {
            jobs.append(job)
            condition.signal()
        } else {
            overflow.append(job)
        }
        return true
    }

    /// Takes the job `id` out of the queue or the line for room, if no thread has taken it yet.
    private func withdraw(_ id: UInt64) -> Job? {
        condition.lock()
        defer { condition.unlock() }
        if let index = jobs.firstIndex(where: { $0.id == id }) {
            let job = jobs.remove(at: index)
            refill()
            return job
        }
        if let index = overflow.firstIndex(where: { $0.id == id }) { return overflow.remove(at: index) }
        return nil
    }

    /// Moves waiting callers' jobs into the queue while it has room. Called holding the lock.
    private func refill() {
        while jobs.count < queueLimit, !overflow.isEmpty {
            jobs.append(overflow.removeFirst())
            condition.signal()
        }
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            refill()
            condition.unlock()
            job.run()
        }
    }
}

/// Runs synchronous catalog work on the `BlockingIOPool`: a write may wait for SQLite's write lock
/// (and a long read holds its thread), which must not happen on the cooperative threads.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingIOPool.shared.run(work)
}
