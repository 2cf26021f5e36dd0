import BackendTesting
@testable import ChunkStore
import Foundation
import Synchronization
import Testing

/// The retry wrapper's decisions, with faults injected beside an in-memory backend.
@Suite struct RetryingBackendTests {
    static let quick = RetryPolicy(maxAttempts: 4, baseDelay: 0.001, maxDelay: 0.002)

    @Test func conformsLikeTheBackendItWraps() async throws {
        try await BackendConformance.run(RetryingBackend(MemoryBackend(), policy: Self.quick, maxConcurrent: 2))
    }

    @Test func retriesTransientFailuresUntilOneSucceeds() async throws {
        let faulty = FaultInjectingBackend(MemoryBackend())
        faulty.inject(.fail(.transient("reset")), on: .put, times: 3)
        let retrying = RetryingBackend(faulty, policy: Self.quick)
        try await retrying.put("x", data: [1])
        #expect(faulty.calls(.put) == 4)
        #expect(retrying.counts.attempts == 4 && retrying.counts.retries == 3)
        #expect(try await retrying.get("x") == [1])
    }

    @Test func givesUpAfterTheLastAttemptAndSaysSo() async throws {
        let faulty = FaultInjectingBackend(MemoryBackend())
        faulty.inject(.fail(.transient("HTTP 503")), on: .get)
        let retrying = RetryingBackend(faulty, policy: Self.quick)
        let error = await #expect(throws: BackendError.self) { _ = try await retrying.get("x") }
        #expect(error == .transient("HTTP 503 (gave up after 4 attempts)"))
        #expect(faulty.calls(.get) == 4)
    }

    @Test(arguments: [BackendError.permanent("HTTP 403"), .notFound("x"), .full("quota")])
    func neverRetriesWhatCannotSucceed(_ failure: BackendError) async throws {
        let faulty = FaultInjectingBackend(MemoryBackend())
        faulty.inject(.fail(failure), on: .get)
        let retrying = RetryingBackend(faulty, policy: Self.quick)
        let error = await #expect(throws: BackendError.self) { _ = try await retrying.get("x") }
        #expect(error == failure)
        #expect(faulty.calls(.get) == 1)
    }

    @Test func honoursRetryAfterUpToItsCap() async throws {
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.002, maxRetryAfter: 0.3)
        #expect(policy.delay(after: 1, error: .throttled("429", retryAfter: 0.2)) >= 0.2)
        #expect(policy.delay(after: 1, error: .throttled("429", retryAfter: 500)) <= 0.3)
        #expect(policy.delay(after: 1, error: .throttled("429", retryAfter: nil)) <= 0.001)
        let faulty = FaultInjectingBackend(MemoryBackend())
        faulty.inject(.fail(.throttled("429", retryAfter: 0.2)), on: .put, times: 1)
        let start = Date()
        try await RetryingBackend(faulty, policy: policy).put("x", data: [])
        #expect(Date().timeIntervalSince(start) >= 0.2)
    }

    @Test func backoffGrowsAndStaysUnderItsCeiling() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: 0.1, maxDelay: 1)
        for attempt in 1...8 {
            let ceiling = min(1, 0.1 * pow(2, Double(attempt - 1)))
            let delays = (0..<200).map { _ in policy.delay(after: attempt, error: .transient("x")) }
            #expect(delays.allSatisfy { $0 >= 0 && $0 <= ceiling })
            #expect(delays.max()! > ceiling / 2, "no jitter reaches the upper half at attempt \(attempt)")
        }
    }

    @Test func holdsAProviderToItsRequestLimit() async throws {
        let slow = SlowBackend()
        let retrying = RetryingBackend(slow, policy: Self.quick, maxConcurrent: 3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 { group.addTask { try await retrying.put("o\(i)", data: [1]) } }
            try await group.waitForAll()
        }
        #expect(slow.peak == 3)
    }
}

/// Counts how many calls are inside it at once; each put yields a few times so calls overlap.
final class SlowBackend: Backend {
    private let state = Mutex((now: 0, peak: 0))
    var peak: Int { state.withLock { $0.peak } }
    var location: String { "slow" }

    func put(_ name: String, data: [UInt8]) async throws {
        state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        try await Task.sleep(nanoseconds: 5_000_000)
        state.withLock { $0.now -= 1 }
    }
    func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] { throw BackendError.notFound(name) }
    func head(_ name: String) async throws -> ObjectInfo { throw BackendError.notFound(name) }
    func delete(_ name: String) async throws {}
    func list(prefix: String, after: String?, limit: Int) async throws -> ListPage { ListPage(objects: [], nextAfter: nil) }
    func usage() async throws -> BackendUsage { BackendUsage(usedBytes: 0, objectCount: 0, freeBytes: nil) }
}
