import Testing
@testable import ChunkStore

/// Test vectors that pin the repository format described in docs/FORMAT.md: fixed inputs (keys,
/// nonces, salts) and hard-coded outputs. If one of these fails, the bytes a67 writes or reads have
/// changed: that is a format change. It needs a new format version and a new vector; the vectors
/// below stay, and stay passing, for as long as a67 reads version 1.
///
/// The vectors were checked independently of this code base: the HMACs with
/// `openssl dgst -sha256 -mac HMAC -macopt hexkey:000102…1f`, the GCM layout with Python's
/// `cryptography` package (and the compressed vector's decrypted frame with `zstd -d`). Recipe
/// (not part of the test suite):
///
///     import hmac, hashlib; from cryptography.hazmat.primitives.ciphers.aead import AESGCM
///     H = lambda k, m: hmac.new(k, m, hashlib.sha256).digest()
///     master = bytes(range(32))
///     idKey, dataKey = H(master, b"automator67/v1/chunk-id"), H(master, b"automator67/v1/chunk-data")
///     raw = bytes(range(64)); cid = H(idKey, raw)
///     sealed = bytes.fromhex(FormatVectorTests.rawSealedHex)
///     assert AESGCM(H(dataKey, cid)).decrypt(sealed[8:20], sealed[20:], sealed[:8] + cid) == raw
///
/// The keyring vector likewise: `Scrypt(salt, length=32, n=1024, r=8, p=1).derive(passphrase)` as
/// the AES-256-GCM key, bytes 48..<60 as the nonce, bytes 0..<48 as the additional data.
struct FormatVectorTests {
    // MARK: - Fixed inputs

    static let master = SecretKey(bytes: Array(UInt8(0x00)...UInt8(0x1f)))
    static let keys = RepositoryKeys(master: master)
    static let sealer = ChunkSealer(keys: keys, zstdLevel: 3)
    static let nonce = Array(UInt8(0xa0)...UInt8(0xab))
    static let line = Array("automator67 test vector\n".utf8)
    static let compressible = Array([[UInt8]](repeating: line, count: 200).joined())
    static let incompressible = Array(UInt8(0)...UInt8(63))

    // MARK: - Expected outputs

    /// HMAC-SHA256(master, "automator67/v1/chunk-id") and HMAC-SHA256(master, "automator67/v1/chunk-data").
    static let idKeyHex = "0048806f922ce23d907534a1ee4b5a24fbeaaaa82f4a558feaf95b69243a18f2"
    static let dataKeyHex = "5135da10684691b45ce2f75009f230b796f1cd87c471b22b9d9e8a2884cab1fb"
    /// HMAC-SHA256(idKey, plaintext) of `line`, `incompressible` and `compressible`.
    static let lineIDHex = "2f5f65d81ab65af063159df17cbecef15d2bb2cf153343dd6ea4d1ea142deca6"
    static let rawIDHex = "06ac6c47b99ea1d26b7d1deb666a701734456ebb1b15922d9ada1b8c9c044923"
    static let compressibleIDHex = "2f190e1161679b67ce4494c35738b382da021812c55e9e79df63cf4ee82c6bbb"
    /// `incompressible` sealed (100 bytes): header, nonce, 64 bytes of ciphertext, tag.
    static let rawSealedHex = "4136374301000000"
        + "a0a1a2a3a4a5a6a7a8a9aaab"
        + "0b76dbc966d51a07bca9d6fb536685815d5666069c95767318bba88047bce5d5"
        + "a8b7c1de570db63805d079b95709cdc82a922ce7798b12e82dc53449f85f8e0f"
        + "ec8fce2c795b749ce4bca8a90e28cc45"
    /// `compressible` (4,800 bytes) sealed (78 bytes): header with flags 1, nonce, the ciphertext of
    /// a 42-byte zstd frame, tag. Made with libzstd 1.5.4.
    static let compressibleSealedHex = "4136374301010000"
        + "a0a1a2a3a4a5a6a7a8a9aaab"
        + "89b01130e1e522649f96f4620eb820fcc94e9eeb7c876288e051ee95878690bf8294af94c481952a264d"
        + "2ea0e37c0dbd10387a957346a9d732fa"
    /// The keyring (108 bytes): header (48 bytes, the additional data), nonce, wrapped master key, tag.
    static let keyringHex = "4136374b01010a080100000000000000"
        + "101112131415161718191a1b1c1d1e1f"
        + "202122232425262728292a2b2c2d2e2f"
        + "303132333435363738393a3b"
        + "8b82a2c63e9382d455de8198177b0127752a495c7fb4f2eef21f3fa6d2425374"
        + "c3a54db123bcddf65852e27f2b231d38"
    /// The manifest: header (size 88, 2 chunks, 1 attribute), two entries, one attribute.
    static let manifestHex = "4136374d01000000" + "5800000000000000" + "02000000" + "01000000"
        + "2f5f65d81ab65af063159df17cbecef15d2bb2cf153343dd6ea4d1ea142deca6" + "18000000"
        + "06ac6c47b99ea1d26b7d1deb666a701734456ebb1b15922d9ada1b8c9c044923" + "40000000"
        + "0c00" + "636f6e74656e742d74797065" + "0a000000" + "746578742f706c61696e"
    static let manifestIDHex = "339af84230d912538b3419a4ca723f3dc60eb3193313cbf96851c9b0e8f6d0b7"

