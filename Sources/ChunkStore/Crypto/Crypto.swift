import COpenSSL
import Foundation

/// A 256-bit secret. Neither its description nor its reflection (dump, debugger) shows the bytes.
public struct SecretKey: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "a SecretKey is 32 bytes")
        self.bytes = bytes
    }

    public static func random() -> SecretKey { SecretKey(bytes: Crypto.randomBytes(byteCount)) }

    /// A subkey for one purpose: HMAC-SHA256(self, label). Distinct labels give independent keys.
    public func derive(_ label: String) -> SecretKey {
        SecretKey(bytes: Crypto.hmacSHA256(key: bytes, Array(label.utf8)))
    }

    public var description: String { "SecretKey(redacted)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

/// OpenSSL's primitives as the store uses them. Every function checks OpenSSL's return value.
public enum Crypto {
    public static let nonceSize = 12
    public static let tagSize = 16

    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { a67_random_bytes($0.baseAddress, count) }
        precondition(ok == 1, "OpenSSL RAND_bytes failed")
        return out
    }

    public static func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBufferPointer { hmacSHA256(key: key, $0) }
    }

    public static func hmacSHA256(key: [UInt8], _ data: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeBufferPointer { k in
            out.withUnsafeMutableBufferPointer { o in
                a67_hmac_sha256(k.baseAddress, k.count, data.baseAddress, data.count, o.baseAddress)
            }
        }
        precondition(ok == 1, "OpenSSL HMAC-SHA256 failed")
        return out
    }

    /// Whether `a` and `b` are equal, in a time that does not depend on where they differ (only on
    /// their length): comparing a secret, a signature or a secret's hash must not tell an attacker
    /// how many of its leading bytes were right.
    public static func constantTimeEqual<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    public static func sha256(_ data: [UInt8]) -> [UInt8] { digest(data, size: 32, "SHA-256", a67_sha256) }

    /// The pin of a TLS certificate's public key, "sha256//" and the base64 SHA-256 of its
    /// SubjectPublicKeyInfo (what curl's pinned public key takes, and `a67 node token create` prints
    /// for agents to trust a self-signed controller). Nil when `pem` holds no readable certificate.
    public static func publicKeyPin(certificatePEM pem: [UInt8]) -> String? {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = pem.withUnsafeBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { chars in
                out.withUnsafeMutableBufferPointer { a67_certificate_spki_sha256(chars.baseAddress, chars.count, $0.baseAddress) }
            }
        }
        guard ok == 1 else { return nil }
        return "sha256//" + Data(out).base64EncodedString()
    }

    /// MD5, for protocols that ask for it as a transfer checksum (S3's Content-MD5). Never for security.
    public static func md5(_ data: [UInt8]) -> [UInt8] { digest(data, size: 16, "MD5", a67_md5) }

    private static func digest(_ data: [UInt8], size: Int, _ name: String,
                               _ function: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UInt8>?) -> Int32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        let ok = data.withUnsafeBufferPointer { d in
            out.withUnsafeMutableBufferPointer { function(d.baseAddress, d.count, $0.baseAddress) }
        }
        precondition(ok == 1, "OpenSSL \(name) failed")
        return out
    }

    /// A small secret sealed under `key`: nonce (12) || AES-256-GCM ciphertext || tag (16), with
    /// `context` authenticated (so a sealed value cannot be moved to another record).
    public static func sealBox(_ plaintext: [UInt8], key: SecretKey, context: [UInt8]) -> [UInt8] {
        sealBox(plaintext, key: key, context: context, nonce: randomBytes(nonceSize))
    }

    /// `sealBox` with a given nonce: for the format's test vectors only.
    static func sealBox(_ plaintext: [UInt8], key: SecretKey, context: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count == nonceSize)
        var box = nonce + [UInt8](repeating: 0, count: plaintext.count + tagSize)
        box.withUnsafeMutableBufferPointer { out in
            plaintext.withUnsafeBufferPointer { input in
                seal(key: key, nonce: nonce, aad: context, input.baseAddress, count: input.count,
                     into: out.baseAddress! + nonceSize, tag: out.baseAddress! + nonceSize + plaintext.count)
            }
        }
        return box
    }

    /// Opens a `sealBox` result; nil when it was sealed under another key or context, or altered.
    public static func openBox(_ box: [UInt8], key: SecretKey, context: [UInt8]) -> [UInt8]? {
        guard box.count >= nonceSize + tagSize else { return nil }
        let count = box.count - nonceSize - tagSize
        var plaintext = [UInt8](repeating: 0, count: max(count, 1))
        let ok = box.withUnsafeBufferPointer { input in
            plaintext.withUnsafeMutableBufferPointer { out in
                open(key: key, nonce: input.baseAddress!, aad: context, input.baseAddress! + nonceSize, count: count,
                     into: out.baseAddress!, tag: input.baseAddress! + nonceSize + count)
            }
        }
        return ok ? Array(plaintext.prefix(count)) : nil
    }

    /// scrypt(passphrase, salt, N = 2^logN, r, p) -> 32-byte key.
    public static func scrypt(passphrase: [UInt8], salt: [UInt8], logN: UInt8, r: UInt8, p: UInt8) throws -> SecretKey {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = passphrase.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    a67_scrypt(pw.baseAddress, pw.count, s.baseAddress, s.count,
                               UInt64(1) << UInt64(logN), UInt64(r), UInt64(p), o.baseAddress, 32)
                }
            }
        }
        guard ok == 1 else {
            throw StoreError(.internal, "scrypt failed (N=2^\(logN), r=\(r), p=\(p)): not enough memory?")
        }
        return SecretKey(bytes: out)
    }

    /// AES-256-GCM encryption of `count` bytes from `input` to `output` (which may be the same
    /// memory); writes the 16-byte tag.
    static func seal(key: SecretKey, nonce: [UInt8], aad: [UInt8], _ input: UnsafePointer<UInt8>?, count: Int,
                     into output: UnsafeMutablePointer<UInt8>, tag: UnsafeMutablePointer<UInt8>) {
        let ok = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBufferPointer { a in
                    a67_aes256gcm_seal(k.baseAddress, n.baseAddress, a.baseAddress, a.count, input, count, output, tag)
                }
            }
        }
        precondition(ok == 1, "OpenSSL AES-256-GCM encryption failed")
    }

    /// AES-256-GCM decryption of `count` bytes from `input` to `output` (which may be the same
    /// memory). False when the tag does not match; `output` must then be discarded.
    static func open(key: SecretKey, nonce: UnsafePointer<UInt8>, aad: [UInt8], _ input: UnsafePointer<UInt8>, count: Int,
                     into output: UnsafeMutablePointer<UInt8>, tag: UnsafePointer<UInt8>) -> Bool {
        key.bytes.withUnsafeBufferPointer { k in
            aad.withUnsafeBufferPointer { a in
                a67_aes256gcm_open(k.baseAddress, nonce, a.baseAddress, a.count, input, count, output, tag) == 1
            }
        }
    }

    public static var libraryVersion: String { String(cString: a67_openssl_version()) }

    /// Initialises OpenSSL without its exit-time cleanup. Call first thing in a program: otherwise
    /// exit() frees OpenSSL's state while worker threads may still use it (seen as a crash when a
    /// get failed verification and exited with chunks still being checked).
    public static func prepareLibrary() {
        precondition(a67_openssl_init_without_atexit() == 1, "OpenSSL failed to initialise")
    }
}
