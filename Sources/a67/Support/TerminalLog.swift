import ChunkStore
import Foundation
import Logging

/// How what the libraries log reaches the terminal: on standard error, one line each, as
/// "a67 serve: MESSAGE" for the logger labelled "a67.serve" (a label's dots read as spaces; the label
/// "a67" is the CLI's own voice, without a prefix, like `note`), escaped
/// like all human output (`terminalSafe`). Notice and above are shown (A67_LOG_LEVEL=info or debug
/// shows more). Metadata is never printed: what a library attaches to a message (request IDs, peers)
/// is for structured sinks, and leaving it out keeps what reaches the terminal what was written for it.
struct TerminalLogHandler: LogHandler {
    let prefix: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level) {
        prefix = label == "a67" ? "" : label.replacingOccurrences(of: ".", with: " ") + ": "
        logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        writeStandardError("\(prefix)\(terminalSafe(event.message.description))\n")
    }

    /// Makes every logger of this process a terminal one; called once, before any command runs.
    static func bootstrap() {
        let level = ProcessInfo.processInfo.environment["A67_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        LoggingSystem.bootstrap { label in TerminalLogHandler(label: label, level: level) }
    }
}
