import BackendTesting
import ChunkStore
import CurlTransport
import Foundation
import RemoteBackends
import Replicator
import Testing

/// Faults between a67 and a real S3 server (SeaweedFS), injected by faultproxy.py; the retry
/// wrapper and the chunk checks must get through or fail cleanly.
@Suite struct FaultTests {
    static let quick = RetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.05)

    /// An S3 backend whose requests pass through a proxy in `mode`.
    static func proxied(_ mode: String, limits: TransferLimits = .init(), secret: String? = nil,
                        prefix: String = TestServers.unique("fault")) async throws -> (FaultProxy, S3Backend) {
        let proxy = try await FaultProxy(mode: mode, upstream: try TestServers.env("A67_TEST_S3_ENDPOINT"))
        return (proxy, try TestServers.s3(endpoint: proxy.url, prefix: prefix, secret: secret, limits: limits))
    }

    @Test func wrongCredentialsFailOnceWithAClearMessage() async throws {
        let (proxy, backend) = try await Self.proxied("pass", secret: "not-the-secret-key")
        defer { proxy.stop() }
        let retrying = RetryingBackend(backend, policy: Self.quick)
        let error = await #expect(throws: BackendError.self) { try await retrying.put("data/aa/x", data: [1, 2, 3]) }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("HTTP 403"))
        #expect(message.contains("check the access key and secret"))
        #expect(message.contains(backend.location))
        #expect(!message.contains("not-the-secret-key"))
        #expect(proxy.log.count == 1, "a permanent failure was retried: \(proxy.log)")
        #expect(retrying.counts.retries == 0)
    }

    @Test func unreachableServerFailsWithinTheConnectTimeout() async throws {
        let proxy = try await FaultProxy(mode: "no-accept", upstream: "127.0.0.1:1")
        defer { proxy.stop() }
        // The proxy fills its accept queue so that connects hang; should one slip in under load, the
        // 1 s stall limit ends it instead of the default 30 s.
        let backend = try TestServers.s3(endpoint: proxy.url, limits: TransferLimits(connectTimeout: 1, stallSeconds: 1))
        let retrying = RetryingBackend(backend, policy: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01))
        let start = Date()
        let error = await #expect(throws: BackendError.self) { _ = try await retrying.get("data/aa/x") }
        let elapsed = Date().timeIntervalSince(start)
        guard case .transient(let message)? = error else { Issue.record("expected transient, got \(String(describing: error))"); return }
        #expect(message.contains("gave up after 2 attempts"))
        #expect(message.contains("did not answer in time"))
        #expect(retrying.counts.attempts == 2)
        // Two attempts of 1 s each, so at least 1.9 s. No upper bound on wall time: it also holds the
        // test task's wait to resume, which the CLI suites (blocking threads on their processes) stretch
        // past two minutes at times; that each attempt ends at the connect timeout is checked on
        // libcurl's own clock (aConnectThatHangsEndsAtTheConnectTimeout).
        #expect(elapsed >= 1.9, "failed after \(elapsed) s")
    }

    @Test func aConnectThatHangsEndsAtTheConnectTimeout() async throws {
        let proxy = try await FaultProxy(mode: "no-accept", upstream: "127.0.0.1:1")
        defer { proxy.stop() }
        let request = TransferRequest(.get, proxy.url + "/", limits: TransferLimits(connectTimeout: 1, stallSeconds: 1))
        let error = await #expect(throws: TransferError.self) { _ = try await CurlEngine.shared.perform(request) }
        #expect(error?.kind == .timedOut)
        let seconds = try #require(error?.seconds)
        #expect(seconds >= 0.9 && seconds < 3, "libcurl gave up after \(seconds) s")
    }

    @Test func refusedConnectionIsTransient() async throws {
        let backend = try TestServers.s3(endpoint: "http://127.0.0.1:1")
        let error = await #expect(throws: BackendError.self) { _ = try await backend.head("x") }
        #expect(error?.isRetryable == true)
    }

    @Test func uploadCutOnceCompletesOnRetry() async throws {
        let (proxy, backend) = try await Self.proxied("drop-upload-once")
        defer { proxy.stop() }
        let retrying = RetryingBackend(backend, policy: Self.quick)
        let data = Crypto.randomBytes(3 << 20)
        try await retrying.put("data/ab/cut", data: data)
        #expect(try await backend.get("data/ab/cut") == data)
        #expect(retrying.counts.retries == 1)
        #expect(proxy.log.first?.hasSuffix("DROP") == true, "\(proxy.log)")
    }

    @Test func uploadCutEveryTimeFailsCleanlyAndLeavesNoObject() async throws {
        let prefix = TestServers.unique("fault")
        let (proxy, backend) = try await Self.proxied("drop-upload-always", prefix: prefix)
        defer { proxy.stop() }
        let retrying = RetryingBackend(backend, policy: Self.quick)
        let error = await #expect(throws: BackendError.self) { try await retrying.put("data/ab/cut", data: Crypto.randomBytes(3 << 20)) }
        #expect(error?.isRetryable == true)
        #expect(retrying.counts.attempts == Self.quick.maxAttempts)
        // Straight to the server: nothing under the name, nothing listed.
        let direct = try TestServers.s3(prefix: prefix)
        await #expect(throws: BackendError.notFound("data/ab/cut")) { _ = try await direct.head("data/ab/cut") }
        #expect(try await direct.listAll(prefix: "").isEmpty)
    }

    @Test func stalledServerHitsTheLowSpeedTimeout() async throws {
        let (proxy, backend) = try await Self.proxied("stall", limits: TransferLimits(connectTimeout: 2, stallSeconds: 1))
        defer { proxy.stop() }
        let start = Date()
        let error = await #expect(throws: BackendError.self) { _ = try await backend.get("data/aa/x") }
        guard case .transient(let message)? = error else { Issue.record("expected transient, got \(String(describing: error))"); return }
        #expect(message.contains("did not answer in time"))
        #expect(Date().timeIntervalSince(start) < 120) // wall time; the stall limit itself is checked below
    }

    @Test func aServerThatNeverAnswersEndsAtTheStallLimit() async throws {
        let (proxy, _) = try await Self.proxied("stall")
        defer { proxy.stop() }
        let request = TransferRequest(.get, proxy.url + "/a67-test/x", limits: TransferLimits(connectTimeout: 2, stallSeconds: 1))
        let error = await #expect(throws: TransferError.self) { _ = try await CurlEngine.shared.perform(request) }
        #expect(error?.kind == .timedOut)
        let seconds = try #require(error?.seconds)
        #expect(seconds >= 0.9 && seconds < 4, "libcurl gave up after \(seconds) s")
    }

    @Test func tricklingServerHitsTheLowSpeedTimeout() async throws {
        let prefix = TestServers.unique("fault")
        try await TestServers.s3(prefix: prefix).put("data/aa/slow", data: Crypto.randomBytes(64 << 10))
        let (proxy, backend) = try await Self.proxied("trickle-body", limits: TransferLimits(connectTimeout: 2, stallSeconds: 2), prefix: prefix)
        defer { proxy.stop() }
        let error = await #expect(throws: BackendError.self) { _ = try await backend.get("data/aa/slow") }
        guard case .transient(let message)? = error else { Issue.record("expected transient, got \(String(describing: error))"); return }
        #expect(message.contains("did not answer in time"))
    }

    @Test func everyThirdRequestFailingStillGetsThrough() async throws {
        let (proxy, backend) = try await Self.proxied("fail-every-third")
        defer { proxy.stop() }
        let retrying = RetryingBackend(backend, policy: Self.quick, maxConcurrent: 2)
        var objects: [String: [UInt8]] = [:]
        for i in 0..<6 { objects["data/0\(i)/obj"] = Crypto.randomBytes(10_000 + i) }
        for (name, data) in objects { try await retrying.put(name, data: data) }
        for (name, data) in objects { #expect(try await retrying.get(name) == data) }
        #expect(try await retrying.listAll(prefix: "data/").count == 6)
        #expect(retrying.counts.retries >= 4)
        #expect(proxy.log.filter { $0.hasSuffix(" 500") }.count == retrying.counts.retries)
    }

    @Test func truncatedBodyIsDetectedAndRetried() async throws {
        let prefix = TestServers.unique("fault")
        let data = Crypto.randomBytes(1 << 20)
        try await TestServers.s3(prefix: prefix).put("data/aa/t", data: data)
        let (proxy, backend) = try await Self.proxied("truncate-get-once", prefix: prefix)
        defer { proxy.stop() }
        await #expect(throws: BackendError.self) { _ = try await backend.get("data/aa/t") } // the bare backend sees the cut
        let retrying = RetryingBackend(backend, policy: Self.quick)
        #expect(try await retrying.get("data/aa/t") == data)
        #expect(proxy.log.first?.hasSuffix("TRUNC") == true, "\(proxy.log)")
    }

    @Test func throttlingHonoursRetryAfter() async throws {
        let (proxy, backend) = try await Self.proxied("status-429-once")
        defer { proxy.stop() }
        let retrying = RetryingBackend(backend, policy: Self.quick)
        let start = Date()
        try await retrying.put("data/aa/t", data: [1])
        #expect(Date().timeIntervalSince(start) >= 1.0, "Retry-After: 1 was not waited for")
        #expect(retrying.counts.retries == 1)
    }

    @Test func anotherChunksBytesAreCaughtByTheIDCheck() async throws {
        let prefix = TestServers.unique("fault")
        let sealer = ChunkSealer(keys: RepositoryKeys(master: .random()))
        let a = Crypto.randomBytes(100_000), b = Crypto.randomBytes(100_000)
        let idA = sealer.id(of: a), idB = sealer.id(of: b)
        let direct = try TestServers.s3(prefix: prefix)
        try await direct.put(idA.objectName, data: sealer.seal(a, id: idA))
        try await direct.put(idB.objectName, data: sealer.seal(b, id: idB))
        let (proxy, backend) = try await Self.proxied("replay-get", prefix: prefix)
        defer { proxy.stop() }
        let pool = ReplicatedPool(members: [.init(id: 1, name: "s3", backend: backend, quota: nil)], used: [:])
        #expect(try await pool.fetch(idA, from: [1]) { try sealer.open($0, id: idA) } == a)
        // The proxy now answers every GET with A's bytes: B must not be accepted.
        let error = await #expect(throws: StoreError.self) { _ = try await pool.fetch(idB, from: [1]) { try sealer.open($0, id: idB) } }
        #expect(error?.code == .integrity)
    }
}