    // MARK: - Keys and IDs

    @Test func keyDerivation() {
        #expect(Hex.encode(Self.keys.idKey.bytes) == Self.idKeyHex)
        #expect(Hex.encode(Self.keys.dataKey.bytes) == Self.dataKeyHex)
    }

    @Test func chunkIDs() {
        let id = Self.sealer.id(of: Self.line)
        #expect(id.hex == Self.lineIDHex)
        #expect(id.objectName == "data/\(Self.lineIDHex.prefix(2))/\(Self.lineIDHex)")
        #expect(Self.sealer.id(of: Self.incompressible).hex == Self.rawIDHex)
        #expect(Self.sealer.id(of: Self.compressible).hex == Self.compressibleIDHex)
    }

    // MARK: - Sealed chunks

    @Test func incompressibleSealedChunk() throws {
        let id = Self.sealer.id(of: Self.incompressible)
        let sealed = Self.sealer.seal(Self.incompressible, id: id, nonce: Self.nonce)
        #expect(Hex.encode(sealed) == Self.rawSealedHex)
        #expect(sealed.count == ChunkSealer.overhead + Self.incompressible.count)
        #expect(sealed[5] == 0, "flags: stored uncompressed")
        #expect(try Self.sealer.open(sealed, id: id, expectedLength: 64) == Self.incompressible)
    }

    /// zstd's output for a given input and level is not promised to be identical across zstd
    /// releases (this vector was made with libzstd 1.5.4). Should a newer zstd compress differently,
    /// this test fails while existing chunks stay readable (any version decompresses any frame): then
    /// check that the open below still passes, and re-pin only the hex, noting the zstd version.
    @Test func compressibleSealedChunk() throws {
        let id = Self.sealer.id(of: Self.compressible)
        let sealed = Self.sealer.seal(Self.compressible, id: id, nonce: Self.nonce)
        #expect(Hex.encode(sealed) == Self.compressibleSealedHex)
        #expect(sealed[5] == 1, "flags: the body is a zstd frame")
        #expect(try Self.sealer.open(sealed, id: id, expectedLength: Self.compressible.count) == Self.compressible)
    }

    @Test func pinnedSealedChunksOpen() throws {
        let raw = try #require(Hex.decode(Self.rawSealedHex))
        let rawID = try #require(ChunkID(hex: Self.rawIDHex))
        #expect(try Self.sealer.open(raw, id: rawID) == Self.incompressible)
        let compressed = try #require(Hex.decode(Self.compressibleSealedHex))
        let compressibleID = try #require(ChunkID(hex: Self.compressibleIDHex))
        #expect(try Self.sealer.open(compressed, id: compressibleID) == Self.compressible)
    }

