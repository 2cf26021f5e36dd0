import BackendTesting
import ChunkStore
import CurlTransport
import Foundation
import RemoteBackends
import Testing

/// The conformance suite every backend passes (BackendTesting.BackendConformance), run against real
/// servers on loopback: SeaweedFS for S3, rclone for WebDAV, OpenSSH for SFTP.
@Suite struct ConformanceTests {
    @Test func s3AgainstSeaweedFS() async throws {
        try await BackendConformance.run(try TestServers.s3())
    }

    @Test func s3ThroughTheRetryWrapper() async throws {
        try await BackendConformance.run(RetryingBackend(try TestServers.s3(), maxConcurrent: 3))
    }

    @Test func webdavAgainstRclone() async throws {
        // Through the retry wrapper, as a67 runs it: rclone answers 423 Locked to concurrent MOVEs
        // onto one name, a transient refusal.
        try await BackendConformance.run(RetryingBackend(try await TestServers.webdav(), maxConcurrent: 8), leftovers: .besideFinal)
    }

    @Test func sftpWithKeyAgainstOpenSSH() async throws {
        try await BackendConformance.run(RetryingBackend(try TestServers.sftpWithKey(), maxConcurrent: 4), leftovers: .besideFinal)
    }

    @Test func sftpWithPasswordAgainstOpenSSH() async throws {
        try await BackendConformance.run(RetryingBackend(try TestServers.sftpWithPassword(), maxConcurrent: 4), leftovers: .besideFinal)
    }

    @Test func sftpRefusesAnotherHostKey() async throws {
        let key = try Data(contentsOf: URL(fileURLWithPath: try TestServers.env("A67_TEST_SFTP_KEY_FILE")))
        let wrong = Data(Crypto.sha256([1, 2, 3])).base64EncodedString().replacingOccurrences(of: "=", with: "")
        let backend = try SFTPBackend(settings: SFTPSettings(url: try TestServers.sftpURL(), hostKeySHA256: wrong),
                                      login: .key(try SecretFile(contents: [UInt8](key)), passphrase: nil))
        let error = await #expect(throws: BackendError.self) { try await backend.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected a permanent error, got \(String(describing: error))"); return }
        #expect(message.contains("identity did not verify"))
    }

    @Test func sftpReportsTheHostKeyItSaw() async throws {
        let backend = try SFTPBackend(settings: SFTPSettings(url: try TestServers.sftpURL()), login: .password(try TestServers.env("A67_TEST_SFTP_PASSWORD")))
        #expect(try await backend.hostKeyFingerprint() == (try TestServers.env("A67_TEST_SFTP_HOST_KEY_SHA256")))
    }

    @Test func s3VirtualHostedAgainstSeaweedFS() async throws {
        // BUCKET.localhost: libcurl resolves every *.localhost name to loopback, and tools/servers
        // starts SeaweedFS with -s3.domainName=localhost.
        let endpoint = try TestServers.env("A67_TEST_S3_ENDPOINT").replacingOccurrences(of: "127.0.0.1", with: "localhost")
        var settings = try TestServers.s3Settings(endpoint: endpoint, prefix: TestServers.unique("vhost"))
        settings.pathStyle = false
        let backend = try S3Backend(settings: settings, secretKey: try TestServers.env("A67_TEST_S3_SECRET_KEY"))
        #expect(backend.location.contains("localhost"))
        try await BackendConformance.run(backend)
        // The objects really are in the bucket the host name named: path-style sees them.
        var pathStyle = settings
        pathStyle.pathStyle = true
        let direct = try S3Backend(settings: pathStyle, secretKey: try TestServers.env("A67_TEST_S3_SECRET_KEY"))
        try await backend.put("data/aa/v", data: [7, 7])
        #expect(try await direct.get("data/aa/v") == [7, 7])
    }
}
