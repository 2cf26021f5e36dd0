import ChunkStore
import Foundation
import Testing
@testable import Replicator

/// The catalog's sealed provider credentials: the reading side of the pinned vector in
/// ChunkStoreTests (ProviderSecretVectorTests), and round trips of every kind.
struct ProviderSecretTests {
    static let keys = RepositoryKeys(master: SecretKey(bytes: Array(UInt8(0x00)...UInt8(0x1f))))
    static let repositoryID = "101112131415161718191a1b1c1d1e1f"
    static let pinnedBox = "a0a1a2a3a4a5a6a7a8a9aaab4af90529959af28c10e238bd3ac0eb9b1b07bd82e8732b90835f20947d4664a7ae2afcb6"
        + "0312813a5e355bf7eacd5a6779dbf52a032e859fd5d1dec90ddb6f16f96968260672aeb5ef56f92fe513786de804e57a6537f2653e1e72"

    @Test func thePinnedBoxOpensAsAnS3SecretKey() throws {
        let box = try #require(Hex.decode(Self.pinnedBox))
        let secret = try ProviderSecret.open(box, keys: Self.keys, repositoryID: Self.repositoryID, provider: "r2")
        #expect(secret == .s3SecretKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
        #expect(throws: StoreError.self) {
            _ = try ProviderSecret.open(box, keys: Self.keys, repositoryID: Self.repositoryID, provider: "other")
        }
    }

    @Test(arguments: [ProviderSecret.s3SecretKey("k"), .password("p w"), .sshKey([1, 2, 3], passphrase: "x"), .sshKey([4], passphrase: nil)])
    func everyKindRoundTrips(_ secret: ProviderSecret) throws {
        let box = secret.seal(keys: Self.keys, repositoryID: Self.repositoryID, provider: "p")
        #expect(try ProviderSecret.open(box, keys: Self.keys, repositoryID: Self.repositoryID, provider: "p") == secret)
    }
}
