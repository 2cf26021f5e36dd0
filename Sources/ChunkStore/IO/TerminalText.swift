/// Text shown to a person (a terminal, a log someone reads with less or tail) with every character that
/// could drive the terminal or fake a line made visible. Shared by the CLI's output, a67 serve's log and
/// the mount's log, which all print names an S3 user or a mount user chose.
///
/// `text` as it may reach a terminal: the characters that could drive it or fake output are shown as
/// visible escapes: C0 controls (`\n`, `\r`, `\t`, others and ESC as `\x1b`), DEL (`\x7f`), C1
/// controls (`\x9b`), and the bidirectional marks, embeddings, overrides and isolates that reorder
/// what is displayed (`\u{202e}`). Everything else, a backslash included, is left as it is.
public func terminalSafe(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: needsEscape) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        guard needsEscape(scalar) else { out.unicodeScalars.append(scalar); continue }
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x100: out += "\\x" + hexDigits(scalar.value, width: 2)
        default: out += "\\u{" + hexDigits(scalar.value, width: 4) + "}"
        }
    }
    return out
}

/// JSON text as safe on a terminal as `terminalSafe` text, and still the same JSON: JSON escapes C0
/// controls itself; DEL, C1 and the bidirectional controls (which JSON allows raw) become `\u` escapes.
public func terminalSafeJSON(_ json: String) -> String {
    var text = ""
    for scalar in json.unicodeScalars {
        // Outside strings JSON is ASCII without controls, so only string contents are touched.
        if needsEscape(scalar) && scalar.value >= 0x20 {
            text += "\\u" + hexDigits(scalar.value, width: 4)
        } else {
            text.unicodeScalars.append(scalar)
        }
    }
    return text
}

private func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1
    case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true  // bidirectional controls
    default: return false
    }
}

private func hexDigits(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
