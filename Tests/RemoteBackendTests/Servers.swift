import BackendTesting
import ChunkStore
import CurlTransport
import Foundation
import RemoteBackends
import Replicator
import Testing

/// The backends and repositories of the remote suites over the real servers.
extension TestServers {
    /// A new repository in `folder` (a cheap scrypt: these tests are not about the passphrase).
    static func repository(_ folder: TemporaryDirectory) throws -> Repository {
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        return try Repository.initialize(home: folder.path + "/home", backends: RemoteBackendFactory(), passphrase: Passphrase("p"),
                                         settings: settings)
    }

    // MARK: S3 (SeaweedFS)

    static func s3Settings(endpoint: String? = nil, prefix: String, bucket: String? = nil) throws -> S3Settings {
        S3Settings(endpoint: try endpoint ?? env("A67_TEST_S3_ENDPOINT"), bucket: try bucket ?? env("A67_TEST_S3_BUCKET"),
                   region: try env("A67_TEST_S3_REGION"), pathStyle: true, prefix: prefix,
                   accessKeyID: try env("A67_TEST_S3_ACCESS_KEY"))
    }

    static func s3(endpoint: String? = nil, prefix: String = unique("run"), secret: String? = nil,
                   limits: TransferLimits = .init()) throws -> S3Backend {
        try S3Backend(settings: try s3Settings(endpoint: endpoint, prefix: prefix), secretKey: try secret ?? env("A67_TEST_S3_SECRET_KEY"),
                      limits: limits)
    }

    // MARK: WebDAV (rclone serve webdav)

    /// A backend on a new, empty folder of the WebDAV server.
    static func webdav() async throws -> WebDAVBackend {
        let base = try env("A67_TEST_WEBDAV_URL")
        let folder = (base.hasSuffix("/") ? base : base + "/") + unique("run")
        let user = try env("A67_TEST_WEBDAV_USER")
        let password = try env("A67_TEST_WEBDAV_PASSWORD")
        let made = try await CurlEngine.shared.perform(TransferRequest(.custom("MKCOL"), folder + "/",
                                                                       credentials: TransferCredentials(user: user, password: password)))
        #expect(made.status == 201, "MKCOL of the test folder answered \(made.status)")
        return try WebDAVBackend(settings: WebDAVSettings(url: folder, user: user), password: password)
    }

    // MARK: SFTP (OpenSSH sshd)

    static func sftpURL() throws -> String { try env("A67_TEST_SFTP_URL") + "/" + unique("run") }

    static func sftpWithKey() throws -> SFTPBackend {
        let key = try Data(contentsOf: URL(fileURLWithPath: try env("A67_TEST_SFTP_KEY_FILE")))
        return try SFTPBackend(settings: SFTPSettings(url: try sftpURL(), hostKeySHA256: try env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                               login: .key(try SecretFile(contents: [UInt8](key)), passphrase: nil))
    }

    static func sftpWithPassword() throws -> SFTPBackend {
        try SFTPBackend(settings: SFTPSettings(url: try sftpURL(), hostKeySHA256: try env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                        login: .password(try env("A67_TEST_SFTP_PASSWORD")))
    }
}
