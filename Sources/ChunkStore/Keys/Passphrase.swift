import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A passphrase in memory. Never printed: its description is redacted.
public struct Passphrase: Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(_ text: String) { bytes = Array(text.utf8) }

    public var description: String { "Passphrase(redacted)" }

    /// Where the CLI finds the passphrase, in order: the file named by A67_PASSPHRASE_FILE (its first
    /// line), A67_PASSPHRASE, or a prompt when standard input is a terminal. `confirm` asks twice
    /// (for a new repository).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       confirm: Bool = false) throws -> Passphrase {
        if let path = environment["A67_PASSPHRASE_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw StoreError(.wrongPassphrase, "cannot read the passphrase file named by A67_PASSPHRASE_FILE (\(path)): check the path and its permissions")
            }
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return try validated(Passphrase(line.hasSuffix("\r") ? String(line.dropLast()) : line), from: "A67_PASSPHRASE_FILE")
        }
        if let text = environment["A67_PASSPHRASE"] {
            return try validated(Passphrase(text), from: "A67_PASSPHRASE")
        }
        guard isatty(0) == 1 else {
            throw StoreError(.wrongPassphrase, "no passphrase: set A67_PASSPHRASE_FILE to a file holding it (or A67_PASSPHRASE), or run a67 on a terminal to be asked")
        }
        let first = try prompt("Passphrase: ")
        if confirm {
            let second = try prompt("Passphrase again: ")
            guard first.bytes == second.bytes else {
                throw StoreError(.wrongPassphrase, "the two passphrases differ; nothing was created")
            }
        }
        return try validated(first, from: "the prompt")
    }

    private static func validated(_ p: Passphrase, from source: String) throws -> Passphrase {
        guard !p.bytes.isEmpty else {
            throw StoreError(.wrongPassphrase, "the passphrase from \(source) is empty; choose a non-empty passphrase")
        }
        return p
    }

    /// Reads a line from the terminal with echo off.
    private static func prompt(_ text: String) throws -> Passphrase {
        FileHandle.standardError.write(Data(text.utf8))
        var saved = termios()
        tcgetattr(0, &saved)
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &silent)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = Swift.readLine(strippingNewline: true) else {
            throw StoreError(.wrongPassphrase, "no passphrase was typed")
        }
        return Passphrase(line)
    }
}
