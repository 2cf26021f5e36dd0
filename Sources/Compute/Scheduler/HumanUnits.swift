import ChunkStore
/// Amounts as `a67 app status` shows them: "512 MiB", "1.5 GiB", "0.5 cores", "1 core".
/// Integer arithmetic only, so the text never depends on the locale or on float rounding.
public enum HumanUnits {
    /// Bytes as people read them: "512 MiB", "1.5 GiB" (`ByteSize.format`).
    public static func bytes(_ count: Int64) -> String { ByteSize.format(count) }

    /// Thousandths of a core as cores: 500 -> "0.5 cores", 1000 -> "1 core", 1250 -> "1.25 cores".
    public static func cores(millis: Int) -> String {
        let text = (millis < 0 ? "-" : "") + decimal(UInt64(millis.magnitude), places: 3)
        return text + (millis == 1000 ? " core" : " cores")
    }

    /// `value` scaled down by 10^places, without trailing zeros: (15, 1) -> "1.5", (2000, 3) -> "2".
    private static func decimal(_ value: UInt64, places: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<places { scale *= 10 }
        let whole = value / scale
        var fraction = String(value % scale)
        fraction = String(repeating: "0", count: places - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
    }
}
