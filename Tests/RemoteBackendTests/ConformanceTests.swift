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
        try await BackendConformance.run(try Servers.s3())
    }

    @Test func s3ThroughTheRetryWrapper() async throws {
        try await BackendConformance.run(RetryingBackend(try Servers.s3(), maxConcurrent: 3))
    }

    @Test func webdavAgainstRclone() async throws {
        // Through the retry wrapper, as a67 runs it: rclone answers 423 Locked to concurrent MOVEs
        // onto one name, a transient refusal.
        try await BackendConformance.run(RetryingBackend(try await Servers.webdav(), maxConcurrent: 8))
    }

    @Test func sftpWithKeyAgainstOpenSSH() async throws {
        try await BackendConformance.run(RetryingBackend(try Servers.sftpWithKey(), maxConcurrent: 4))
    }

    @Test func sftpWithPasswordAgainstOpenSSH() async throws {
        try await BackendConformance.run(RetryingBackend(try Servers.sftpWithPassword(), maxConcurrent: 4))
    }

    @Test func sftpRefusesAnotherHostKey() async throws {
        let key = try Data(contentsOf: URL(fileURLWithPath: try Servers.env("A67_TEST_SFTP_KEY_FILE")))
        let wrong = Data(Crypto.sha256([1, 2, 3])).base64EncodedString().replacingOccurrences(of: "=", with: "")
        let backend = try SFTPBackend(settings: SFTPSettings(url: try Servers.sftpURL(), hostKeySHA256: wrong),
                                      login: .key(try SecretFile(contents: [UInt8](key)), passphrase: nil))
        let error = await #expect(throws: BackendError.self) { try await backend.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected a permanent error, got \(String(describing: error))"); return }
        #expect(message.contains("identity did not verify"))
    }

    @Test func sftpReportsTheHostKeyItSaw() async throws {
        let backend = try SFTPBackend(settings: SFTPSettings(url: try Servers.sftpURL()), login: .password(try Servers.env("A67_TEST_SFTP_PASSWORD")))
        #expect(try await backend.hostKeyFingerprint() == (try Servers.env("A67_TEST_SFTP_HOST_KEY_SHA256")))
    }

    @Test func s3VirtualHostedAddressingBuildsTheBucketHost() async throws {
        // SeaweedFS is reached by IP, so virtual-hosted style cannot resolve BUCKET.127.0.0.1: the
        // request must fail to connect (unreachable), which shows the bucket went into the host name.
        var settings = try Servers.s3Settings(prefix: "x")
        settings.pathStyle = false
        let backend = try S3Backend(settings: settings, secretKey: "s", limits: TransferLimits(connectTimeout: 2))
        let error = await #expect(throws: BackendError.self) { _ = try await backend.head("x") }
        guard case .transient(let message)? = error else { Issue.record("expected transient, got \(String(describing: error))"); return }
        #expect(message.contains("a67-test.127.0.0.1") || message.lowercased().contains("resolve"))
    }
}
