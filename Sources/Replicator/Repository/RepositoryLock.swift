import ChunkStore
import Foundation
import Synchronization
import Logging

/// An advisory lock on the repository (flock on $A67_HOME/lock): puts hold it shared, garbage
/// collection holds it exclusive, so that collection never runs while a put has stored a chunk it has
/// not yet recorded. The kernel releases it when the process dies, even by kill -9.
///
/// Two levels. Within one process, tasks queue on an `AsyncReadWriteLock`, first come first served:
/// gc inside `a67 serve` neither starves the puts of the same process nor is starved by them, and a
/// waiting task holds no thread. Between processes, the flock: the first task of a phase (the first
/// reader after a writer, or a writer) takes it, in the same mode, and the last one releases it; its
/// blocking wait runs on the `BlockingIOPool`, never on the cooperative threads.
///
/// One instance per lock file per process (`at(home:name:)`). A task that holds the lock (shared or
/// exclusive) and asks for it shared again, as drain's snapshot does, goes straight in: queueing
/// behind a writer that waits for this very task would deadlock. Asking for it exclusive while
/// holding it shared is refused. What a task holds is a task-local, which an unstructured task
/// (`Task {}`) started inside inherits: each hold therefore has a token, live only while its body
/// runs, and a task whose inherited hold has ended queues like any other.
final class RepositoryLock: Sendable {
    typealias Mode = AsyncReadWriteLock.Mode

    let path: String
    /// Whether a wait for another process's exclusive hold is announced on standard error.
    private let announcesWaits: Bool
    private let tasks = AsyncReadWriteLock()
    private let file = Mutex(FileHold())

    private struct FileHold {
        /// Tasks of the current phase inside (or waiting for) the flock.
        var users = 0
        var fd: Int32 = -1
        var taking: Task<Int32, any Error>?
    }

    /// The locks this task holds (path to mode and hold token), so that a nested shared request goes straight in.
    @TaskLocal private static var held: [String: Hold] = [:]

    private struct Hold: Sendable {
        let mode: Mode
        let token: UInt64
    }

    /// The tokens of the holds whose bodies are running.
    private let liveHolds = Mutex<Set<UInt64>>([])
    private static let nextToken = Atomic<UInt64>(1)

    private static let registry = Mutex<[String: RepositoryLock]>([:])

    /// The process's lock on `home/name`.
    static func at(home: String, name: String = "lock") -> RepositoryLock {
        let path = home + "/" + name
        return registry.withLock { locks in
            if let lock = locks[path] { return lock }
            let lock = RepositoryLock(path: path, announcesWaits: name == "lock")
            locks[path] = lock
            return lock
        }
    }

    private init(path: String, announcesWaits: Bool) {
        self.path = path
        self.announcesWaits = announcesWaits
    }

    /// How many tasks of this process wait for the lock now.
    var waitingCount: Int { tasks.waitingCount }

    /// Runs `body` holding the lock shared.
    @discardableResult
    func withShared<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await with(.shared, body)
    }

    /// Runs `body` holding the lock exclusively.
    @discardableResult
    func withExclusive<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await with(.exclusive, body)
    }

    private func with<T>(_ mode: Mode, isolation: isolated (any Actor)? = #isolation,
                         _ body: () async throws -> T) async throws -> T {
        let inherited = Self.held[path].flatMap { hold in liveHolds.withLock { $0.contains(hold.token) } ? hold.mode : nil }
        switch (inherited, mode) {
        case (.exclusive?, _), (.shared?, .shared):
            return try await body()
        case (.shared?, .exclusive):
            throw StoreError(.internal, "the repository lock \(path) is held shared by this task: it cannot also take it exclusively")
        case (nil, _):
            break
        }
        return try await tasks.withLock(mode) {
            try await enterFile(mode)
            // The flock goes before the in-process lock lets the next phase in.
            defer { leaveFile() }
            let token = Self.nextToken.add(1, ordering: .relaxed).oldValue
            liveHolds.withLock { _ = $0.insert(token) }
            defer { liveHolds.withLock { _ = $0.remove(token) } }
            var held = Self.held
            held[path] = Hold(mode: mode, token: token)
            return try await Self.$held.withValue(held) { try await body() }
        }
    }

    /// Joins the current phase's hold of the flock, taking it when this task is the first.
    private func enterFile(_ mode: Mode) async throws {
        let taking = file.withLock { hold in
            hold.users += 1
            if let taking = hold.taking { return taking }
            let (path, announce) = (self.path, announcesWaits && mode == .exclusive)
            let taking = Task { try await BlockingIOPool.shared.run { try Self.lockFile(path, mode: mode, announce: announce) } }
            hold.taking = taking
            return taking
        }
        do {
            let fd = try await taking.value
            file.withLock { $0.fd = fd }
        } catch {
            leaveFile()
            throw error
        }
    }

    /// Leaves the phase's hold; the last one out releases the flock.
    private func leaveFile() {
        file.withLock { hold in
            hold.users -= 1
            guard hold.users == 0 else { return }
            if hold.fd >= 0 { close(hold.fd) }
            hold.fd = -1
            hold.taking = nil
        }
    }

    /// Opens the lock file and waits (blocking) for the flock in `mode`; returns its descriptor.
    private static func lockFile(_ path: String, mode: Mode, announce: Bool) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(.io, "cannot open the repository lock \(path): \(String(cString: strerror(errno)))")
        }
        let operation = mode == .exclusive ? LOCK_EX : LOCK_SH
        if flock(fd, operation | LOCK_NB) != 0 {
            if announce {
                Logger(label: "a67").notice("waiting for other a67 commands on this repository to finish...")
            }
            while flock(fd, operation) != 0 {
                guard errno == EINTR else {
                    let reason = String(cString: strerror(errno))
                    close(fd)
                    throw StoreError(.io, "cannot lock the repository \(path): \(reason)")
                }
            }
        }
        return fd
    }
}

#if canImport(Glibc)
import Glibc
#endif
