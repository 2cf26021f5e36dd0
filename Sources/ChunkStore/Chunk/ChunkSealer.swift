/// Names, seals and opens chunks with one repository's keys. See docs/FORMAT.md, "Sealed chunk".
///
/// Sealed layout (format version 1), all integers little-endian:
///
///     0   4  magic "A67C"
///     4   1  format version (1)
///     5   1  flags: bit 0 set = body is a zstd frame
///     6   2  reserved, zero
///     8  12  nonce (random)
///    20   n  AES-256-GCM ciphertext of the body
///  20+n  16  GCM tag
///
/// Key: HMAC-SHA256(dataKey, chunk ID). Additional authenticated data: the 8 header bytes then the
/// 32-byte chunk ID, so a provider can neither swap two chunks nor downgrade the header.
public struct ChunkSealer: Sendable {
    public static let maxChunkSize = 5 * 1024 * 1024
    public static let formatVersion: UInt8 = 1
    static let magic: [UInt8] = Array("A67C".utf8)
    static let headerSize = 8
    static let bodyOffset = headerSize + Crypto.nonceSize
    public static let overhead = bodyOffset + Crypto.tagSize
    static let flagZstd: UInt8 = 1

    let idKey: SecretKey
    let dataKey: SecretKey
    public let zstdLevel: Int

    public init(keys: RepositoryKeys, zstdLevel: Int = Zstd.defaultLevel) {
        idKey = keys.idKey
        dataKey = keys.dataKey
        self.zstdLevel = zstdLevel
    }

    public func id(of plaintext: [UInt8]) -> ChunkID {
        ChunkID(bytes: Crypto.hmacSHA256(key: idKey.bytes, plaintext))
    }

    /// Compresses (when that saves space) and encrypts a chunk of at most 5 MiB.
    public func seal(_ plaintext: [UInt8], id: ChunkID) -> [UInt8] {
        seal(plaintext, id: id, nonce: Crypto.randomBytes(Crypto.nonceSize))
    }

    /// `seal` with a given nonce: for test vectors only. A nonce must never repeat under one chunk key.
    func seal(_ plaintext: [UInt8], id: ChunkID, nonce: [UInt8]) -> [UInt8] {
        precondition(plaintext.count <= Self.maxChunkSize, "a chunk is at most 5 MiB")
        precondition(nonce.count == Crypto.nonceSize)
        let capacity = Self.overhead + max(Zstd.compressBound(plaintext.count), plaintext.count)
        let chunkKey = self.chunkKey(for: id)
        return [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
            let base = out.baseAddress!
            let body = base + Self.bodyOffset
            // Compress straight into the body and keep the result only if it is smaller; skip zstd
            // altogether when samples show the chunk will not shrink.
            var flags: UInt8 = 0
            var bodySize = plaintext.count
            if zstdLevel > 0, !plaintext.isEmpty {
                let compressed = plaintext.withUnsafeBytes { src -> Int? in
                    guard Zstd.looksCompressible(src) else { return nil }
                    return Zstd.compress(src, into: body, capacity: plaintext.count - 1, level: zstdLevel)
                }
                if let compressed {
                    flags = Self.flagZstd
                    bodySize = compressed
                }
            }
            let header: [UInt8] = Self.magic + [Self.formatVersion, flags, 0, 0]
            for i in 0..<Self.headerSize { base[i] = header[i] }
            for i in 0..<Crypto.nonceSize { base[Self.headerSize + i] = nonce[i] }
            // A raw chunk is encrypted from the plaintext straight into the body (no copy first); a
            // compressed one in place in the body.
            plaintext.withUnsafeBufferPointer { src in
                Crypto.seal(key: chunkKey, nonce: nonce, aad: header + id.bytes, flags == 0 ? src.baseAddress : UnsafePointer(body),
                            count: bodySize, into: body, tag: body + bodySize)
            }
            count = Self.overhead + bodySize
        }
    }

    /// Decrypts, decompresses and verifies a sealed chunk: the tag, the format, the plaintext's
    /// length when known, and that the plaintext hashes to `id`. Never returns unverified bytes.
    public func open(_ sealed: [UInt8], id: ChunkID, expectedLength: Int? = nil) throws -> [UInt8] {
        let plaintext = try Self.open(sealed, id: id, chunkKey: chunkKey(for: id), expectedLength: expectedLength)
        guard self.id(of: plaintext) == id else {
            throw StoreError(.integrity, "chunk \(id.short) decrypted to bytes whose ID does not match")
        }
        return plaintext
    }

    /// The key `id`'s chunk is sealed under (FORMAT.md "Keys"): what a holder needs to open that one
    /// chunk and no other. The controller grants an agent the keys of its bundles' chunks this way.
    public func chunkKey(for id: ChunkID) -> SecretKey {
        SecretKey(bytes: Crypto.hmacSHA256(key: dataKey.bytes, id.bytes))
    }

    /// Opens a sealed chunk with its chunk key alone, without the repository's keys: steps 1 to 6 of
    /// FORMAT.md's "What a reader verifies". The tag binds the bytes to `id` (through the key and the
    /// additional data); the last step, recomputing the keyed ID, needs the ID key, so a holder of
    /// only chunk keys (a node agent) verifies the whole it assembles instead (a bundle's SHA-256).
    public static func open(_ sealed: [UInt8], id: ChunkID, chunkKey: SecretKey, expectedLength: Int? = nil) throws -> [UInt8] {
        guard sealed.count >= Self.overhead, Array(sealed[0..<4]) == Self.magic else {
            throw StoreError(.integrity, "chunk \(id.short) is not a sealed chunk (\(sealed.count) bytes, bad magic or truncated)")
        }
        guard sealed[4] == Self.formatVersion else {
            throw StoreError(.integrity, "chunk \(id.short) has format version \(sealed[4]); this a67 reads version \(Self.formatVersion)")
        }
        let flags = sealed[5]
        guard flags & ~Self.flagZstd == 0, sealed[6] == 0, sealed[7] == 0 else {
            throw StoreError(.integrity, "chunk \(id.short) has unknown header flags")
        }
        let header = Array(sealed[0..<Self.headerSize])
        let bodySize = sealed.count - Self.overhead
        // Decrypt out of place into a new buffer: the sealed bytes are never copied or changed.
        var authentic = false
        let body = [UInt8](unsafeUninitializedCapacity: max(bodySize, 1)) { out, count in
            sealed.withUnsafeBufferPointer { buf in
                let base = buf.baseAddress!
                authentic = Crypto.open(key: chunkKey, nonce: base + Self.headerSize, aad: header + id.bytes,
                                        base + Self.bodyOffset, count: bodySize, into: out.baseAddress!,
                                        tag: base + Self.bodyOffset + bodySize)
            }
            count = bodySize
        }
        guard authentic else {
            throw StoreError(.integrity, "chunk \(id.short) failed authentication: corrupted, truncated, or another chunk's bytes")
        }
        let plaintext: [UInt8]
        if flags & Self.flagZstd != 0 {
            plaintext = try body.withUnsafeBytes { try Zstd.decompress($0, limit: Self.maxChunkSize) }
        } else {
            guard bodySize <= Self.maxChunkSize else {
                throw StoreError(.integrity, "chunk \(id.short) holds more than 5 MiB")
            }
            plaintext = body
        }
        if let expectedLength, plaintext.count != expectedLength {
            throw StoreError(.integrity, "chunk \(id.short) holds \(plaintext.count) bytes where its manifest says \(expectedLength)")
        }
        return plaintext
    }
}
