import BackendTesting
import Testing
@testable import ChunkStore

struct SealingTests {
    let keys = RepositoryKeys(master: SecretKey(bytes: (0..<32).map(UInt8.init)))
    var sealer: ChunkSealer { ChunkSealer(keys: keys) }

    @Test(arguments: [0, 1, 4096, 1 << 20, ChunkSealer.maxChunkSize])
    func roundTrip(size: Int) throws {
        let text = Array((0..<size).map { UInt8(ascii: "a") + UInt8($0 % 26) })
        let id = sealer.id(of: text)
        let sealed = sealer.seal(text, id: id)
        #expect(try sealer.open(sealed, id: id, expectedLength: size) == text)
        if size >= 4096 { #expect(sealed.count < size / 4, "repetitive text must compress") }
    }

    @Test func incompressibleIsStoredRaw() throws {
        let random = Crypto.randomBytes(1 << 20)
        let id = sealer.id(of: random)
        let sealed = sealer.seal(random, id: id)
        #expect(sealed[5] == 0, "flags must say uncompressed")
        #expect(sealed.count == random.count + ChunkSealer.overhead)
        #expect(try sealer.open(sealed, id: id) == random)
    }

    @Test func idsAreKeyedAndDeterministic() {
        let data = Array("same content".utf8)
        let other = ChunkSealer(keys: RepositoryKeys(master: SecretKey(bytes: [UInt8](repeating: 9, count: 32))))
        #expect(sealer.id(of: data) == sealer.id(of: data))
        #expect(sealer.id(of: data) != other.id(of: data), "another repository's key must give another ID")
        #expect(sealer.id(of: data).bytes != Crypto.sha256(data), "IDs must be keyed, not a bare hash")
    }

    @Test func sealingTwiceUsesFreshNonces() {
        let data = Array("x".utf8)
        let id = sealer.id(of: data)
        #expect(sealer.seal(data, id: id) != sealer.seal(data, id: id))
    }

    @Test(arguments: [0, 5, 8, 15, 25, -1])
    func anyFlippedByteIsCaught(position: Int) async throws {
        let data = Array(repeating: Array("integrity ".utf8), count: 100).flatMap { $0 }
        let id = sealer.id(of: data)
        var sealed = sealer.seal(data, id: id)
        let index = position >= 0 ? position : sealed.count - 1
        sealed[index] ^= 0x01
        await expectStoreError(.integrity) { _ = try sealer.open(sealed, id: id) }
    }

    @Test func swappedChunkIsCaught() async throws {
        let a = Array("chunk a".utf8), b = Array("chunk b".utf8)
        let sealedA = sealer.seal(a, id: sealer.id(of: a))
        await expectStoreError(.integrity) { _ = try sealer.open(sealedA, id: sealer.id(of: b)) }
    }

    @Test func truncatedChunkIsCaught() async throws {
        let data = Crypto.randomBytes(10_000)
        let id = sealer.id(of: data)
        let sealed = sealer.seal(data, id: id)
        for cut in [0, 10, ChunkSealer.overhead - 1, sealed.count - 1] {
            await expectStoreError(.integrity) { _ = try sealer.open(Array(sealed.prefix(cut)), id: id) }
        }
    }

    @Test func wrongLengthIsCaught() async throws {
        let data = Array("twelve bytes".utf8)
        let id = sealer.id(of: data)
        await expectStoreError(.integrity) { _ = try sealer.open(sealer.seal(data, id: id), id: id, expectedLength: 11) }
    }

    @Test func keyringUnwrapsOnlyWithItsPassphrase() async throws {
        let master = SecretKey.random()
        let ring = try Keyring.wrap(master: master, passphrase: Passphrase("right"), repositoryID: Crypto.randomBytes(16), logN: 10)
        let decoded = try Keyring(decoding: ring.encoded, source: "test")
        #expect(try decoded.unwrap(passphrase: Passphrase("right")) == master)
        await expectStoreError(.wrongPassphrase) { _ = try decoded.unwrap(passphrase: Passphrase("wrong")) }
        var tampered = ring.encoded
        tampered[20] ^= 1  // repository ID is authenticated
        await expectStoreError(.wrongPassphrase) { _ = try Keyring(decoding: tampered, source: "t").unwrap(passphrase: Passphrase("right")) }
    }

    @Test func keyringWithReservedBytesSetIsRefused() async throws {
        var bytes = try Keyring.wrap(master: .random(), passphrase: Passphrase("p"), repositoryID: Crypto.randomBytes(16), logN: 10).encoded
        bytes[12] = 1
        await expectStoreError(.integrity) { _ = try Keyring(decoding: bytes, source: "test") }
    }

    @Test(arguments: [(6, 21), (7, 17), (8, 17), (6, 9)])
    func keyringWithImplausibleScryptParametersIsRefused(offset: Int, value: UInt8) async throws {
        var bytes = try Keyring.wrap(master: .random(), passphrase: Passphrase("p"), repositoryID: Crypto.randomBytes(16), logN: 10).encoded
        bytes[offset] = value  // 6: log2 N, 7: r, 8: p
        let error = await expectStoreError(.integrity) { _ = try Keyring(decoding: bytes, source: "test") }
        #expect(error?.message.contains("implausible") == true)
    }

    @Test func secretsAreNeverPrinted() {
        let key = SecretKey(bytes: [UInt8](repeating: 0xab, count: 32))
        #expect(!"\(key)".contains("ab"))
        #expect(!"\(Passphrase("hunter2"))".contains("hunter2"))
        var dumped = ""
        dump(key, to: &dumped)
        dump(Passphrase("hunter2"), to: &dumped)
        #expect(!dumped.contains("171") && !dumped.contains("104"), "dump must not show key or passphrase bytes: \(dumped)")
    }

    @Test func passphraseSources() async throws {
        #expect(try Passphrase.fromEnvironment(["A67_PASSPHRASE": "p1"]).bytes == Array("p1".utf8))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("a67-pass-\(UInt32.random(in: 0...UInt32.max))").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data("from-file\nignored\n".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try Passphrase.fromEnvironment(["A67_PASSPHRASE_FILE": file, "A67_PASSPHRASE": "p1"]).bytes == Array("from-file".utf8))
        await expectStoreError(.wrongPassphrase) { _ = try Passphrase.fromEnvironment(["A67_PASSPHRASE": ""]) }
        await expectStoreError(.wrongPassphrase) { _ = try Passphrase.fromEnvironment(["A67_PASSPHRASE_FILE": "/no/such/file"]) }
    }
}

import Foundation
