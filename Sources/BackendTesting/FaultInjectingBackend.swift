import ChunkStore
import Synchronization

/// Wraps a backend and injects faults by rule, for unit tests of everything above backends.
public final class FaultInjectingBackend: Backend {
    public enum Operation: Sendable, Equatable { case put, get, head, delete, list, usage }

    public enum Fault: Sendable {
        /// Throw this error instead of calling the wrapped backend.
        case fail(BackendError)
        /// Return the object's bytes changed by this function (gets only).
        case corrupt(@Sendable ([UInt8]) -> [UInt8])
        /// Answer after this many seconds (a slow provider), then as usual.
        case delay(Double)
        /// Hold the get until `gate` opens, ignoring cancellation, as a read stuck in a blocking system
        /// call would (gets only).
        case hold(Gate)
    }

    public struct Rule: Sendable {
        let operation: Operation
        let fault: Fault
        /// How many more calls it applies to; nil is forever.
        var remaining: Int?
        let matching: @Sendable (String) -> Bool
    }

    public let wrapped: any Backend
    private let rules = Mutex<[Rule]>([])
    private let counts = Mutex<[Operation: Int]>([:])

    public init(_ wrapped: any Backend) { self.wrapped = wrapped }

    public var location: String { wrapped.location }

    /// Adds a rule: the next `times` calls of `operation` on names matching `matching` get `fault`.
    public func inject(_ fault: Fault, on operation: Operation, times: Int? = nil,
                       matching: @escaping @Sendable (String) -> Bool = { _ in true }) {
        rules.withLock { $0.append(Rule(operation: operation, fault: fault, remaining: times, matching: matching)) }
    }

    public func clearFaults() { rules.withLock { $0.removeAll() } }

    /// Calls of `operation` so far (faulted or not).
    public func calls(_ operation: Operation) -> Int { counts.withLock { $0[operation, default: 0] } }

    private func fault(for operation: Operation, _ name: String) -> Fault? {
        counts.withLock { $0[operation, default: 0] += 1 }
        return rules.withLock { rules in
            guard let index = rules.firstIndex(where: { $0.operation == operation && $0.remaining != 0 && $0.matching(name) }) else {
                return nil
            }
            if let left = rules[index].remaining { rules[index].remaining = left - 1 }
            return rules[index].fault
        }
    }

    public func put(_ name: String, data: [UInt8]) async throws {
        switch fault(for: .put, name) {
        case .fail(let error): throw error
        case .delay(let seconds): try await Task.sleep(for: .seconds(seconds))
        default: break
        }
        try await wrapped.put(name, data: data)
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        switch fault(for: .get, name) {
        case .fail(let error): throw error
        case .corrupt(let change): return change(try await wrapped.get(name, range: range))
        case .delay(let seconds):
            try await Task.sleep(for: .seconds(seconds))
            return try await wrapped.get(name, range: range)
        case .hold(let gate):
            await gate.wait()
            return try await wrapped.get(name, range: range)
        case nil: return try await wrapped.get(name, range: range)
        }
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        if case .fail(let error) = fault(for: .head, name) { throw error }
        return try await wrapped.head(name)
    }

    public func delete(_ name: String) async throws {
        if case .fail(let error) = fault(for: .delete, name) { throw error }
        try await wrapped.delete(name)
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        if case .fail(let error) = fault(for: .list, prefix) { throw error }
        return try await wrapped.list(prefix: prefix, after: after, limit: limit)
    }

    public func usage() async throws -> BackendUsage {
        if case .fail(let error) = fault(for: .usage, "") { throw error }
        return try await wrapped.usage()
    }
}

/// A gate that holds waiters until it is opened (once, for good).
public final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    public var isOpen: Bool { state.withLock { $0.open } }

    public func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    public func wait() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let proceed = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(waiter)
                return false
            }
            if proceed { waiter.resume() }
        }
    }
}
