import BackendTesting
import Foundation
import Testing
@testable import ChunkStore

/// The reader/writer lock's admission rule, as a plain value: who gets in, and in what order.
struct ReadWriteQueueTests {
    typealias Queue = ReadWriteQueue<String>

    @Test func readersShareAndAWriterWaitsForThemAll() {
        let queue = QueueBox()
        #expect(queue.request("r1", .shared))
        #expect(queue.request("r2", .shared))
        #expect(!queue.request("w", .exclusive))
        #expect(queue.release(.shared) == [])
        #expect(queue.release(.shared) == ["w"])
        #expect(queue.writer && queue.readers == 0)
    }

    @Test func readersArrivingBehindAWaitingWriterDoNotStarveIt() {
        let queue = QueueBox()
        #expect(queue.request("r1", .shared))
        #expect(!queue.request("w", .exclusive))
        // A stream of readers: each would be compatible with r1, but waits behind the writer.
        for reader in ["r2", "r3", "r4"] { #expect(!queue.request(reader, .shared)) }
        #expect(queue.waiting == ["w", "r2", "r3", "r4"])
        #expect(queue.release(.shared) == ["w"])
        // The writer is not able to starve them either: they all go in together when it leaves.
        #expect(queue.release(.exclusive) == ["r2", "r3", "r4"])
        #expect(queue.readers == 3)
    }

    @Test func grantsFollowArrivalOrderPhaseByPhase() {
        let queue = QueueBox()
        #expect(queue.request("w1", .exclusive))
        for (ticket, mode) in [("r1", Queue.Mode.shared), ("r2", .shared), ("w2", .exclusive), ("r3", .shared), ("w3", .exclusive)] {
            #expect(!queue.request(ticket, mode))
        }
        #expect(queue.release(.exclusive) == ["r1", "r2"])
        #expect(queue.release(.shared) == [])
        #expect(queue.release(.shared) == ["w2"])
        #expect(queue.release(.exclusive) == ["r3"])
        #expect(queue.release(.shared) == ["w3"])
        #expect(queue.release(.exclusive) == [])
        #expect(queue.request("r4", .shared))
    }

    @Test func withdrawingAWaitingWriterLetsTheReadersBehindItIn() {
        let queue = QueueBox()
        #expect(queue.request("r1", .shared))
        #expect(!queue.request("w", .exclusive))
        #expect(!queue.request("r2", .shared))
        #expect(queue.withdraw("w") == ["r2"])
        #expect(queue.readers == 2)
        // A granted request is no longer waiting: nothing to withdraw.
        #expect(queue.withdraw("r2") == nil)
        #expect(queue.withdraw("w") == nil)
    }

    @Test func aWriterWaitsForAnotherWriter() {
        let queue = QueueBox()
        #expect(queue.request("w1", .exclusive))
        #expect(!queue.request("w2", .exclusive))
        #expect(queue.release(.exclusive) == ["w2"])
        #expect(queue.release(.exclusive) == [])
        #expect(!queue.writer)
    }
}

/// A queue behind a reference, so that `#expect` can call its mutating methods.
private final class QueueBox {
    var queue = ReadWriteQueue<String>()
    func request(_ ticket: String, _ mode: ReadWriteQueue<String>.Mode) -> Bool { queue.request(ticket, mode) }
    func release(_ mode: ReadWriteQueue<String>.Mode) -> [String] { queue.release(mode) }
    func withdraw(_ ticket: String) -> [String]? { queue.withdraw(ticket) }
    var waiting: [String] { queue.waiting }
    var readers: Int { queue.readers }
    var writer: Bool { queue.writer }
}

/// The lock itself: tasks suspend in arrival order; a cancelled waiter leaves the line.
struct AsyncReadWriteLockTests {
    /// Waits (yielding, never sleeping) until `condition` holds.
    static func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test func tasksGetTheLockInArrivalOrder() async throws {
        let lock = AsyncReadWriteLock()
        let order = Locked<[String]>([])
        try await lock.acquire(.exclusive)
        var tasks: [Task<Void, any Error>] = []
        for (index, (name, mode)) in [("w1", AsyncReadWriteLock.Mode.exclusive), ("r1", .shared), ("r2", .shared), ("w2", .exclusive)].enumerated() {
            tasks.append(Task {
                try await lock.withLock(mode) { order.withLock { $0.append(name) } }
            })
            // Each request is in line before the next one is made.
            await Self.until { lock.waitingCount == index + 1 }
        }
        lock.release(.exclusive)
        for task in tasks { try await task.value }
        let done = order.value
        #expect(done.first == "w1" && done.last == "w2")
        #expect(Set(done[1...2]) == ["r1", "r2"])
    }