    @Test func sealedHeaderLayout() throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        #expect(Array(sealed[0..<4]) == Array("A67C".utf8))
        #expect(sealed[4] == 1)
        #expect(Array(sealed[6..<8]) == [0, 0])
        #expect(Array(sealed[8..<20]) == Self.nonce)
        #expect(ChunkSealer.overhead == 36)
        // Decrypted by the documented recipe (not by ChunkSealer.open): key HMAC-SHA256(dataKey, ID),
        // additional data the 8 header bytes then the ID, ciphertext from byte 20, tag in the last 16.
        let rawID = try #require(ChunkID(hex: Self.rawIDHex))
        let compressibleID = try #require(ChunkID(hex: Self.compressibleIDHex))
        #expect(Self.decryptBody(sealed, id: rawID) == Self.incompressible)
        let compressed = try #require(Hex.decode(Self.compressibleSealedHex))
        let frame = try #require(Self.decryptBody(compressed, id: compressibleID))
        // The body of a compressed chunk is one zstd frame: it starts with zstd's magic number.
        #expect(frame.count == 42)
        #expect(Array(frame.prefix(4)) == [0x28, 0xb5, 0x2f, 0xfd])
    }

    // MARK: - Keyring

    @Test func keyring() throws {
        let keyring = try Keyring.wrap(master: Self.master, passphrase: Passphrase("correct horse battery staple"),
                                       repositoryID: Array(UInt8(0x10)...UInt8(0x1f)), logN: 10, r: 8, p: 1,
                                       salt: Array(UInt8(0x20)...UInt8(0x2f)), nonce: Array(UInt8(0x30)...UInt8(0x3b)))
        #expect(keyring.encoded.count == Keyring.size)
        #expect(Hex.encode(keyring.encoded) == Self.keyringHex)

        let decoded = try Keyring(decoding: try #require(Hex.decode(Self.keyringHex)), source: "vector")
        #expect(decoded == keyring)
        #expect(decoded.repositoryID == Array(UInt8(0x10)...UInt8(0x1f)))
        #expect(decoded.logN == 10 && decoded.r == 8 && decoded.p == 1)
        #expect(try decoded.unwrap(passphrase: Passphrase("correct horse battery staple")) == Self.master)
        #expect(Self.errorCode { _ = try decoded.unwrap(passphrase: Passphrase("correct horse battery stapler")) } == .wrongPassphrase)
    }

    @Test func keyringHeaderIsAuthenticated() throws {
        let bytes = try #require(Hex.decode(Self.keyringHex))
        // The repository ID and the salt are additional data: altering one makes unwrapping fail.
        for position in [16, 31, 32, 47] {
            var altered = bytes
            altered[position] ^= 0x01
            let keyring = try Keyring(decoding: altered, source: "vector")
            #expect(Self.errorCode { _ = try keyring.unwrap(passphrase: Passphrase("correct horse battery staple")) } == .wrongPassphrase)
        }
        var version2 = bytes
        version2[4] = 2
        #expect(Self.errorCode { _ = try Keyring(decoding: version2, source: "vector") } == .integrity)
        #expect(Self.errorCode { _ = try Keyring(decoding: Array(bytes.dropLast()), source: "vector") } == .integrity)
    }

    // MARK: - Manifest

    static let manifest = Manifest(
        entries: [Manifest.Entry(id: ChunkID(hex: lineIDHex)!, length: 24),
                  Manifest.Entry(id: ChunkID(hex: rawIDHex)!, length: 64)],
        attributes: ["content-type": "text/plain"])

    @Test func manifestEncoding() throws {
        #expect(Hex.encode(Self.manifest.encoded) == Self.manifestHex)
        #expect(Self.manifest.size == 88)
        let decoded = try Manifest(decoding: try #require(Hex.decode(Self.manifestHex)))
        #expect(decoded == Self.manifest)
        // A manifest is stored as a chunk like any other: its ID is the HMAC of its encoding.
        #expect(Self.sealer.id(of: Self.manifest.encoded).hex == Self.manifestIDHex)
        // (5 MiB - 24) / 36, rounded down, entries fit in one manifest chunk.
        #expect(Manifest.maxEntries == 145_634)
    }

    // MARK: - Negative cases

    /// Every byte of a sealed chunk is covered: the header and nonce by the additional data and the
    /// key, the body and tag by the tag.
    @Test(arguments: [0, 4, 5, 6, 7, 8, 19, 20, 50, 83, 84, 99])
    func flippedByteIsRefused(position: Int) throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        let id = try #require(ChunkID(hex: Self.rawIDHex))
        #expect(sealed.count == 100)
        var altered = sealed
        altered[position] ^= 0x01
        #expect(Self.errorCode { _ = try Self.sealer.open(altered, id: id) } == .integrity)
    }

    @Test func everyByteIsCovered() throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        let id = try #require(ChunkID(hex: Self.rawIDHex))
        for position in sealed.indices {
            var altered = sealed
            altered[position] ^= 0x80
            #expect(Self.errorCode { _ = try Self.sealer.open(altered, id: id) } == .integrity, "byte \(position)")
        }
    }

    @Test func compressionFlagCannotBeDowngraded() throws {
        var sealed = try #require(Hex.decode(Self.compressibleSealedHex))
        let id = try #require(ChunkID(hex: Self.compressibleIDHex))
        sealed[5] = 0
        #expect(Self.errorCode { _ = try Self.sealer.open(sealed, id: id) } == .integrity)
    }

    @Test func chunkUnderAnotherIDIsRefused() throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        let compressed = try #require(Hex.decode(Self.compressibleSealedHex))
        let lineID = try #require(ChunkID(hex: Self.lineIDHex)), rawID = try #require(ChunkID(hex: Self.rawIDHex))
        #expect(Self.errorCode { _ = try Self.sealer.open(sealed, id: lineID) } == .integrity)
        #expect(Self.errorCode { _ = try Self.sealer.open(compressed, id: rawID) } == .integrity)
    }

    @Test func truncatedChunkIsRefused() throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        let id = try #require(ChunkID(hex: Self.rawIDHex))
        for count in [0, 4, 8, 20, ChunkSealer.overhead - 1, ChunkSealer.overhead, sealed.count - 16, sealed.count - 1] {
            #expect(Self.errorCode { _ = try Self.sealer.open(Array(sealed.prefix(count)), id: id) } == .integrity, "\(count) bytes")
        }
    }

    @Test func wrongExpectedLengthIsRefused() throws {
        let sealed = try #require(Hex.decode(Self.rawSealedHex))
        let id = try #require(ChunkID(hex: Self.rawIDHex))
        #expect(Self.errorCode { _ = try Self.sealer.open(sealed, id: id, expectedLength: 63) } == .integrity)
    }

    @Test func unknownVersionsAreRefused() throws {
        var sealed = try #require(Hex.decode(Self.rawSealedHex))
        let id = try #require(ChunkID(hex: Self.rawIDHex))
        sealed[4] = 2
        #expect(Self.errorCode { _ = try Self.sealer.open(sealed, id: id) } == .integrity)
        var manifest = try #require(Hex.decode(Self.manifestHex))
        manifest[4] = 2
        #expect(Self.errorCode { _ = try Manifest(decoding: manifest) } == .integrity)
    }

    // MARK: - Helpers

    /// The decrypted body of a sealed chunk, computed from the layout alone; nil when the tag fails.
    static func decryptBody(_ sealed: [UInt8], id: ChunkID) -> [UInt8]? {
        guard sealed.count >= ChunkSealer.overhead else { return nil }
        let chunkKey = SecretKey(bytes: Crypto.hmacSHA256(key: keys.dataKey.bytes, id.bytes))
        let nonce = Array(sealed[8..<20]), tag = Array(sealed[(sealed.count - 16)...])
        let aad = Array(sealed[0..<8]) + id.bytes
        var body = Array(sealed[20..<(sealed.count - 16)])
        let ok = body.withUnsafeMutableBufferPointer { b in
            nonce.withUnsafeBufferPointer { n in
                tag.withUnsafeBufferPointer { t in
                    Crypto.open(key: chunkKey, nonce: n.baseAddress!, aad: aad, b.baseAddress!, count: b.count, into: b.baseAddress!,
                                       tag: t.baseAddress!)
                }
            }
        }
        return ok ? body : nil
    }

    /// The code of the StoreError `body` throws; nil when it throws nothing (or something else).
    static func errorCode(_ body: () throws -> Void) -> StoreError.Code? {
        do {
            try body()
            return nil
        } catch let error as StoreError {
            return error.code
        } catch {
            return nil
        }
    }
}

