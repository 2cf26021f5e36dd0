import Synchronization

/// A reader/writer lock for tasks: waiting suspends the task, never a thread. Fair: requests are
/// served in the order they came (`ReadWriteQueue`), so a stream of readers cannot starve a writer
/// (a reader that comes after a waiting writer waits behind it), and a writer cannot starve the
/// readers queued before the next writer (they go in together when it leaves).
///
/// A task cancelled while it waits leaves the queue and gets `CancellationError`; one cancelled
/// before it asks gets it too, without queueing.
public final class AsyncReadWriteLock: Sendable {
    public typealias Mode = ReadWriteQueue<UInt64>.Mode

    private struct State {
        var queue = ReadWriteQueue<UInt64>()
        var lastTicket: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Void, any Error>] = [:]

        /// The continuations of the tickets `queue` just granted, to resume outside the lock.
        mutating func continuations(of tickets: [UInt64]) -> [CheckedContinuation<Void, any Error>] {
            tickets.compactMap { waiting.removeValue(forKey: $0) }
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// How many tasks wait for the lock now.
    public var waitingCount: Int { state.withLock { $0.queue.waiting.count } }

    /// Runs `body` holding the lock in `mode`; released when `body` returns or throws.
    public func withLock<T>(_ mode: Mode, isolation: isolated (any Actor)? = #isolation,
                            _ body: () async throws -> T) async throws -> T {
        try await acquire(mode)
        defer { release(mode) }
        return try await body()
    }

    /// Waits for the lock in `mode`. Pair with one `release(mode)`; prefer `withLock`.
    public func acquire(_ mode: Mode) async throws {
        let ticket = state.withLock { state in
            state.lastTicket += 1
            return state.lastTicket
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case granted, queued, cancelled }
                let outcome = state.withLock { state -> Outcome in
                    // Checked under the lock: a cancellation handler that ran before this point found
                    // nothing queued to withdraw.
                    if Task.isCancelled { return .cancelled }
                    if state.queue.request(ticket, mode) { return .granted }
                    state.waiting[ticket] = continuation
                    return .queued
                }
                switch outcome {
                case .granted: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let (withdrawn, granted) = state.withLock { state -> (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, any Error>]) in
                guard let granted = state.queue.withdraw(ticket) else { return (nil, []) }
                return (state.waiting.removeValue(forKey: ticket), state.continuations(of: granted))
            }
            withdrawn?.resume(throwing: CancellationError())
            for continuation in granted { continuation.resume() }
        }
    }

    /// Leaves the lock taken in `mode`, letting in whoever is next in line.
    public func release(_ mode: Mode) {
        let granted = state.withLock { state in state.continuations(of: state.queue.release(mode)) }
        for continuation in granted { continuation.resume() }
    }
}

/// Who holds a reader/writer lock and who waits, in order: the admission rule of
/// `AsyncReadWriteLock` as a plain value, so that its fairness is tested without tasks or timing.
///
/// A request is granted at once only when nobody waits and it is compatible with the holders (any
/// number of readers, or one writer). Otherwise it waits in line; whenever the lock is released (or a
/// waiting request is withdrawn), requests are granted from the front of the line while they are
/// compatible: a writer alone, or every reader up to the next writer.
public struct ReadWriteQueue<Ticket: Hashable & Sendable>: Sendable {
    public enum Mode: Sendable, Equatable { case shared, exclusive }

    public private(set) var readers = 0
    public private(set) var writer = false
    private var line: [(ticket: Ticket, mode: Mode)] = []

    public init() {}

    /// The requests waiting, first first.
    public var waiting: [Ticket] { line.map(\.ticket) }

    /// Asks for the lock. True: it is held now. False: the request waits; a later `release` or
    /// `withdraw` returns its ticket when it is granted.
    public mutating func request(_ ticket: Ticket, _ mode: Mode) -> Bool {
        if line.isEmpty && admits(mode) {
            take(mode)
            return true
        }
        line.append((ticket, mode))
        return false
    }

    /// Leaves the lock held in `mode`; returns the tickets granted now, in order.
    public mutating func release(_ mode: Mode) -> [Ticket] {
        switch mode {
        case .shared:
            precondition(readers > 0, "released a shared lock nobody holds")
            readers -= 1
        case .exclusive:
            precondition(writer, "released an exclusive lock nobody holds")
            writer = false
        }
        return admitFromFront()
    }

    /// Takes a waiting request out of line (its task was cancelled); returns the tickets granted
    /// because of it (a withdrawn writer may have held back readers), or nil when `ticket` was not
    /// waiting (it was granted already).
    public mutating func withdraw(_ ticket: Ticket) -> [Ticket]? {
        guard let index = line.firstIndex(where: { $0.ticket == ticket }) else { return nil }
        line.remove(at: index)
        return admitFromFront()
    }

    private func admits(_ mode: Mode) -> Bool {
        mode == .shared ? !writer : !writer && readers == 0
    }

    private mutating func take(_ mode: Mode) {
        if mode == .shared { readers += 1 } else { writer = true }
    }

    private mutating func admitFromFront() -> [Ticket] {
        var granted: [Ticket] = []
        while let first = line.first, admits(first.mode) {
            line.removeFirst()
            take(first.mode)
            granted.append(first.ticket)
        }
        return granted
    }
}
