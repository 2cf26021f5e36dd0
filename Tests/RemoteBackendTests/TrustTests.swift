import BackendTesting
import ChunkStore
import CurlTransport
import Foundation
import RemoteBackends
import Testing

/// TLS peers are verified by default, a per-provider CA file is honoured, and wrong logins to the
/// real WebDAV and SFTP servers fail at once as access errors.
@Suite struct TrustTests {
    /// `openssl s_server` on loopback with a fresh self-signed certificate for localhost.
    final class TLSServer {
        let port: Int
        let certificate: String
        let folder: TemporaryDirectory
        private let server: ChildProcess

        init() async throws {
            folder = try TemporaryDirectory()
            certificate = folder.path + "/cert.pem"
            let key = folder.path + "/key.pem"
            let make = try await ChildProcess.run("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "1",
            ], stdout: .inherit, stderr: .discard)
            #expect(make.status == 0, "openssl req failed")
            server = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key, "-www"],
                                      stdout: .lines, stderr: .discard)
            var text = ""
            while !text.contains("ACCEPT") {
                let line = await server.readLine()
                guard !line.isEmpty else { break }
                text += line + "\n"
            }
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
                  let port = line.split(separator: ":").last.flatMap({ Int($0) }) else {
                server.signal(SIGKILL)
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "openssl s_server did not start: \(text)"])
            }
            self.port = port
        }

        /// Kills the server (its exit follows within moments).
        func stop() { server.signal(SIGKILL) }
    }

    @Test func tlsPeersAreVerifiedUnlessTheirCAIsGiven() async throws {
        let server = try await TLSServer()
        defer { server.stop() }
        let url = "https://localhost:\(server.port)/"
        let refused = await #expect(throws: TransferError.self) { _ = try await CurlEngine.shared.perform(TransferRequest(.get, url)) }
        #expect(refused?.kind == .untrustedPeer)

        let trusted = try await CurlEngine.shared.perform(TransferRequest(.get, url, trust: PeerTrust(caFile: server.certificate)))
        #expect(trusted.status == 200)

        // Through a backend: a permanent error that says what to check.
        let backend = try S3Backend(settings: S3Settings(endpoint: url, bucket: "abc", pathStyle: true, accessKeyID: "k"), secretKey: "s")
        let error = await #expect(throws: BackendError.self) { _ = try await backend.head("x") }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("identity did not verify"))
    }

    @Test func wrongWebDAVPasswordIsAnAccessError() async throws {
        let base = try TestServers.env("A67_TEST_WEBDAV_URL")
        let backend = try WebDAVBackend(settings: WebDAVSettings(url: base, user: try TestServers.env("A67_TEST_WEBDAV_USER")),
                                        password: "not-the-password")
        let retrying = RetryingBackend(backend, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.01))
        let error = await #expect(throws: BackendError.self) { try await retrying.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("HTTP 401") && message.contains("access denied"))
        #expect(!message.contains("not-the-password"))
        #expect(retrying.counts.attempts == 1)
    }

    @Test func wrongSFTPPasswordIsAnAccessError() async throws {
        let backend = try SFTPBackend(settings: SFTPSettings(url: try TestServers.sftpURL(), hostKeySHA256: try TestServers.env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                                      login: .password("not-the-password"))
        let retrying = RetryingBackend(backend, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.01))
        let error = await #expect(throws: BackendError.self) { try await retrying.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("access denied"))
        #expect(!message.contains("not-the-password"))
        #expect(retrying.counts.attempts == 1)
    }
}
