import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A running process on this machine, named so that a reused pid is not taken for it: its pid and
/// its start time in clock ticks since boot (field 22 of /proc/PID/stat). Written into the catalog
/// by what holds something for as long as it lives (the mount's leases on chunks it stored and has
/// not committed yet, quota reservations of uploads in flight), so that whoever finds such a row can
/// tell a live holder from one that was killed.
public struct ProcessIdentity: Sendable, Hashable, CustomStringConvertible {
    public let pid: Int32
    public let startTicks: UInt64

    /// This process.
    public static let current: ProcessIdentity = {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTicks: startTicks(of: pid) ?? 0)
    }()

    public init(pid: Int32, startTicks: UInt64) {
        self.pid = pid
        self.startTicks = startTicks
    }

    /// "PID:TICKS", the form stored in the catalog.
    public var description: String { "\(pid):\(startTicks)" }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let pid = Int32(parts[0]), let ticks = UInt64(parts[1]) else { return nil }
        self.init(pid: pid, startTicks: ticks)
    }

    /// Process `pid` as it is now (its start time read from /proc); nil when there is no such process.
    public static func of(_ pid: Int32) -> ProcessIdentity? {
        startTicks(of: pid).map { ProcessIdentity(pid: pid, startTicks: $0) }
    }

    /// Whether this very process still runs (not a zombie, and not another process that got its pid).
    public var isAlive: Bool {
        guard pid > 0, let fields = Self.statFields(of: pid), fields.count > 19 else { return false }
        // The start time is field 22 of /proc/PID/stat, fields[19] here.
        return Self.running(fields) && UInt64(fields[19]) == startTicks
    }

    /// Whether some process has pid `pid` and runs (a zombie, done but not yet reaped, does not).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0, let fields = statFields(of: pid) else { return false }
        return running(fields)
    }

    /// fields[0] is the state (after the command name).
    private static func running(_ fields: [Substring]) -> Bool {
        guard let state = fields.first else { return false }
        return state != "Z" && state != "X"
    }

    /// Whether the holder named by `text` (as `description` writes it) still runs. Unreadable names
    /// count as alive: a row nobody can judge is kept rather than dropped.
    public static func isAlive(_ text: String) -> Bool { ProcessIdentity(text)?.isAlive ?? true }

    static func startTicks(of pid: Int32) -> UInt64? {
        guard let fields = statFields(of: pid), fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// The fields of /proc/PID/stat after the command name (which may itself hold spaces and parentheses).
    static func statFields(of pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}
