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

    /// A byte source that runs `action` once, when `after` bytes have been read.
    final class TriggeringSource: ByteSource, @unchecked Sendable {
        private let data: [UInt8]
        private let after: Int
        private let action: @Sendable () -> Void
        private let offset = Mutex(0)
        let knownSize: Int64?

        init(_ data: [UInt8], after: Int, action: @escaping @Sendable () -> Void) {
            self.data = data
            self.after = after
            self.action = action
            knownSize = Int64(data.count)
        }

        func read(upTo count: Int) throws -> [UInt8] {
            let (slice, fire) = offset.withLock { offset -> ([UInt8], Bool) in
                let end = min(offset + count, data.count)
                defer { offset = end }
                return (Array(data[offset..<end]), offset < after && end >= after)
            }
            if fire { action() }
            return slice
        }
    }

    @Test func theS3ServerDyingDuringALargePutCostsNothingAndRepairRestoresR() async throws {
        let folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", passphrase: Passphrase("p"), settings: settings)
        let proxy = try FaultProxy(mode: "pass", upstream: try Servers.env("A67_TEST_S3_ENDPOINT"))
        defer { proxy.stop() }
        let quick = ConnectionOptions(connectTimeout: 2, stallTimeout: 10)
        _ = try await repository.addProvider(name: "s3", spec: .s3(try Servers.s3Settings(endpoint: proxy.url, prefix: Servers.unique("fault")), quick),
                                             secret: .s3SecretKey(try Servers.env("A67_TEST_S3_SECRET_KEY")), quota: nil)
        let dav = try Servers.env("A67_TEST_WEBDAV_URL") + Servers.unique("fault")
        _ = try await repository.addProvider(name: "dav", spec: .webdav(WebDAVSettings(url: dav, user: try Servers.env("A67_TEST_WEBDAV_USER")), quick),
                                             secret: .password(try Servers.env("A67_TEST_WEBDAV_PASSWORD")), quota: nil)
        _ = try await repository.addProvider(name: "ssh", spec: .sftp(SFTPSettings(url: try Servers.sftpURL(),
                                                                                   hostKeySHA256: try Servers.env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                                                                      ConnectionOptions(connectTimeout: 2, stallTimeout: 10, maxRequests: 4)),
                                             secret: .password(try Servers.env("A67_TEST_SFTP_PASSWORD")), quota: nil)
        _ = try repository.createBucket("fault", replicas: 2)

        let data = Crypto.randomBytes(16 * Self.chunk)
        let source = TriggeringSource(data, after: 4 * Self.chunk) { proxy.stop() }
        _ = try await repository.put(source, bucket: "fault", key: "big")
        let object = try repository.object(bucket: "fault", key: "big")
        #expect(try await read(repository, object) == data, "every byte is there with S3 gone")

        let report = try await repository.repair()
        #expect(report.providersDown == ["s3"])
        #expect(report.failed.isEmpty && report.lost.isEmpty, "\(report.failed) \(report.lost)")
        let ids = Dictionary(uniqueKeysWithValues: try repository.providers().map { ($0.record.name, $0.record.id) })
        let inUse = try repository.catalog.chunksInUse()
        #expect(inUse.count == 17)
        #expect(inUse.allSatisfy { $0.providers.contains(ids["dav"]!) && $0.providers.contains(ids["ssh"]!) },
                "after repair every chunk has its two replicas on the providers that answer")
        #expect(try await read(repository, object) == data)
    }

    func read(_ repository: Repository, _ object: ObjectRecord) async throws -> [UInt8] {
        final class Sink: ByteSink, @unchecked Sendable {
            let bytes = Mutex<[UInt8]>([])
            func write(_ slice: ArraySlice<UInt8>) throws { bytes.withLock { $0 += slice } }
        }
        let sink = Sink()
        try await repository.get(object, bucket: "fault", to: sink)
        return sink.bytes.withLock { $0 }
    }
}
