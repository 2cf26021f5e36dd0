import ChunkStore
import Foundation
import Testing
@testable import Replicator

/// The catalog root pointer (FORMAT.md, "Catalog snapshots"), pinned: the box below was made
/// independently with Python's cryptography (AESGCM under HMAC(master, "automator67/v1/catalog-root"),
/// nonce a0..ab, associated data "automator67/v1/catalog-root" NUL repository ID in hex).
struct RootPointerTests {
    static let keys = RepositoryKeys(master: SecretKey(bytes: Array(UInt8(0x00)...UInt8(0x1f))))
    static let repositoryID = "101112131415161718191a1b1c1d1e1f"
    static let rootKeyHex = "021a5a74a0a405164a9c2975139b48328e8d8f21119ee4e550b974e1fc27d660"
    static let plaintext = #"{"chunks":[{"id":"2f5f65d81ab65af063159df17cbecef15d2bb2cf153343dd6ea4d1ea142deca6","length":24}],"createdAt":0,"sequence":1,"size":24,"version":1}"#
    static let pinnedBox = "a0a1a2a3a4a5a6a7a8a9aaabd799eaeb4f2537794f149d1d5ffdac1ebda0c372453aaee03a34ddb21d639ad9baefa12d1b3f0b3eae"
        + "55932077de493667d445b11f173c5a05a48c54663b87a3e6e3a5204efa6edee6099508ee41851956968d1b336d18db9a7ba25cd98f175abdd0cb4"
        + "62b29430751e148584d5a77d1e76d47671ce21ae3154992239a179d0e620483e2757e782c2fe9f682c18e274e00b019a38358a597c87600eed9e2"
        + "66f0f6412d"
    static let root = Repository.SnapshotRoot(
        sequence: 1, createdAt: 0, size: 24,
        chunks: [.init(id: "2f5f65d81ab65af063159df17cbecef15d2bb2cf153343dd6ea4d1ea142deca6", length: 24)])

    @Test func rootKeyAndThePinnedPointerOpen() throws {
        #expect(Hex.encode(Self.keys.rootKey.bytes) == Self.rootKeyHex)
        let opened = try Repository.openRoot(Hex.decode(Self.pinnedBox)!, keys: Self.keys, repositoryID: Self.repositoryID, source: "test")
        #expect(opened == Self.root)
    }

    @Test func sealingWritesTheDocumentedPlaintext() {
        let box = Repository.sealRoot(Self.root, keys: Self.keys, repositoryID: Self.repositoryID)
        let plaintext = Crypto.openBox(box, key: Self.keys.rootKey, context: Array("automator67/v1/catalog-root\0\(Self.repositoryID)".utf8))
        #expect(plaintext.map { String(decoding: $0, as: UTF8.self) } == Self.plaintext)
    }

    @Test func anotherRepositoryOrAlteredBytesDoNotOpen() throws {
        let box = Hex.decode(Self.pinnedBox)!
        #expect(throws: StoreError.self) {
            _ = try Repository.openRoot(box, keys: Self.keys, repositoryID: "00" + Self.repositoryID.dropFirst(2), source: "test")
        }
        var altered = box
        altered[40] ^= 1
        #expect(throws: StoreError.self) {
            _ = try Repository.openRoot(altered, keys: Self.keys, repositoryID: Self.repositoryID, source: "test")
        }
    }
}

/// An access key's secret as the catalog stores it (FORMAT.md, "Access keys"), pinned: the box was
/// made independently with Python's cryptography (AESGCM under secretsKey, nonce a0..ab, associated
/// data "automator67/v1/access-key" NUL repository ID in hex NUL key ID).
struct AccessKeyVectorTests {
    static let keyID = "A67EXAMPLEKEY2345678"
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let pinnedBox = "a0a1a2a3a4a5a6a7a8a9aaab46910f2c89a685c25cd74edd008ac3de3337d5a7ca256becd97b27914b7a03c5cd10e69b2a2b9c36c661d37f94e96599"
        + "665f82b4ddec2d12"

    @Test func thePinnedSecretOpensUnderItsOwnContextOnly() throws {
        let box = try #require(Hex.decode(Self.pinnedBox))
        let keys = RootPointerTests.keys
        let context = Repository.accessKeyContext(repositoryID: RootPointerTests.repositoryID, keyID: Self.keyID)
        #expect(Crypto.openBox(box, key: keys.secretsKey, context: context) == Array(Self.secret.utf8))
        let otherKey = Repository.accessKeyContext(repositoryID: RootPointerTests.repositoryID, keyID: "A67OTHERKEY234567ABC")
        #expect(Crypto.openBox(box, key: keys.secretsKey, context: otherKey) == nil)
    }
}
