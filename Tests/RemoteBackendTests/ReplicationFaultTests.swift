import BackendTesting
import ChunkStore
import Foundation
import RemoteBackends
import Replicator
import Synchronization
import Testing

/// Issue 4's fault tests over the remote backends: three real servers (S3, WebDAV, SFTP), R=2, and
/// the S3 server dying in the middle of a large put (its proxy killed: the same refused connections,
/// without taking the shared server from the other suites).
@Suite struct RemoteReplicationFaultTests {
    static let chunk = ChunkSealer.maxChunkSize

    @Test func theS3ServerDyingDuringALargePutCostsNothingAndRepairRestoresR() async throws {
        let folder = try TemporaryDirectory()
        let proxy = try await FaultProxy(mode: "pass", upstream: try TestServers.env("A67_TEST_S3_ENDPOINT"))
        defer { proxy.stop() }
        let repository = try await Self.threeRemotes(folder, s3Endpoint: proxy.url)

        let data = Crypto.randomBytes(16 * Self.chunk)
        let source = BytesSource(data, after: 4 * Self.chunk) { proxy.stop() }
        _ = try await repository.put(source, bucket: "fault", key: "big")
        let object = try repository.object(bucket: "fault", key: "big")
        #expect(try await read(repository, object) == data, "every byte is there with S3 gone")

        let report = try await repository.repair()
        #expect(report.providersDown == ["s3"])
        #expect(report.failed.isEmpty && report.lost.isEmpty, "\(report.failed) \(report.lost)")
        let ids = Dictionary(uniqueKeysWithValues: try repository.providers().map { ($0.record.name, $0.record.id) })
        let inUse = try repository.catalog.chunks.inUse()
        #expect(inUse.count == 17)
        #expect(inUse.allSatisfy { $0.providers.contains(ids["dav"]!) && $0.providers.contains(ids["ssh"]!) },
                "after repair every chunk has its two replicas on the providers that answer")
        #expect(try await read(repository, object) == data)
    }

    func read(_ repository: Repository, _ object: ObjectRecord) async throws -> [UInt8] {
        let sink = BytesSink()
        try await repository.get(object, bucket: "fault", to: sink)
        return sink.bytes
    }

    /// A repository over the three real servers (S3, WebDAV, SFTP), R=2.
    static func threeRemotes(_ folder: TemporaryDirectory, s3Endpoint: String? = nil) async throws -> Repository {
        let repository = try TestServers.repository(folder)
        let quick = ConnectionOptions(connectTimeout: 2, stallTimeout: 10)
        _ = try await repository.addProvider(name: "s3", spec: .s3(try TestServers.s3Settings(endpoint: s3Endpoint, prefix: TestServers.unique("maint")), quick),
                                             secret: .s3SecretKey(try TestServers.env("A67_TEST_S3_SECRET_KEY")), quota: nil)
        let dav = try TestServers.env("A67_TEST_WEBDAV_URL") + TestServers.unique("maint")
        _ = try await repository.addProvider(name: "dav", spec: .webdav(WebDAVSettings(url: dav, user: try TestServers.env("A67_TEST_WEBDAV_USER")), quick),
                                             secret: .password(try TestServers.env("A67_TEST_WEBDAV_PASSWORD")), quota: nil)
        _ = try await repository.addProvider(name: "ssh", spec: .sftp(SFTPSettings(url: try TestServers.sftpURL(),
                                                                                   hostKeySHA256: try TestServers.env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                                                                      ConnectionOptions(connectTimeout: 2, stallTimeout: 10, maxRequests: 4)),
                                             secret: .password(try TestServers.env("A67_TEST_SFTP_PASSWORD")), quota: nil)
        _ = try await repository.createBucket("fault", replicas: 2)
        return repository
    }

    static func backend(_ repository: Repository, _ name: String) throws -> any Backend {
        try repository.backend(for: try repository.providers().first { $0.record.name == name }!)
    }

    /// For each remote kind in turn: its copies corrupted, then deleted outright; every get still
    /// succeeds, scrub finds the damage and repair restores two good replicas.
    @Test(arguments: ["s3", "dav", "ssh"])
    func damagedAndDeletedCopiesOnOneRemoteAreFoundAndRepaired(victim: String) async throws {
        let folder = try TemporaryDirectory()
        let repository = try await Self.threeRemotes(folder)
        let data = Crypto.randomBytes(3 * Self.chunk + 5)
        _ = try await repository.put(BytesSource(data), bucket: "fault", key: "k")
        let object = try repository.object(bucket: "fault", key: "k")
        let victimID = try repository.providers().first { $0.record.name == victim }!.record.id
        let backend = try Self.backend(repository, victim)
        // Rendezvous placement leaves a given provider out of all four chunks about once in 81 puts:
        // more one-chunk objects until the victim holds a copy, so the test never runs on nothing.
        var extra = 0
        while try repository.catalog.chunks.placements(on: victimID).isEmpty && extra < 20 {
            extra += 1
            _ = try await repository.put(BytesSource(Crypto.randomBytes(Self.chunk)), bucket: "fault", key: "extra\(extra)")
        }
        let held = try repository.catalog.chunks.placements(on: victimID)
        #expect(!held.isEmpty, "\(victim) holds some of the chunks")

        // Every copy on the victim corrupted (one byte flipped), through the provider's own protocol.
        for chunk in held {
            var bytes = try await backend.get(chunk.id.objectName)
            bytes[bytes.count / 2] ^= 0x10
            try await backend.put(chunk.id.objectName, data: bytes)
        }
        #expect(try await read(repository, object) == data, "the other replicas serve every get")
        // The get forgot the bad copies it met (which ones depends on the read order); scrub finds the
        // rest: together, every copy on the victim.
        let forgottenByGet = held.count - (try repository.catalog.chunks.placements(on: victimID).count)
        let scrub = try await repository.scrub()
        #expect(scrub.corrupt.count == held.count - forgottenByGet, "\(scrub.corrupt)")
        #expect(try repository.catalog.chunks.underReplicated().count == held.count)
        let repaired = try await repository.repair()
        #expect(repaired.failed.isEmpty && repaired.lost.isEmpty)
        let clean = try await repository.scrub()
        #expect(clean.corrupt.isEmpty && clean.missing.isEmpty, "after repair: \(clean.corrupt) \(clean.missing)")
        #expect(try repository.catalog.chunks.underReplicated().isEmpty)

        // Then every chunk on the victim deleted.
        let onVictim = try repository.catalog.chunks.placements(on: victimID).count
        for chunk in try repository.catalog.chunks.placements(on: victimID) { try await backend.delete(chunk.id.objectName) }
        #expect(try await read(repository, object) == data)
        _ = try await repository.scrub()
        #expect(try repository.catalog.chunks.underReplicated().count == onVictim, "every deleted copy was found missing")
        _ = try await repository.repair()
        #expect(try repository.catalog.chunks.underReplicated().isEmpty)
        let final = try await repository.scrub()
        #expect(final.corrupt.isEmpty && final.missing.isEmpty && final.unreadable.isEmpty)
        #expect(try await read(repository, object) == data)
    }

    /// gc over remote listings: stray chunk files on each remote kind are deleted after the grace
    /// period only; a provider whose listing fails is skipped, nothing deleted there.
    @Test func gcSweepsStrayFilesFromRemoteListingsAndSkipsAProviderWhoseListingFails() async throws {
        let folder = try TemporaryDirectory()
        let proxy = try await FaultProxy(mode: "pass", upstream: try TestServers.env("A67_TEST_S3_ENDPOINT"))
        defer { proxy.stop() }
        let repository = try await Self.threeRemotes(folder, s3Endpoint: proxy.url)
        let data = Crypto.randomBytes(2 * Self.chunk)
        _ = try await repository.put(BytesSource(data), bucket: "fault", key: "k")
        // WebDAV and SFTP each hold a chunk (placement is by chunk ID: three chunks miss one of them
        // about one time in 27).
        let davAndSSH = try repository.providers().filter { ["dav", "ssh"].contains($0.record.name) }.map(\.record.id)
        var more = 0
        while try davAndSSH.contains(where: { try repository.catalog.chunks.placements(on: $0).isEmpty }) {
            more += 1
            _ = try await repository.put(BytesSource(Crypto.randomBytes(1000)), bucket: "fault", key: "more-\(more)")
        }
        // A stray chunk file on each provider, as a put killed before recording it would leave.
        var strays: [String: String] = [:]
        for name in ["s3", "dav", "ssh"] {
            let stray = ChunkID(bytes: Crypto.randomBytes(32)).objectName
            try await Self.backend(repository, name).put(stray, data: Crypto.randomBytes(1000))
            strays[name] = stray
        }
        // And on WebDAV and SFTP: an upload cut short beside a chunk that exists, one of a chunk never
        // stored, and an old copy an overwrite moved aside with nothing beside it (it could be the only
        // copy left by an overwrite cut between its renames: it stays).
        var beside: [String: String] = [:], fresh: [String: String] = [:], alone: [String: String] = [:]
        for name in ["dav", "ssh"] {
            let id = try repository.providers().first { $0.record.name == name }!.record.id
            let held = try repository.catalog.chunks.placements(on: id)[0].id
            let folder = "data/" + held.hex.prefix(2) + "/"
            beside[name] = folder + "." + held.hex + ".a67-partial-cut1"
            fresh[name] = folder + "." + String(repeating: "1", count: 64) + ".a67-partial-cut2"
            alone[name] = folder + "." + String(repeating: "0", count: 64) + ".a67-partial-old-cut3"
            for leftover in [beside[name]!, fresh[name]!, alone[name]!] {
                try await Self.backend(repository, name).put(leftover, data: Crypto.randomBytes(500))
            }
        }
        let early = try await repository.collectGarbage(grace: 3600)
        #expect(early.orphansDeleted == 0 && early.orphansWaiting == 7, "\(early)")
        // S3's listing now fails: gc must skip it and delete nothing there.
        await proxy.stopped()
        let late = try await repository.collectGarbage(grace: 0)
        #expect(late.skippedProviders.count == 1 && late.skippedProviders[0].hasPrefix("s3"), "\(late.skippedProviders)")
        #expect(late.orphansDeleted == 6, "the strays and cut-short uploads on WebDAV and SFTP go: \(late)")
        for name in ["dav", "ssh"] {
            let backend = try Self.backend(repository, name)
            await #expect(throws: BackendError.self) { _ = try await backend.head(strays[name]!) }
            await #expect(throws: BackendError.self) { _ = try await backend.head(beside[name]!) }
            await #expect(throws: BackendError.self) { _ = try await backend.head(fresh[name]!) }
            _ = try await backend.head(alone[name]!)
        }
        #expect(try await read(repository, try repository.object(bucket: "fault", key: "k")) == data, "nothing in use was touched")
    }
}
