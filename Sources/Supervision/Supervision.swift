import ChunkStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Running a long-lived process apart from the command that starts it (a mount now, the node agent
/// later): detaching into its own session, handing it a secret through a pipe, waiting until it is
/// ready or has failed, and stopping it. Liveness is read from /proc (`ProcessIdentity`), so a zombie
/// or a pid reused by another process never counts as the instance.
public enum Supervision {
    /// In the detached child: leaves the starter's session and process group, so that the starter's
    /// terminal closing or its Ctrl-C does not reach it.
    public static func detach() { _ = setsid() }

    /// Starts `executable` with `arguments` and `environment`, its output appended to `log` (created
    /// if missing), and `secret` (a passphrase) written to its standard input, then closed: never on
    /// the command line or in the environment, where other local users can read it.
    public static func startDetached(_ executable: String, arguments: [String], environment: [String: String],
                                     log: String, secret: [UInt8]) throws -> Process {
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        output.seekToEndOfFile()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = arguments
        child.environment = environment
        let input = Pipe()
        child.standardInput = input
        child.standardOutput = output
        child.standardError = output
        try child.run()
        input.fileHandleForWriting.write(Data(secret))
        try input.fileHandleForWriting.close()
        return child
    }

    /// How a started child turned out.
    public enum Start: Equatable, Sendable {
        /// `ready` said yes while the child ran.
        case ready
        /// The child exited first, with this status.
        case exited(Int32)
        /// Neither within the time allowed (the child is left running: the caller decides).
        case timedOut
    }

    /// Polls `ready` every 50 ms until it holds, the child exits, or `timeout` passes. Blocks the
    /// calling thread: for a command's main path, not for the cooperative pool.
    public static func waitUntilReady(_ child: Process, timeout: Duration, ready: () -> Bool) -> Start {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if ready() { return .ready }
            if !child.isRunning { return .exited(child.terminationStatus) }
            usleep(50_000)
        }
        return .timedOut
    }

    /// Asks process `pid` to stop (SIGTERM) and waits until it no longer runs; false when no such
    /// process was there to ask. Blocks the calling thread, like `waitUntilReady`.
    @discardableResult
    public static func stop(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        kill(pid, SIGTERM)
        while ProcessIdentity.isRunning(pid) { usleep(50_000) }
        return true
    }

    /// The last `count` lines of `text`, joined with " | ": a child's log in one line of an error
    /// message (error output escapes line breaks).
    public static func tail(_ text: String, lines count: Int = 5) -> String {
        text.split(separator: "\n").suffix(count).joined(separator: " | ")
    }
}
