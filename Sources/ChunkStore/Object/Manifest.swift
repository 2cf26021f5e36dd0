/// An object's content: its chunks in order, with their plain lengths, and its attributes. Stored
/// as a chunk itself (sealed like any other) and cached in the catalog. See docs/FORMAT.md, "Manifest".
///
/// Layout (version 1), integers little-endian:
///
///     0   4  magic "A67M"
///     4   1  version (1)
///     5   3  reserved, zero
///     8   8  object size in bytes
///    16   4  chunk count n
///    20   4  attribute count m
///    24  36n chunks: 32-byte ID, then 4-byte plain length
///     …      attributes, sorted by key: 2-byte key length, key (UTF-8), 4-byte value length, value
public struct Manifest: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let id: ChunkID
        public let length: Int
        public init(id: ChunkID, length: Int) {
            self.id = id
            self.length = length
        }
    }

    static let magic: [UInt8] = Array("A67M".utf8)
    static let version: UInt8 = 1
    /// One manifest is one chunk: (5 MiB - 24) / 36 = 145,634 entries, objects up to about 711 GiB.
    public static let maxEntries = (ChunkSealer.maxChunkSize - 24) / 36

    public let entries: [Entry]
    public let attributes: [String: String]
    public var size: Int64 { entries.reduce(0) { $0 + Int64($1.length) } }

    public init(entries: [Entry], attributes: [String: String] = [:]) {
        self.entries = entries
        self.attributes = attributes
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = Self.magic + [Self.version, 0, 0, 0]
        out.reserveCapacity(24 + entries.count * 36)
        out.appendLE(UInt64(size))
        out.appendLE(UInt32(entries.count))
        out.appendLE(UInt32(attributes.count))
        for entry in entries {
            out += entry.id.bytes
            out.appendLE(UInt32(entry.length))
        }
        for key in attributes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let k = Array(key.utf8), v = Array(attributes[key]!.utf8)
            out.appendLE(UInt16(k.count))
            out += k
            out.appendLE(UInt32(v.count))
            out += v
        }
        return out
    }

    public init(decoding bytes: [UInt8]) throws {
        func bad(_ why: String) -> StoreError { StoreError(.integrity, "manifest is malformed: \(why)") }
        guard bytes.count >= 24, Array(bytes[0..<4]) == Self.magic else { throw bad("bad magic or too short") }
        guard bytes[4] == Self.version else { throw bad("version \(bytes[4]); this a67 reads version 1") }
        var reader = LEReader(bytes: bytes, offset: 8)
        let size = try reader.u64()
        let count = Int(try reader.u32())
        let attributeCount = Int(try reader.u32())
        guard count <= Self.maxEntries, bytes.count >= 24 + count * 36 else { throw bad("chunk list is truncated") }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let id = ChunkID(bytes: try reader.take(32))
            let length = Int(try reader.u32())
            guard length <= ChunkSealer.maxChunkSize else { throw bad("a chunk length exceeds 5 MiB") }
            entries.append(Entry(id: id, length: length))
        }
        var attributes: [String: String] = [:]
        for _ in 0..<attributeCount {
            let k = try reader.take(Int(try reader.u16()))
            let v = try reader.take(Int(try reader.u32()))
            attributes[String(decoding: k, as: UTF8.self)] = String(decoding: v, as: UTF8.self)
        }
        guard reader.offset == bytes.count else { throw bad("trailing bytes") }
        self.init(entries: entries, attributes: attributes)
        guard UInt64(self.size) == size else { throw bad("size field \(size) disagrees with its chunks") }
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}

struct LEReader {
    let bytes: [UInt8]
    var offset: Int

    mutating func take(_ n: Int) throws -> [UInt8] {
        guard n >= 0, offset + n <= bytes.count else { throw StoreError(.integrity, "manifest is malformed: truncated") }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let raw = try take(MemoryLayout<T>.size)
        var v: T = 0
        for (i, b) in raw.enumerated() { v |= T(b) << (8 * i) }
        return v
    }

    mutating func u16() throws -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws -> UInt64 { try integer(UInt64.self) }
}
