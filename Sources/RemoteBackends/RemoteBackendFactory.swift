import ChunkStore
import CurlTransport

/// Every kind of provider a67 knows: S3, WebDAV and SFTP here, each wrapped in a `RetryingBackend`
/// with its request limit, and directories through ChunkStore's `DirectoryBackendFactory`. The CLI
/// hands it to the repository.
public struct RemoteBackendFactory: BackendFactory {
    private let directories = DirectoryBackendFactory()

    public init() {}

    public func makeBackend(_ spec: ProviderSpec, secret: ProviderSecret?) throws -> any Backend {
        switch spec {
        case .directory:
            return try directories.makeBackend(spec, secret: secret)
        case .s3(let settings, let options):
            guard case .s3SecretKey(let key)? = secret else { throw Self.missingSecret("S3 secret key") }
            let backend = try S3Backend(settings: settings, secretKey: key, limits: options.limits,
                                        trust: PeerTrust(caFile: options.caFile))
            return RetryingBackend(backend, maxConcurrent: options.maxRequests)
        case .webdav(let settings, let options):
            guard case .password(let password)? = secret else { throw Self.missingSecret("WebDAV password") }
            let backend = try WebDAVBackend(settings: settings, password: password, limits: options.limits,
                                            trust: PeerTrust(caFile: options.caFile))
            return RetryingBackend(backend, maxConcurrent: options.maxRequests)
        case .sftp(let settings, let options):
            return RetryingBackend(try sftp(settings, options, secret: secret), maxConcurrent: options.maxRequests)
        }
    }

    /// An SFTP host without a pinned key is trusted on first contact: the key it shows now is pinned.
    public func prepare(_ spec: ProviderSpec, secret: ProviderSecret?) async throws -> (spec: ProviderSpec, backend: any Backend) {
        var spec = spec
        switch spec {
        case .directory:
            return try await directories.prepare(spec, secret: secret)
        case .sftp(var settings, let options) where settings.hostKeySHA256 == nil:
            settings.hostKeySHA256 = try await sftp(settings, options, secret: secret).hostKeyFingerprint()
            spec = .sftp(settings, options)
        default:
            break
        }
        let backend = try makeBackend(spec, secret: secret)
        try await backend.prepare()
        return (spec, backend)
    }

    private func sftp(_ settings: SFTPSettings, _ options: ConnectionOptions, secret: ProviderSecret?) throws -> SFTPBackend {
        let login: SFTPLogin
        switch secret {
        case .password(let password)?: login = .password(password)
        case .sshKey(let key, let passphrase)?: login = .key(try SecretFile(contents: key), passphrase: passphrase)
        default: throw Self.missingSecret("SFTP key or password")
        }
        return try SFTPBackend(settings: settings, login: login, limits: options.limits)
    }

    private static func missingSecret(_ what: String) -> StoreError {
        StoreError(.internal, "the catalog holds no \(what) for this provider")
    }
}

extension ConnectionOptions {
    var limits: TransferLimits { TransferLimits(connectTimeout: connectTimeout, stallSeconds: stallTimeout) }
}
