/// Amounts as `a67 app status` shows them: "512 MiB", "1.5 GiB", "0.5 cores", "1 core".
/// Integer arithmetic only, so the text never depends on the locale or on float rounding.
public enum HumanUnits {
    /// Bytes in the largest binary unit that keeps the number at least 1, with one decimal when it
    /// is not whole: 536870912 -> "512 MiB", 1610612736 -> "1.5 GiB", 100 -> "100 B".
    public static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        let magnitude = count.magnitude
        var unit = 0
        while unit < units.count - 1 && magnitude >= UInt64(1) << (10 * UInt64(unit + 1)) { unit += 1 }
        var size = UInt64(1) << (10 * UInt64(unit))
        var tenths = (magnitude * 10 + size / 2) / size
        if tenths >= 10240 && unit < units.count - 1 {  // 1023.96 MiB rounds to 1024.0: say 1 GiB
            unit += 1
            size <<= 10
            tenths = (magnitude * 10 + size / 2) / size
        }
        return (count < 0 ? "-" : "") + decimal(tenths, places: 1) + " " + units[unit]
    }

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
