import BackendTesting
import ChunkStore
import Foundation
import Replicator
import Testing

/// The put path costs one provider request per chunk replica: deduplication is answered from the
/// catalog, never by asking the provider whether a chunk exists. The one other request is the read of
/// the provider's keyring before a process first places a chunk there (a folder or bucket that lost
/// it takes nothing). Counted on the wire, by a pass-through proxy in front of the real S3 server.
@Suite struct RequestCountTests {
    @Test func aPutSendsOneRequestPerChunkAndADuplicateNone() async throws {
        let folder = try TemporaryDirectory()
        let repository = try TestServers.repository(folder)
        let proxy = try await FaultProxy(mode: "pass", upstream: try TestServers.env("A67_TEST_S3_ENDPOINT"))
        defer { proxy.stop() }
        let s3 = try TestServers.s3Settings(endpoint: proxy.url, prefix: TestServers.unique("count"))
        _ = try await repository.addProvider(name: "s3", spec: .s3(s3, ConnectionOptions()),
                                             secret: .s3SecretKey(try TestServers.env("A67_TEST_S3_SECRET_KEY")), quota: nil)
        _ = try await repository.createBucket("counted", replicas: 1)
        let file = folder.path + "/in"
        try Data(Crypto.randomBytes(22 << 20)).write(to: URL(fileURLWithPath: file))

        let before = proxy.log.count
        _ = try await repository.put(try FileSource(path: file), bucket: "counted", key: "a")
        let put = Array(proxy.log.dropFirst(before))
        // 22 MiB: five data chunks and one manifest chunk, after one look at the keyring.
        let puts = put.filter { !$0.contains("/keyring ") }
        #expect(put.count - puts.count == 1 && put.first?.hasPrefix("GET ") == true, "\(put)")
        #expect(puts.count == 6, "\(put)")
        #expect(puts.allSatisfy { $0.hasPrefix("PUT ") && $0.hasSuffix(" 200") }, "\(put)")

        let again = proxy.log.count
        _ = try await repository.put(try FileSource(path: file), bucket: "counted", key: "b")
        #expect(proxy.log.count == again, "a duplicate put asked the provider: \(proxy.log.dropFirst(again))")
    }
}
