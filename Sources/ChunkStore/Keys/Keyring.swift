/// The keys a repository works with, derived from its master key. See docs/FORMAT.md, "Keys".
public struct RepositoryKeys: Sendable {
    public let master: SecretKey
    /// Names chunks: ID = HMAC-SHA256(idKey, plaintext).
    public let idKey: SecretKey
    /// Seals chunks: chunk key = HMAC-SHA256(dataKey, ID).
    public let dataKey: SecretKey
    /// Seals provider credentials in the catalog.
    public let secretsKey: SecretKey
    /// Seals the catalog root pointer on every provider.
    public let rootKey: SecretKey

    public init(master: SecretKey) {
        self.master = master
        idKey = master.derive("automator67/v1/chunk-id")
        dataKey = master.derive("automator67/v1/chunk-data")
        secretsKey = master.derive("automator67/v1/provider-secrets")
        rootKey = master.derive("automator67/v1/catalog-root")
    }
}

/// The master key wrapped under a passphrase, as stored locally and on every provider
/// (object name `keyring`). Layout (version 1, 108 bytes):
///
///     0   4  magic "A67K"
///     4   1  version (1)
///     5   1  KDF (1 = scrypt)
///     6   1  log2(N)
///     7   1  r
///     8   1  p
///     9   7  reserved, zero
///    16  16  repository ID (random)
///    32  16  salt (random)
///    48  12  nonce (random)
///    60  32  master key, AES-256-GCM encrypted under scrypt(passphrase, salt, N, r, p)
///    92  16  GCM tag
///
/// Additional authenticated data: bytes 0..<48, so the parameters and repository ID cannot be altered.
public struct Keyring: Sendable, Equatable {
    public static let objectName = "keyring"
    public static let size = 108
    static let magic: [UInt8] = Array("A67K".utf8)
    static let version: UInt8 = 1
    static let kdfScrypt: UInt8 = 1
    /// Default cost: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s here).
    public static let defaultLogN: UInt8 = 15

    public let repositoryID: [UInt8]
    public let logN: UInt8
    public let r: UInt8
    public let p: UInt8
    let salt: [UInt8]
    let nonce: [UInt8]
    let wrapped: [UInt8]
    let tag: [UInt8]

    /// Wraps `master` under `passphrase`.
    public static func wrap(master: SecretKey, passphrase: Passphrase, repositoryID: [UInt8],
                            logN: UInt8 = defaultLogN) throws -> Keyring {
        try wrap(master: master, passphrase: passphrase, repositoryID: repositoryID, logN: logN, r: 8, p: 1,
                 salt: Crypto.randomBytes(16), nonce: Crypto.randomBytes(Crypto.nonceSize))
    }

    static func wrap(master: SecretKey, passphrase: Passphrase, repositoryID: [UInt8], logN: UInt8, r: UInt8, p: UInt8,
                     salt: [UInt8], nonce: [UInt8]) throws -> Keyring {
        precondition(repositoryID.count == 16 && salt.count == 16 && nonce.count == Crypto.nonceSize)
        let wrapping = try Crypto.scrypt(passphrase: passphrase.bytes, salt: salt, logN: logN, r: r, p: p)
        let aad = header(repositoryID: repositoryID, logN: logN, r: r, p: p, salt: salt)
        var body = master.bytes
        var tag = [UInt8](repeating: 0, count: Crypto.tagSize)
        body.withUnsafeMutableBufferPointer { b in
            tag.withUnsafeMutableBufferPointer { t in
                Crypto.seal(key: wrapping, nonce: nonce, aad: aad, b.baseAddress!, count: b.count, into: b.baseAddress!,
                            tag: t.baseAddress!)
            }
        }
        return Keyring(repositoryID: repositoryID, logN: logN, r: r, p: p, salt: salt, nonce: nonce, wrapped: body, tag: tag)
    }

