/// A chunk's name: HMAC-SHA256(idKey, plaintext). Keyed, so a provider cannot test whether a user
/// stores a known file; deterministic, so equal content gets one ID and is stored once.
public struct ChunkID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "a ChunkID is 32 bytes")
        self.bytes = bytes
    }

    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    public var hex: String { Hex.encode(bytes) }
    /// The first 12 hex digits: enough to tell chunks apart in messages.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }

    /// The name of this chunk on every provider: `data/<first two hex digits>/<64 hex digits>`.
    /// The two-digit folder spreads chunks over 256 folders (directory and WebDAV providers) or
    /// key prefixes (S3).
    public var objectName: String {
        let h = hex
        return "data/\(h.prefix(2))/\(h)"
    }

    /// The chunk an object name on a provider stands for, or nil for any other name.
    public init?(objectName name: String) {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "data", parts[2].count == 64, parts[2].prefix(2) == parts[1],
              parts[2].utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
              let id = ChunkID(hex: String(parts[2])) else { return nil }
        self = id
    }

    public static func < (a: ChunkID, b: ChunkID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// The value of one hex digit, either case; nil for anything else.
    public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
