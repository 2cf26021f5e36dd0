import ChunkStore
import Foundation

/// The file that names the process serving one instance of something long-running (a mount, later a
/// node agent): one decimal pid and a newline, written once the instance is up, removed when it ends.
/// Whoever finds it can ask the process to stop (`Supervision.stop`) or, when the process is gone,
/// clean up what it left behind.
public struct PIDFile: Sendable, Equatable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The pid file of `instance` in `directory`: the instance's name with each '/' written as '%'
    /// (a mountpoint /mnt/photos has %mnt%photos.pid).
    public init(directory: String, instance: String) {
        path = directory + "/" + Self.fileName(instance) + ".pid"
    }

    /// `instance` as one file name: each '/' written as '%'.
    public static func fileName(_ instance: String) -> String {
        instance.replacingOccurrences(of: "/", with: "%")
    }

    /// Writes `pid` (this process by default); best effort, like the removal.
    public func write(_ pid: Int32 = getpid()) {
        try? "\(pid)\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// The pid the file names; nil when there is no file or it holds no pid.
    public func read() -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap(Self.parse)
    }

    /// The pid in a pid file's text (surrounding white space allowed); nil for anything else.
    public static func parse(_ text: String) -> Int32? {
        Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap { $0 > 0 ? $0 : nil }
    }

    /// The pid the file names if that process still runs (`ProcessIdentity.isRunning`).
    public func runningProcess() -> Int32? {
        read().flatMap { ProcessIdentity.isRunning($0) ? $0 : nil }
    }
}