/// Provider credentials as the catalog stores them (FORMAT.md, "Provider credentials"). Checked
/// independently with Python: `AESGCM(H(master, b"automator67/v1/provider-secrets")).encrypt(nonce,
/// plaintext, context)` gives the box after its 12-byte nonce.
struct ProviderSecretVectorTests {
    static let secretsKeyHex = "ac2db21ffde77e7e00d46c24b480e6136a154ed195cc4dd09728153005890118"
    /// Repository ID `10 11 … 1f`, provider `r2`.
    static let context = Array("automator67/v1/provider-secret\0101112131415161718191a1b1c1d1e1f\0r2".utf8)
    static let plaintext = Array(#"{"kind":"s3-secret-key","value":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#.utf8)
    static let boxHex = "a0a1a2a3a4a5a6a7a8a9aaab4af90529959af28c10e238bd3ac0eb9b1b07bd82e8732b90835f20947d4664a7ae2afcb6"
        + "0312813a5e355bf7eacd5a6779dbf52a032e859fd5d1dec90ddb6f16f96968260672aeb5ef56f92fe513786de804e57a6537f2653e1e72"

    @Test func secretsKeyAndSealedLayout() throws {
        let keys = FormatVectorTests.keys
        #expect(Hex.encode(keys.secretsKey.bytes) == Self.secretsKeyHex)
        let box = Crypto.sealBox(Self.plaintext, key: keys.secretsKey, context: Self.context, nonce: FormatVectorTests.nonce)
        #expect(Hex.encode(box) == Self.boxHex)
        #expect(Crypto.openBox(box, key: keys.secretsKey, context: Self.context) == Self.plaintext)
    }

    @Test func sealedSecretsOpenOnlyInTheirOwnContext() {
        let keys = FormatVectorTests.keys
        let box = Crypto.sealBox(Self.plaintext, key: keys.secretsKey, context: Self.context)
        #expect(Crypto.openBox(box, key: keys.secretsKey, context: Array("automator67/v1/provider-secret\0other\0r2".utf8)) == nil)
        #expect(Crypto.openBox(box, key: keys.dataKey, context: Self.context) == nil)
        var altered = box
        altered[20] ^= 1
        #expect(Crypto.openBox(altered, key: keys.secretsKey, context: Self.context) == nil)
    }
}
