import ChunkStore
import Foundation

/// Sizes as people write them: `500M`, `10G`, `1.5TiB`, `2048` (bytes). K, M, G, T with or without
/// `iB` are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000.
public enum ByteSize {
    public static func parse(_ text: String) throws -> Int64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).uppercased()
        let kib = 1024.0
        let binary: [String: Double] = ["": 1, "B": 1, "K": kib, "KIB": kib, "M": kib * kib, "MIB": kib * kib,
                                        "G": kib * kib * kib, "GIB": kib * kib * kib, "T": kib * kib * kib * kib,
                                        "TIB": kib * kib * kib * kib]
        let decimal: [String: Double] = ["KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12]
        guard let number = Double(digits), number >= 0, let factor = binary[unit] ?? decimal[unit],
              number * factor < 9e18 else {
            throw StoreError(.invalidArgument, "cannot read \"\(text)\" as a size: write a number with an optional unit, like 500M, 10G or 1TiB")
        }
        return Int64(number * factor)
    }

    /// 1536 -> "1.5 KiB".
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// 12_500_000 bytes in 2 s -> "6.2 MB/s"; "-" for no time.
    public static func rate(_ bytes: Int64, _ seconds: Double) -> String {
        seconds > 0 ? String(format: "%.1f MB/s", Double(bytes) / seconds / 1e6) : "-"
    }
}
