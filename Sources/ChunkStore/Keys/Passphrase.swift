import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A passphrase in memory. Never printed: its description and reflection are redacted.
public struct Passphrase: Sendable, CustomStringConvertible, CustomReflectable {
    public let bytes: [UInt8]

    public init(_ text: String) { bytes = Array(text.utf8) }

    public var description: String { "Passphrase(redacted)" }
    public var customMirror: Mirror { Mirror(self, children: []) }

    /// The longest passphrase a file may hold (its first line, without the line end).
    public static let fileLimit = 64 * 1024

    /// Where the CLI finds the passphrase, in order: the file named by A67_PASSPHRASE_FILE (its first
    /// line, without a trailing LF or CRLF), A67_PASSPHRASE, or a prompt when standard input is a
    /// terminal. `confirm` asks twice (for a new repository).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       confirm: Bool = false) throws -> Passphrase {
        if let path = environment["A67_PASSPHRASE_FILE"], !path.isEmpty {
            return try validated(try fromFile(path), from: "A67_PASSPHRASE_FILE")
        }
        if let text = environment["A67_PASSPHRASE"] {
            return try validated(Passphrase(text), from: "A67_PASSPHRASE")
        }
        let terminal = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard terminal >= 0 else {
            throw StoreError(.wrongPassphrase, "no passphrase: set A67_PASSPHRASE_FILE to a file holding it (or A67_PASSPHRASE), or run a67 on a terminal to be asked")
        }
        defer { close(terminal) }
        let first = try prompt("Passphrase: ", terminal: terminal)
        if confirm {
            let second = try prompt("Passphrase again: ", terminal: terminal)
            guard first.bytes == second.bytes else {
                throw StoreError(.wrongPassphrase, "the two passphrases differ; nothing was created")
            }
        }
        return try validated(first, from: "the prompt")
    }

    /// The first line of `path`: never more than `fileLimit` bytes and its line end are read (a file
    /// that never ends, like /dev/zero, fails at once; so does a longer line). Reading stops at the line end,
    /// so a pipe works even while its writer keeps it open (a67 mount hands its background process
    /// the passphrase through one).
    static func fromFile(_ path: String) throws -> Passphrase {
        let newline = UInt8(ascii: "\n")
        let bytes: [UInt8]
        do throws(SystemCallError) {
            bytes = try LocalFile.read(path, atMost: fileLimit + 2, stoppingAfter: newline)
        } catch {
            if error.errno == EISDIR {
                throw StoreError(.wrongPassphrase, "A67_PASSPHRASE_FILE names a folder (\(path)), not a file: "
                    + "name the file that holds the passphrase")
            }
            throw StoreError(.wrongPassphrase, "cannot read the passphrase file named by A67_PASSPHRASE_FILE (\(path)): "
                + "\(error.reason); check the path and its permissions")
        }
        var line = bytes.prefix { $0 != newline }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard line.count <= fileLimit else {
            throw StoreError(.wrongPassphrase, "the passphrase file named by A67_PASSPHRASE_FILE (\(path)) has no line end "
                + "in its first \(fileLimit / 1024) KiB: a passphrase is its first line, of at most \(fileLimit / 1024) KiB. "
                + "Is it the right file (not a device like /dev/zero, nor a binary file)?")
        }
        return Passphrase(String(decoding: line, as: UTF8.self))
    }

    private static func validated(_ p: Passphrase, from source: String) throws -> Passphrase {
        guard !p.bytes.isEmpty else {
            throw StoreError(.wrongPassphrase, "the passphrase from \(source) is empty; choose a non-empty passphrase")
        }
        return p
    }

    /// Reads a line from the controlling terminal (not standard input, which may carry data) with
    /// echo off. Ctrl-C at the prompt restores echo before the process ends.
    private static func prompt(_ text: String, terminal: Int32) throws -> Passphrase {
        _ = text.withCString { write(terminal, $0, strlen($0)) }
        var saved = termios()
        let isTerminal = tcgetattr(terminal, &saved) == 0
        if isTerminal {
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            TerminalEcho.restoreOnInterrupt(terminal, saved)
            tcsetattr(terminal, TCSANOW, &silent)  // not FLUSH: keep what was typed ahead
        }
        defer {
            if isTerminal {
                tcsetattr(terminal, TCSANOW, &saved)
                TerminalEcho.clear()
            }
            _ = write(terminal, "\n", 1)
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(terminal, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                if line.isEmpty { throw StoreError(.wrongPassphrase, "no passphrase was typed") }
                break
            }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return Passphrase(String(decoding: line, as: UTF8.self))
    }
}

/// Puts terminal echo back when SIGINT arrives during a prompt, then lets the signal end the process.
private enum TerminalEcho {
    nonisolated(unsafe) static var saved: (fd: Int32, state: termios)?

    static func restoreOnInterrupt(_ fd: Int32, _ state: termios) {
        saved = (fd, state)
        signal(SIGINT) { signalNumber in
            if var state = TerminalEcho.saved?.state, let fd = TerminalEcho.saved?.fd {
                tcsetattr(fd, TCSANOW, &state)
            }
            signal(signalNumber, SIG_DFL)
            raise(signalNumber)
        }
    }

    static func clear() {
        signal(SIGINT, SIG_DFL)
        saved = nil
    }
}
