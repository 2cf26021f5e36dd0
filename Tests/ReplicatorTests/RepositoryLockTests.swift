import BackendTesting
import ChunkStore
import Foundation
import Testing
@testable import Replicator

/// The repository lock: tasks of one process queue fairly above one flock per phase.
struct RepositoryLockTests {
    /// Waits (yielding, never sleeping) until `condition` holds.
    static func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    /// Whether another open file description could take the flock on `path` exclusively now.
    static func flockIsFree(_ path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    /// A task started inside a hold inherits the task-local that says so; once that hold ended, it
    /// queues for the lock like any other (it neither goes straight in nor is refused exclusive).
    @Test func aTaskStartedInsideAHoldDoesNotInheritItOnceItEnded() async throws {
        let dir = try TemporaryDirectory()
        let lock = RepositoryLock.at(home: dir.path, name: "test.lock")
        let (ended, end) = AsyncStream.makeStream(of: Void.self)
        var later: Task<Bool, any Error>?
        try await lock.withShared {
            later = Task {
                for await _ in ended { break }
                return try await lock.withExclusive { !Self.flockIsFree(lock.path) }
            }
        }
        end.yield()
        #expect(try await later?.value == true)
        #expect(Self.flockIsFree(lock.path))
    }

    @Test func theFirstHolderTakesTheFlockAndTheLastReleasesIt() async throws {
        let dir = try TemporaryDirectory()
        let lock = RepositoryLock.at(home: dir.path, name: "test.lock")
        #expect(RepositoryLock.at(home: dir.path, name: "test.lock") === lock)
        let inside = Locked(0)
        let (leave, leaving) = AsyncStream.makeStream(of: Void.self)
        let second = Task {
            try await lock.withShared {
                inside.withLock { $0 += 1 }
                for await _ in leave { break }
            }
        }
        try await lock.withShared {
            await Self.until { inside.value == 1 }
            #expect(!Self.flockIsFree(lock.path))
        }
        // One holder left: the flock stays.
        #expect(!Self.flockIsFree(lock.path))
        leaving.yield()
        try await second.value
        #expect(Self.flockIsFree(lock.path))
    }

    /// A task holding `lock` shared until told to leave, once it is in.
    static func holdShared(_ lock: RepositoryLock, then: (@Sendable () async throws -> Void)? = nil) async
        -> (task: Task<Void, any Error>, leave: AsyncStream<Void>.Continuation) {
        let (leave, leaving) = AsyncStream.makeStream(of: Void.self)
        let entered = Locked(false)
        let task = Task {
            try await lock.withShared {
                entered.withLock { $0 = true }
                for await _ in leave { break }
                try await then?()
            }
        }
        await until { entered.value }
        return (task, leaving)
    }

    @Test func aWriterIsNotStarvedByReadersArrivingAfterIt() async throws {
        let dir = try TemporaryDirectory()
        let lock = RepositoryLock.at(home: dir.path, name: "test.lock")
        let order = Locked<[String]>([])
        let holder = await Self.holdShared(lock)
        var tasks: [Task<Void, any Error>] = []
        let gc = Task { try await lock.withExclusive { order.withLock { $0.append("gc") } } }
        tasks.append(gc)
        await Self.until { lock.waitingCount == 1 }
        for index in 0..<3 {
            let put = Task { try await lock.withShared { order.withLock { $0.append("put\(index)") } } }
            tasks.append(put)
            await Self.until { lock.waitingCount == index + 2 }
        }
        // The lock is held shared, yet the later puts wait behind gc.
        #expect(order.value.isEmpty)
        holder.leave.yield()
        try await holder.task.value
        for task in tasks { try await task.value }
        #expect(order.value.first == "gc")
        #expect(Set(order.value.dropFirst()) == ["put0", "put1", "put2"])
    }

    @Test func aNestedSharedRequestGoesStraightInEvenWithAWriterWaiting() async throws {
        let dir = try TemporaryDirectory()
        let lock = RepositoryLock.at(home: dir.path, name: "test.lock")
        let nested = Locked(false)
        // As drain's snapshot does: waiting behind the writer, which waits for the holder, would deadlock.
        let holder = await Self.holdShared(lock) {
            try await lock.withShared { nested.withLock { $0 = true } }
        }
        let writer = Task { try await lock.withExclusive {} }
        await Self.until { lock.waitingCount == 1 }
        holder.leave.yield()
        try await holder.task.value
        #expect(nested.value)
        try await writer.value
    }

    @Test func anExclusiveRequestWhileHoldingItSharedIsRefused() async throws {
        let dir = try TemporaryDirectory()
        let lock = RepositoryLock.at(home: dir.path, name: "test.lock")
        try await lock.withShared {
            await #expect(throws: StoreError.self) { try await lock.withExclusive {} }
        }
        try await lock.withExclusive { _ = try await lock.withShared { 1 } }
    }
}

#if canImport(Glibc)
import Glibc
#endif
