import ChunkStore
import Foundation
import HummingbirdTLS

/// The certificate chain and private key `a67 serve --tls-cert --tls-key` serves HTTPS with (PEM
/// files). Read once at start; a file that is missing, unreadable or not PEM stops serve with an error
/// that names it, before anything listens.
public struct TLSFiles: Sendable, Equatable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    /// The server's TLS configuration (TLS 1.2 and up, NIOSSL's default ciphers).
    func configuration() throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw StoreError(.invalidArgument, "--tls-cert \(certificate) is not a readable PEM certificate (\(error)); "
                + "give the certificate (chain) file, for example one made with openssl req -x509")
        }
        guard !chain.isEmpty else {
            throw StoreError(.invalidArgument, "--tls-cert \(certificate) holds no certificate")
        }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw StoreError(.invalidArgument, "--tls-key \(key) is not a readable PEM private key (\(error)); "
                + "give the key that goes with --tls-cert")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}
