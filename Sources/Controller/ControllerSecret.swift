import ChunkStore
import Foundation

/// The secrets the controller hands out (join tokens, node credentials): 256 random bits as 64 hex
/// digits, returned once and stored only as their SHA-256, so a copy of the catalog (or of a snapshot)
/// admits no node.
enum ControllerSecret {
    static let byteCount = 32

    /// A new secret.
    static func make() -> String { Hex.encode(Crypto.randomBytes(byteCount)) }

    /// The SHA-256 of a secret's bytes (so either case of its hex digits is the same secret); nil when
    /// `text` is not a secret's shape (64 hex digits).
    static func hash(_ text: Substring) -> Data? {
        guard let bytes = Hex.decode(String(text)), bytes.count == byteCount else { return nil }
        return Data(Crypto.sha256(bytes))
    }
}
