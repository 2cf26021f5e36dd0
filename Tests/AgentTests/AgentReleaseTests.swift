import ChunkStore
import Compute
import Foundation
import Synchronization
import Testing
@testable import Agent

/// The agent's bundle releases: what a grant lets it open, and what it refuses.
@Suite struct AgentReleaseTests {
    /// A bundle as the controller would grant it: sealed pieces by hex ID, and the grant.
    struct Granted {
        var sealed: [String: [UInt8]] = [:]
        var grant: BundleGrant
    }

    static func grant(_ folder: String, sealer: ChunkSealer) throws -> Granted {
        let stream = try BundleStream(folder: folder)
        var sealed: [String: [UInt8]] = [:]
        var chunks: [GrantedChunk] = []
        while let piece = try stream.nextPiece() {
            let id = sealer.id(of: piece)
            sealed[id.hex] = sealer.seal(piece, id: id)
            chunks.append(GrantedChunk(id: id.hex, key: Hex.encode(sealer.chunkKey(for: id).bytes), length: piece.count))
        }
        return Granted(sealed: sealed, grant: BundleGrant(sha256: Hex.encode(try #require(stream.sha256)), size: stream.size, chunks: chunks))
    }

    static func folder(_ root: String, pages: Int = 40, seed: UInt8 = 1) throws -> String {
        let folder = root + "/app"
        try FileManager.default.createDirectory(atPath: folder + "/assets", withIntermediateDirectories: true)
        try Data("name = \"web\"\ncommand = [\"./run\"]\n".utf8).write(to: URL(fileURLWithPath: folder + "/a67app.toml"))
        for k in 0..<pages {
            let bytes = (0..<150_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ k &* 7 &+ Int(seed)) }
            try Data(bytes).write(to: URL(fileURLWithPath: folder + "/assets/page-\(k).bin"))
        }
        return folder
    }

    /// Counts the chunks fetched, serving them from `sealed`.
    final class Relay: Sendable {
        let sealed: Mutex<[String: [UInt8]]>
        let fetched = Mutex<[String]>([])
        init(_ sealed: [String: [UInt8]]) { self.sealed = Mutex(sealed) }
        func fetch(_ id: String) throws -> [UInt8] {
            fetched.withLock { $0.append(id) }
            guard let bytes = sealed.withLock({ $0[id] }) else { throw StoreError(.notFound, "no chunk \(id)") }
            return bytes
        }
    }

    @Test func aGrantedBundleIsUnpackedAndAChangedOneFetchesOnlyItsNewChunks() async throws {
        let dir = try TemporaryFolder()
        let sealer = ChunkSealer(keys: RepositoryKeys(master: SecretKey.random()))
        let app = try Self.folder(dir.path)
        let first = try Self.grant(app, sealer: sealer)
        #expect(first.grant.chunks.count > 1)
        let store = try ReleaseStore(root: dir.path + "/agent")
        let relay = Relay(first.sealed)
        let path = try await store.release(first.grant, app: "web", fetch: { try relay.fetch($0) })
        #expect(path == store.path(of: first.grant))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o755, "an instance under another uid can enter its release")
        #expect(try BundleFolder.scan(path) == BundleFolder.scan(app))
        #expect(store.held() == [first.grant.sha256])
        #expect(relay.fetched.withLock { $0.count } == first.grant.chunks.count)

        // Held already: nothing fetched.
        _ = try await store.release(first.grant, app: "web", fetch: { try relay.fetch($0) })
        #expect(relay.fetched.withLock { $0.count } == first.grant.chunks.count)

        // One file changed: only the chunks not cached are fetched.
        try Data(repeating: 7, count: 150_000).write(to: URL(fileURLWithPath: app + "/assets/page-3.bin"))
        let second = try Self.grant(app, sealer: sealer)
        let relay2 = Relay(second.sealed)
        let path2 = try await store.release(second.grant, app: "web", fetch: { try relay2.fetch($0) })
        #expect(try BundleFolder.scan(path2) == BundleFolder.scan(app))
        let fetched = relay2.fetched.withLock { $0.count }
        #expect(fetched >= 1 && fetched <= 2, "\(fetched) of \(second.grant.chunks.count) chunks fetched for a one-file change")
    }

    @Test func aChunkThatDoesNotOpenOrABundleThatDoesNotHashLeavesNothing() async throws {
        let dir = try TemporaryFolder()
        let sealer = ChunkSealer(keys: RepositoryKeys(master: SecretKey.random()))
        let granted = try Self.grant(try Self.folder(dir.path, pages: 40), sealer: sealer)
        try #require(granted.grant.chunks.count >= 2)
        let store = try ReleaseStore(root: dir.path + "/agent")

        // A relay (or a provider behind it) that flips a byte: the chunk key's tag refuses it.
        var tampered = granted.sealed
        let victim = granted.grant.chunks[0].id
        tampered[victim]![40] ^= 1
        let bad = Relay(tampered)
        await #expect(throws: StoreError.self) { _ = try await store.release(granted.grant, app: "web", fetch: { try bad.fetch($0) }) }
        #expect(store.held().isEmpty)

        // Another chunk's bytes under this ID: refused too.
        var swapped = granted.sealed
        swapped[victim] = granted.sealed[granted.grant.chunks[1].id]
        let swap = Relay(swapped)
        await #expect(throws: StoreError.self) { _ = try await store.release(granted.grant, app: "web", fetch: { try swap.fetch($0) }) }
        #expect(store.held().isEmpty)

        // A grant whose SHA-256 is not the archive's: unpacked, checked, and dropped.
        var wrong = granted.grant
        wrong.sha256 = String(repeating: "ab", count: 32)
        let good = Relay(granted.sealed)
        await #expect(throws: StoreError.self) { _ = try await store.release(wrong, app: "web", fetch: { try good.fetch($0) }) }
        #expect(store.held().isEmpty)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/agent/releases")
        #expect(leftovers.isEmpty, "no staging folder left: \(leftovers)")

        // And the right grant still works, from the cache where its chunks verified.
        _ = try await store.release(granted.grant, app: "web", fetch: { try good.fetch($0) })
        #expect(store.held() == [granted.grant.sha256])
    }

    @Test func aBundleBiggerThanTheFreeDiskIsRefusedBeforeAnyFetch() async throws {
        let dir = try TemporaryFolder()
        let sealer = ChunkSealer(keys: RepositoryKeys(master: SecretKey.random()))
        let granted = try Self.grant(try Self.folder(dir.path, pages: 10), sealer: sealer)
        let store = try ReleaseStore(root: dir.path + "/agent", freeSpace: { _ in 1_000_000 })
        let relay = Relay(granted.sealed)
        do {
            _ = try await store.release(granted.grant, app: "web", fetch: { try relay.fetch($0) })
            Issue.record("a bundle of \(granted.grant.size) bytes was unpacked into 1 MB")
        } catch let error as StoreError {
            #expect(error.code == .quotaExceeded)
            #expect(error.message.contains("web") && error.message.contains("free"), "\(error.message)")
        }
        #expect(relay.fetched.withLock { $0.isEmpty })
        #expect(store.held().isEmpty)
    }

    @Test func hostResourcesAreReadFromProcText() {
        let meminfo = "MemTotal:        1013456 kB\nMemFree:          200000 kB\nMemAvailable:     512000 kB\n"
        let parsed = HostResources.parseMeminfo(meminfo)
        #expect(parsed?.total == 1_013_456 * 1024 && parsed?.available == 512_000 * 1024)
        #expect(HostResources.parseMeminfo("nothing here") == nil)
        #expect(HostResources.parseLoadAverage("0.42 0.30 0.20 1/123 4567\n") == 0.42)
        let live = HostResources.capacity(data: "/tmp")
        #expect(live.memoryBytes > 0 && live.cpuMillis >= 1000 && live.diskBytes > 0)
    }

    @Test func theSystemdUnitRunsTheAgentAndLeavesInstancesRunningWhenStopped() {
        let unit = AgentService.unit(binary: "/usr/local/bin/a67", data: "/var/lib/my agent")
        #expect(unit.contains("ExecStart=/usr/local/bin/a67 agent run --data \"/var/lib/my agent\""))
        #expect(unit.contains("KillMode=process"))
        #expect(unit.contains("Restart=always"))
        #expect(unit.contains("WantedBy=multi-user.target"))
    }

    @Test func anIdentityIsSavedWithAPrivateCredentialAndLoadedBack() throws {
        let dir = try TemporaryFolder()
        let identity = AgentIdentity(controller: "https://c:7067", nodeID: "n0123456789abcdef", name: "vm1", address: "10.0.0.5",
                                     caFile: nil, pinnedKey: "sha256//abc=", heartbeatSeconds: 5)
        try identity.save(data: dir.path + "/a", credential: "n0123456789abcdef.secret")
        var st = stat()
        #expect(stat(dir.path + "/a/credential", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let (loaded, credential) = try AgentIdentity.load(data: dir.path + "/a")
        #expect(loaded == identity && credential == "n0123456789abcdef.secret")
        #expect(throws: StoreError.self) { _ = try AgentIdentity.load(data: dir.path + "/none") }
        try Data("n999.other".utf8).write(to: URL(fileURLWithPath: dir.path + "/a/credential"))
        #expect(throws: StoreError.self) { _ = try AgentIdentity.load(data: dir.path + "/a") }
    }
}

/// A temporary folder removed when the value goes.
final class TemporaryFolder: Sendable {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "a67-agent-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
