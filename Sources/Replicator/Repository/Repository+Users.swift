import ChunkStore
import Foundation

/// Users and access keys for the blob API (see FORMAT.md, "Access keys").
extension Repository {
    /// Makes a new access key for `user`: a 20-character ID and a 40-character secret, returned once.
    /// Only the sealed secret is kept.
    public func createAccessKey(user name: String) async throws -> (id: String, secret: String) {
        let keys = try unlocked()
        let user = try catalog.accounts.user(named: name)
        let id = "A67" + Self.randomText(17, alphabet: Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
        let secret = Self.randomText(40, alphabet: Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
        let context = Self.accessKeyContext(repositoryID: repositoryID, keyID: id)
        let sealed = Crypto.sealBox(Array(secret.utf8), key: keys.secretsKey, context: context)
        let catalog = self.catalog
        try await offPool { try catalog.accounts.addAccessKey(id: id, user: user.id, sealedSecret: sealed) }
        return (id, secret)
    }

    /// The key `id` and its secret, or nil when there is no such key.
    public func accessKey(_ id: String) throws -> (record: AccessKeyRecord, secret: String)? {
        guard let record = try catalog.accounts.accessKey(id) else { return nil }
        let context = Self.accessKeyContext(repositoryID: repositoryID, keyID: id)
        guard let plain = Crypto.openBox(record.sealedSecret, key: try unlocked().secretsKey, context: context) else {
            throw StoreError(.integrity, "the secret of access key \(id) does not open under this repository's key: the catalog was altered; remove the key (a67 key rm \(id)) and create another")
        }
        return (record, String(decoding: plain, as: UTF8.self))
    }

    /// The associated data an access key's secret is sealed with (FORMAT.md, "Access keys").
    static func accessKeyContext(repositoryID: String, keyID: String) -> [UInt8] {
        Array("automator67/v1/access-key\0\(repositoryID)\0\(keyID)".utf8)
    }

    /// Uniformly random characters of `alphabet` (whose size divides 256).
    static func randomText(_ count: Int, alphabet: [Character]) -> String {
        precondition(256 % alphabet.count == 0)
        return String(Crypto.randomBytes(count).map { alphabet[Int($0) % alphabet.count] })
    }

    /// A writer of objects into this repository's providers. `window` bounds the chunks in flight
    /// (5 MiB each) per object.
    /// Seals what a mount keeps in its local disk cache (FORMAT.md, "Keys"): a key only this
    /// repository's master derives, used nowhere else.
    public func localCacheKey() throws -> SecretKey { try unlocked().master.derive("automator67/v1/local-cache") }

    public func objectWriter(window: Int = 10) throws -> ObjectWriter {
        ObjectWriter(sealer: ChunkSealer(keys: try unlocked(), zstdLevel: try zstdLevel), pool: try pool(), catalog: catalog,
                     window: window)
    }

    public func objectReader(prefetch: Int = 4) throws -> ObjectReader {
        ObjectReader(sealer: ChunkSealer(keys: try unlocked()), pool: try pool(), catalog: catalog, prefetch: prefetch)
    }
}
