import ChunkStore
/// The archive layout of a bundle: POSIX ustar (IEEE 1003.1-1988 headers, 512-byte blocks), with a
/// pax extended header (typeflag `x`) before an entry whose path or link target does not fit its
/// 100-byte field or whose size does not fit 11 octal digits. Every field that could vary between
/// two packings of the same folder is fixed: mtime 0, uid and gid 0, empty uname and gname,
/// devmajor and devminor 0, no prefix field; folders are written as `path/`. The archive ends with
/// two zero blocks and nothing after them (no padding to a 10 KiB record).
///
/// Header block (offsets in bytes; numbers are octal ASCII, zero-padded, NUL-terminated):
///
///     0  100 name          257   6 magic "ustar\0"
///   100    8 mode          263   2 version "00"
///   108    8 uid (0)       265  32 uname (empty)
///   116    8 gid (0)       297  32 gname (empty)
///   124   12 size          329   8 devmajor (0)
///   136   12 mtime (0)     337   8 devminor (0)
///   148    8 checksum      345 155 prefix (empty)
///   156    1 typeflag: '0' file, '5' folder, '2' symlink, 'x' pax header
///   157  100 linkname
///
/// The checksum is the sum of the header's bytes with the checksum field read as 8 spaces, written
/// as 6 octal digits, NUL, space. A pax record is "LEN key=value\n", LEN counting the whole record.
enum TarFormat {
    static let block = 512
    /// The end of an archive: two zero blocks.
    static let trailerLength = 2 * block
    /// Name of every pax header entry (readers ignore it).
    static let paxName = "././@PaxHeader"
    /// Sizes from 8 GiB up do not fit 11 octal digits and go in a pax record.
    static let maxOctalSize: Int64 = 0o77777777777
    /// Bounds what an unpacker holds in memory for one pax header.
    static let maxPaxLength = 64 * 1024

    /// Padding after `length` data bytes, up to the next block.
    static func padding(_ length: Int64) -> Int { Int((Int64(block) - length % Int64(block)) % Int64(block)) }

    /// The header blocks of a member: a pax header (with its data) when needed, then the ustar header.
    static func header(for member: BundleMember) -> [UInt8] {
        let name = member.kind == .directory ? member.path + "/" : member.path
        let nameBytes = Array(name.utf8)
        let linkBytes = Array((member.linkTarget ?? "").utf8)
        var records: [(String, String)] = []
        if nameBytes.count > 100 { records.append(("path", name)) }
        if linkBytes.count > 100 { records.append(("linkpath", member.linkTarget ?? "")) }
        if member.size > maxOctalSize { records.append(("size", String(member.size))) }
        var out: [UInt8] = []
        if !records.isEmpty {
            let data = records.flatMap(paxRecord)
            out += ustar(name: Array(paxName.utf8), mode: 0o644, size: Int64(data.count), type: UInt8(ascii: "x"), link: [])
            out += data + [UInt8](repeating: 0, count: padding(Int64(data.count)))
        }
        let type: UInt8 = switch member.kind {
        case .file: UInt8(ascii: "0")
        case .directory: UInt8(ascii: "5")
        case .symlink: UInt8(ascii: "2")
        }
        out += ustar(name: Array(nameBytes.prefix(100)), mode: member.mode, size: member.size > maxOctalSize ? 0 : member.size,
                     type: type, link: Array(linkBytes.prefix(100)))
        return out
    }

    /// "LEN key=value\n", LEN the length of the whole record in decimal.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n".utf8.count
        var length = body + String(body).count
        if String(length).count != String(body).count { length = body + String(length).count }
        return Array("\(length) \(key)=\(value)\n".utf8)
    }

    static func ustar(name: [UInt8], mode: UInt32, size: Int64, type: UInt8, link: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: block)
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { h[offset + i] = b } }
        func octal(_ value: Int64, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: width - 1 - digits.count) + digits).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(Int64(mode), width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        h[156] = type
        put(link, at: 157)
        put(Array("ustar\0".utf8), at: 257)
        put(Array("00".utf8), at: 263)
        put(octal(0, width: 8), at: 329)
        put(octal(0, width: 8), at: 337)
        put(octal(Int64(checksum(h)), width: 7) + [UInt8(ascii: " ")], at: 148)
        return h
    }

    /// The header checksum: its bytes summed, the checksum field counted as spaces.
    static func checksum(_ h: some Collection<UInt8>) -> Int {
        var sum = 0
        for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
        return sum
    }

    /// One header block as read back.
    struct Header {
        var name: String
        var mode: UInt32
        var size: Int64
        var type: UInt8
        var link: String
    }

    /// Parses a header block; `position` (its offset in the archive) names it in errors.
    static func parse(_ block: ArraySlice<UInt8>, position: Int64) throws(StoreError) -> Header {
        let h = Array(block)
        func bad(_ why: String) -> StoreError { StoreError(.integrity, "bundle header at byte \(position): \(why)") }
        guard Array(h[257..<263]) == Array("ustar\0".utf8) else { throw bad("not a ustar header (bad magic)") }
        func number(_ range: Range<Int>, _ field: String) throws(StoreError) -> Int64 {
            var value: Int64 = 0
            var seen = false
            for b in h[range] {
                if b == 0 || b == 32 { if seen { break } else { continue } }
                guard (48...55).contains(b), value < Int64.max >> 3 else { throw bad("the \(field) field is not an octal number") }
                value = value * 8 + Int64(b - 48)
                seen = true
            }
            return value
        }
        guard try number(148..<156, "checksum") == Int64(checksum(h)) else { throw bad("its checksum does not match: the archive is damaged") }
        func text(_ range: Range<Int>, _ field: String) throws(StoreError) -> String {
            let bytes = h[range].prefix { $0 != 0 }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw bad("the \(field) is not UTF-8") }
            return s
        }
        return Header(name: try text(0..<100, "name"), mode: UInt32(try number(100..<108, "mode") & 0o7777),
                      size: try number(124..<136, "size"), type: h[156], link: try text(157..<257, "link name"))
    }

    /// The records of a pax header's data.
    static func parsePax(_ data: [UInt8], position: Int64) throws(StoreError) -> [String: String] {
        func bad() -> StoreError { StoreError(.integrity, "bundle pax header at byte \(position) is malformed") }
        var records: [String: String] = [:]
        var rest = data[...]
        while !rest.isEmpty {
            guard let space = rest.firstIndex(of: 32), let length = Int(String(decoding: rest[rest.startIndex..<space], as: UTF8.self)),
                  length > 0, length <= rest.count, rest[rest.startIndex + length - 1] == 10 else { throw bad() }
            let record = rest[(space + 1)..<(rest.startIndex + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")),
                  let key = String(validating: record[..<equals], as: UTF8.self),
                  let value = String(validating: record[(equals + 1)...], as: UTF8.self) else { throw bad() }
            records[key] = value
            rest = rest.dropFirst(length)
        }
        return records
    }
}
