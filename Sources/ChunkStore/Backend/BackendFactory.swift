/// Builds providers' backends from what the catalog stores about them. The layers above ChunkStore
/// (Replicator, the repository) are handed one by the composition root, the CLI, and never name a
/// backend type: `DirectoryBackendFactory` (here) builds ChunkStore's own kind, RemoteBackends'
/// `RemoteBackendFactory` every kind, directories through this one.
public protocol BackendFactory: Sendable {
    /// The backend for `spec`, a remote one wrapped for retries and its request limit. `secret` is
    /// the provider's credentials, opened. Reaches no provider.
    func makeBackend(_ spec: ProviderSpec, secret: ProviderSecret?) throws -> any Backend

    /// Makes a new provider ready, before anything is stored there (`a67 provider add`): `spec`
    /// settled as the catalog is to keep it (a directory's path resolved, an SFTP host's key pinned
    /// on first contact), its location prepared (`Backend.prepare`), and its backend. May reach the
    /// provider; a `BackendError` says it could not.
    func prepare(_ spec: ProviderSpec, secret: ProviderSecret?) async throws -> (spec: ProviderSpec, backend: any Backend)
}

/// Directory providers: `DirectoryBackend`, unwrapped (a local disk needs no retries).
public struct DirectoryBackendFactory: BackendFactory {
    public init() {}

    public func makeBackend(_ spec: ProviderSpec, secret: ProviderSecret?) throws -> any Backend {
        guard case .directory(let path) = spec else { throw Self.notBuilt(spec) }
        return DirectoryBackend(root: path)
    }

    /// Creates the folder (never a missing parent), then keeps its resolved path.
    public func prepare(_ spec: ProviderSpec, secret: ProviderSecret?) async throws -> (spec: ProviderSpec, backend: any Backend) {
        guard case .directory(let path) = spec else { throw Self.notBuilt(spec) }
        let given = DirectoryBackend(root: path)
        try await given.prepare()
        let resolved = ProviderSpec.directory(path: try await given.resolvedRoot())
        return (resolved, try makeBackend(resolved, secret: secret))
    }

    private static func notBuilt(_ spec: ProviderSpec) -> StoreError {
        StoreError(.internal, "a \(spec.kind) provider needs a backend factory that builds remote providers (\(spec.summary))")
    }
}
