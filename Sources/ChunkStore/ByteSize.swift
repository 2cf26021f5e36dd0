import Foundation

/// Sizes as people write them: `500M`, `10G`, `1.5TiB`, `2048` (bytes). K, M, G, T with or without
/// `iB` are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000.
public enum ByteSize {
    public static func parse(_ text: String) throws -> Int64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { ("0"..."9").contains($0) || $0 == "." }
        // A space may stand between the number and its unit ("64 M").
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()
        let kib = 1024.0
        let binary: [String: Double] = ["": 1, "B": 1, "K": kib, "KIB": kib, "M": kib * kib, "MIB": kib * kib,
                                        "G": kib * kib * kib, "GIB": kib * kib * kib, "T": kib * kib * kib * kib,
                                        "TIB": kib * kib * kib * kib]
        let decimal: [String: Double] = ["KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12]
        guard digits.wholeMatch(of: /[0-9]+(\.[0-9]+)?/) != nil, let number = Double(digits), number >= 0, let factor = binary[unit] ?? decimal[unit],
              number * factor < 9e18 else {
            throw StoreError(.invalidArgument, "cannot read \"\(text)\" as a size: write a number with an optional unit, like 500M, 10G or 1TiB")
        }
        return Int64(number * factor)
    }

    /// In the largest binary unit that keeps the number at least 1, with one decimal when it is not
    /// whole: 536870912 -> "512 MiB", 1536 -> "1.5 KiB", 100 -> "100 B". Integer arithmetic only.
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        let magnitude = bytes.magnitude
        var unit = 0
        while unit < units.count - 1 && magnitude >= UInt64(1) << (10 * UInt64(unit + 1)) { unit += 1 }
        var size = UInt64(1) << (10 * UInt64(unit))
        // Tenths, rounded half up, computed without overflow (magnitude can be near 2^63).
        var tenths = (magnitude / size) * 10 + ((magnitude % size) * 10 + size / 2) / size
        if tenths >= 10240 && unit < units.count - 1 {  // 1023.96 MiB rounds to 1024.0: say 1 GiB
            unit += 1
            size <<= 10
            tenths = (magnitude / size) * 10 + ((magnitude % size) * 10 + size / 2) / size
        }
        let number = tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
        return (bytes < 0 ? "-" : "") + number + " " + units[unit]
    }

    /// 12_500_000 bytes in 2 s -> "6.2 MB/s"; "-" for no time.
    public static func rate(_ bytes: Int64, _ seconds: Double) -> String {
        seconds > 0 ? String(format: "%.1f MB/s", Double(bytes) / seconds / 1e6) : "-"
    }
}
