import COpenSSL

/// An incremental hash over a stream fed in pieces (a request body as it arrives): MD5 for S3's
/// ETags and Content-MD5, SHA-1 and SHA-256 for S3's payload hashes and checksums. Owned by one
/// task at a time.
public final class StreamDigest {
    public enum Kind: Int32, Sendable {
        case md5 = 0, sha1 = 1, sha256 = 2
        public var size: Int { switch self { case .md5: 16; case .sha1: 20; case .sha256: 32 } }
    }

    public let kind: Kind
    private let context: OpaquePointer
    private var result: [UInt8]?

    public init(_ kind: Kind) {
        self.kind = kind
        guard let context = a67_digest_new(kind.rawValue) else { preconditionFailure("OpenSSL digest \(kind) failed") }
        self.context = context
    }

    deinit { a67_digest_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        precondition(result == nil, "a finished digest was updated")
        let ok = a67_digest_update(context, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        precondition(ok == 1, "OpenSSL digest update failed")
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public func update(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything fed so far; the first call ends the stream.
    public func finish() -> [UInt8] {
        if let result { return result }
        var out = [UInt8](repeating: 0, count: kind.size)
        let ok = out.withUnsafeMutableBufferPointer { a67_digest_final(context, $0.baseAddress) }
        precondition(ok == 1, "OpenSSL digest final failed")
        result = out
        return out
    }
}

/// CRC-32 (ISO-HDLC, as zlib) and CRC-32C (Castagnoli), the checksums S3 clients send by default
/// (x-amz-checksum-crc32 / -crc32c). Slicing-by-8 tables.
public struct CRC32: Sendable {
    public enum Polynomial: Sendable {
        case ieee, castagnoli
        var reversed: UInt32 { self == .ieee ? 0xEDB8_8320 : 0x82F6_3B78 }
    }

    private let tables: [UInt32]
    private var state: UInt32 = 0xFFFF_FFFF

    public init(_ polynomial: Polynomial) { tables = polynomial == .ieee ? Self.ieeeTables : Self.castagnoliTables }

    private static let ieeeTables = makeTables(Polynomial.ieee.reversed)
    private static let castagnoliTables = makeTables(Polynomial.castagnoli.reversed)

    private static func makeTables(_ poly: UInt32) -> [UInt32] {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ poly : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        state = tables.withUnsafeBufferPointer { Self.update(state, bytes, $0) }
    }

    /// The loop over plain locals (a variable captured by a closure would live on the heap).
    private static func update(_ start: UInt32, _ bytes: UnsafeRawBufferPointer, _ t: UnsafeBufferPointer<UInt32>) -> UInt32 {
        var c = start
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let lo = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
            let hi = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < n {
            c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
            i += 1
        }
        return c
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The checksum as S3 sends it: 4 bytes, big-endian.
    public var value: [UInt8] {
        let v = ~state
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}