    @Test func aCancelledWaiterLeavesTheLineAndThrows() async throws {
        let lock = AsyncReadWriteLock()
        try await lock.acquire(.shared)
        let writer = Task { try await lock.withLock(.exclusive) {} }
        await Self.until { lock.waitingCount == 1 }
        let reader = Task { try await lock.withLock(.shared) { "in" } }
        await Self.until { lock.waitingCount == 2 }
        writer.cancel()
        await #expect(throws: CancellationError.self) { try await writer.value }
        // With the writer gone, the reader behind it shares the lock with the first one.
        #expect(try await reader.value == "in")
        lock.release(.shared)
        try await lock.withLock(.exclusive) {}
    }

    @Test func aTaskCancelledBeforeItAsksDoesNotQueue() async throws {
        let lock = AsyncReadWriteLock()
        try await lock.acquire(.exclusive)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await lock.acquire(.shared)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(lock.waitingCount == 0)
        lock.release(.exclusive)
    }
}

/// The blocking-work pool: bounded queue (callers suspend when it is full), cancellation of queued jobs.
struct BlockingIOPoolTests {
    @Test func callersBeyondTheQueueLimitWaitAndAllRunInOrder() async throws {
        let pool = BlockingIOPool(threads: 1, queueLimit: 2)
        let gate = DispatchSemaphore(value: 0)
        let ran = Locked<[Int]>([])
        let started = Locked(false)
        // Occupies the one thread (blocking on the pool's own thread, as its jobs may).
        let blocker = Task { try await pool.run { started.withLock { $0 = true }; gate.wait() } }
        await AsyncReadWriteLockTests.until { started.value }
        var jobs: [Task<Int, any Error>] = []
        for index in 0..<4 {
            jobs.append(Task { try await pool.run { ran.withLock { $0.append(index) }; return index } })
            await AsyncReadWriteLockTests.until { pool.waiting.queued + pool.waiting.overflow == index + 1 }
        }
        // Two queued, two suspended waiting for room: the thread is still busy.
        #expect(pool.waiting == (2, 2))
        gate.signal()
        try await blocker.value
        for (index, job) in jobs.enumerated() { #expect(try await job.value == index) }
        #expect(ran.value == [0, 1, 2, 3])
    }

    @Test func aQueuedJobOfACancelledTaskIsDroppedAndThrows() async throws {
        let pool = BlockingIOPool(threads: 1, queueLimit: 1)
        let gate = DispatchSemaphore(value: 0)
        let ran = Locked<[String]>([])
        let started = Locked(false)
        let blocker = Task { try await pool.run { started.withLock { $0 = true }; gate.wait() } }
        await AsyncReadWriteLockTests.until { started.value }
        let queued = Task { try await pool.run { ran.withLock { $0.append("queued") } } }
        await AsyncReadWriteLockTests.until { pool.waiting.queued == 1 }
        let overflowing = Task { try await pool.run { ran.withLock { $0.append("overflow") } } }
        await AsyncReadWriteLockTests.until { pool.waiting.overflow == 1 }
        let last = Task { try await pool.run { ran.withLock { $0.append("last") } } }
        await AsyncReadWriteLockTests.until { pool.waiting.overflow == 2 }
        queued.cancel()
        overflowing.cancel()
        await #expect(throws: CancellationError.self) { try await queued.value }
        await #expect(throws: CancellationError.self) { try await overflowing.value }
        // The dropped job's place went to the next caller in line.
        #expect(pool.waiting == (1, 0))
        gate.signal()
        try await blocker.value
        try await last.value
        #expect(ran.value == ["last"])
    }
}
