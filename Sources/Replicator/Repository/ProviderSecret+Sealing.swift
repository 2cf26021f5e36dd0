import ChunkStore
import Foundation

/// Sealing a provider's credentials into the catalog (`provider.sealed_secret`, FORMAT.md "Provider
/// credentials").
extension ProviderSecret {
    private struct Stored: Codable {
        var kind: String
        var value: String?
        var key: Data?
        var passphrase: String?
    }

    /// AES-256-GCM under the repository's secrets key, bound to the repository and provider name.
    func seal(keys: RepositoryKeys, repositoryID: String, provider: String) -> [UInt8] {
        let stored: Stored = switch self {
        case .s3SecretKey(let value): Stored(kind: "s3-secret-key", value: value)
        case .password(let value): Stored(kind: "password", value: value)
        case .sshKey(let key, let passphrase): Stored(kind: "ssh-key", key: Data(key), passphrase: passphrase)
        }
        let plaintext = [UInt8](try! JSONEncoder().encode(stored))
        return Crypto.sealBox(plaintext, key: keys.secretsKey, context: Self.context(repositoryID, provider))
    }

    static func open(_ sealed: [UInt8], keys: RepositoryKeys, repositoryID: String, provider: String) throws -> ProviderSecret {
        guard let plaintext = Crypto.openBox(sealed, key: keys.secretsKey, context: context(repositoryID, provider)),
              let stored = try? JSONDecoder().decode(Stored.self, from: Data(plaintext)) else {
            throw StoreError(.integrity, "the credentials of provider \(provider) do not open under this repository's key: the catalog was altered or belongs elsewhere; add the provider again")
        }
        switch (stored.kind, stored.value, stored.key) {
        case ("s3-secret-key", let value?, _): return .s3SecretKey(value)
        case ("password", let value?, _): return .password(value)
        case ("ssh-key", _, let key?): return .sshKey([UInt8](key), passphrase: stored.passphrase)
        default: throw StoreError(.internal, "the credentials of provider \(provider) are of an unknown kind \(stored.kind)")
        }
    }

    private static func context(_ repositoryID: String, _ provider: String) -> [UInt8] {
        Array("automator67/v1/provider-secret\0\(repositoryID)\0\(provider)".utf8)
    }
}