    /// The master key, or `wrongPassphrase` when the passphrase does not unlock it.
    public func unwrap(passphrase: Passphrase) throws -> SecretKey {
        let wrapping = try Crypto.scrypt(passphrase: passphrase.bytes, salt: salt, logN: logN, r: r, p: p)
        var body = wrapped
        let ok = body.withUnsafeMutableBufferPointer { b in
            nonce.withUnsafeBufferPointer { n in
                tag.withUnsafeBufferPointer { t in
                    Crypto.open(key: wrapping, nonce: n.baseAddress!, aad: aadBytes, b.baseAddress!, count: b.count,
                                into: b.baseAddress!, tag: t.baseAddress!)
                }
            }
        }
        guard ok else {
            throw StoreError(.wrongPassphrase, "wrong passphrase: it does not unlock this repository's keyring. "
                + "Check A67_PASSPHRASE_FILE or A67_PASSPHRASE, or type it again at the prompt. Nothing was changed.")
        }
        return SecretKey(bytes: body)
    }

    public var encoded: [UInt8] { aadBytes + nonce + wrapped + tag }

    public init(decoding bytes: [UInt8], source: String) throws {
        guard bytes.count >= Self.magic.count, Array(bytes[0..<4]) == Self.magic else {
            throw StoreError(.integrity, "\(source) is not an Automator67 keyring: it does not start with \"A67K\" "
                + "(\(bytes.count) bytes)")
        }
        guard bytes.count == Self.size else {
            throw StoreError(.integrity, bytes.count < Self.size
                ? "\(source) is truncated: it ends at byte \(bytes.count), and a keyring is \(Self.size) bytes"
                : "\(source) is damaged: it is longer than a keyring's \(Self.size) bytes")
        }
        guard bytes[4] == Self.version, bytes[5] == Self.kdfScrypt else {
            throw StoreError(.integrity, "\(source) is a keyring of version \(bytes[4]) / KDF \(bytes[5]); this a67 reads version 1 with scrypt")
        }
        // Bounded before anything is authenticated: a tampered keyring must not make scrypt allocate
        // more than 1 GiB (128 * N * r bytes) or run for minutes.
        let logN = Int(bytes[6]), r = Int(bytes[7]), p = Int(bytes[8])
        guard (10...20).contains(logN), (1...16).contains(r), (1...16).contains(p), 128 << logN * r <= 1 << 30 else {
            throw StoreError(.integrity, "\(source) has implausible scrypt parameters (log2 N = \(logN), r = \(r), p = \(p))")
        }
        guard bytes[9..<16].allSatisfy({ $0 == 0 }) else {
            throw StoreError(.integrity, "\(source) has non-zero reserved bytes: it was written by a newer a67 or damaged")
        }
        self.init(repositoryID: Array(bytes[16..<32]), logN: bytes[6], r: bytes[7], p: bytes[8],
                  salt: Array(bytes[32..<48]), nonce: Array(bytes[48..<60]), wrapped: Array(bytes[60..<92]),
                  tag: Array(bytes[92..<108]))
    }

    init(repositoryID: [UInt8], logN: UInt8, r: UInt8, p: UInt8, salt: [UInt8], nonce: [UInt8], wrapped: [UInt8], tag: [UInt8]) {
        self.repositoryID = repositoryID
        self.logN = logN
        self.r = r
        self.p = p
        self.salt = salt
        self.nonce = nonce
        self.wrapped = wrapped
        self.tag = tag
    }

    private var aadBytes: [UInt8] { Self.header(repositoryID: repositoryID, logN: logN, r: r, p: p, salt: salt) }

    private static func header(repositoryID: [UInt8], logN: UInt8, r: UInt8, p: UInt8, salt: [UInt8]) -> [UInt8] {
        magic + [version, kdfScrypt, logN, r, p, 0, 0, 0, 0, 0, 0, 0] + repositoryID + salt
    }
}
