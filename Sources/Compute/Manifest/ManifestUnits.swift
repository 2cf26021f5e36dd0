import ChunkStore
/// The signals a manifest may name as `stop_signal`, with their Linux numbers (the agent runs on
/// Linux, so these are the numbers even where the controller runs elsewhere).
public enum StopSignal: String, Sendable, CaseIterable {
    case term = "SIGTERM", int = "SIGINT", quit = "SIGQUIT", hup = "SIGHUP", usr1 = "SIGUSR1",
         usr2 = "SIGUSR2", winch = "SIGWINCH", kill = "SIGKILL"

    public var number: Int32 {
        switch self {
        case .hup: 1
        case .int: 2
        case .quit: 3
        case .kill: 9
        case .usr1: 10
        case .usr2: 12
        case .term: 15
        case .winch: 28
        }
    }

    /// `"SIGTERM"`, `"TERM"`, `"sigterm"`: the signal, or nil when the name is none of these.
    public init?(name: String) {
        let upper = name.uppercased()
        guard let signal = StopSignal(rawValue: upper.hasPrefix("SIG") ? upper : "SIG" + upper) else { return nil }
        self = signal
    }

    /// The signal with `number`, for showing a stored manifest ("SIGTERM").
    public init?(number: Int32) {
        guard let signal = StopSignal.allCases.first(where: { $0.number == number }) else { return nil }
        self = signal
    }
}

/// The units a manifest writes amounts in, read from their strings: nil when the text is not one.
enum ManifestUnits {
    /// `"2s"`, `"500ms"`, `"1m"`, `"1.5h"`, `"1m30s"`: one or more numbers, each with its unit (ms, s,
    /// m, h), as whole milliseconds. Nil for anything else, and for a part of a millisecond.
    static func duration(_ text: String) -> Duration? {
        guard text.wholeMatch(of: /([0-9]+(\.[0-9]+)?(ms|s|m|h))+/) != nil else { return nil }
        var milliseconds = 0.0
        for part in text.matches(of: /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/) {
            let factor: Double = switch part.2 {
            case "ms": 1
            case "s": 1000
            case "m": 60_000
            default: 3_600_000
            }
            guard let number = Double(part.1) else { return nil }
            milliseconds += number * factor
        }
        let whole = milliseconds.rounded()
        guard abs(milliseconds - whole) < 1e-6, whole < 1e15 else { return nil }
        return .milliseconds(Int64(whole))
    }

    /// `"128M"`, `"1G"`, `"1.5GiB"`, `"512KB"`, `"4096"`: bytes, as the CLI's sizes are written. K, M,
    /// G and T, with or without `iB`, are powers of 1024; KB, MB, GB and TB powers of 1000; no unit
    /// (or B) is bytes. Nil for anything else.
    static func size(_ text: String) -> Int64? { try? ByteSize.parse(text) }

    /// `"2s"`, `"500ms"`, `"1m30s"`: how a manifest writes `duration`.
    static func written(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        if milliseconds % 1000 != 0 { return "\(milliseconds)ms" }
        let parts = [(milliseconds / 3_600_000, "h"), (milliseconds / 60_000 % 60, "m"), (milliseconds / 1000 % 60, "s")]
        return parts.filter { $0.0 > 0 }.map { "\($0.0)\($0.1)" }.joined()
    }

    /// `"128M"`, `"1T"`, `"1000"`: how a manifest writes `bytes`, in the largest unit that divides it.
    static func written(bytes: Int64) -> String {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }
}
