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
        private let process: Process

        init() throws {
            folder = try TemporaryDirectory()
            certificate = folder.path + "/cert.pem"
            let key = folder.path + "/key.pem"
            let make = Process()
            make.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            make.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                              "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "1"]
            make.standardError = FileHandle.nullDevice
            try make.run()
            make.waitUntilExit()
            #expect(make.terminationStatus == 0, "openssl req failed")
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key, "-www"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var text = ""
            while !text.contains("ACCEPT") {
                let line = PipeReading.readLine(out.fileHandleForReading.fileDescriptor)
                guard !line.isEmpty else { break }
                text += String(decoding: line, as: UTF8.self) + "\n"
            }
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
                  let port = line.split(separator: ":").last.flatMap({ Int($0) }) else {
                kill(process.processIdentifier, SIGKILL)
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "openssl s_server did not start: \(text)"])
            }
            self.port = port
        }

        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @Test func tlsPeersAreVerifiedUnlessTheirCAIsGiven() async throws {
        let server = try TLSServer()
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
        let base = try Servers.env("A67_TEST_WEBDAV_URL")
        let backend = try WebDAVBackend(settings: WebDAVSettings(url: base, user: try Servers.env("A67_TEST_WEBDAV_USER")),
                                        password: "not-the-password")
        let retrying = RetryingBackend(backend, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.01))
        let error = await #expect(throws: BackendError.self) { try await retrying.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("HTTP 401") && message.contains("access denied"))
        #expect(!message.contains("not-the-password"))
        #expect(retrying.counts.attempts == 1)
    }

    @Test func wrongSFTPPasswordIsAnAccessError() async throws {
        let backend = try SFTPBackend(settings: SFTPSettings(url: try Servers.sftpURL(), hostKeySHA256: try Servers.env("A67_TEST_SFTP_HOST_KEY_SHA256")),
                                      login: .password("not-the-password"))
        let retrying = RetryingBackend(backend, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.01))
        let error = await #expect(throws: BackendError.self) { try await retrying.put("x", data: [1]) }
        guard case .permanent(let message)? = error else { Issue.record("expected permanent, got \(String(describing: error))"); return }
        #expect(message.contains("access denied"))
        #expect(!message.contains("not-the-password"))
        #expect(retrying.counts.attempts == 1)
    }
}
