import ArgumentParser
import ChunkStore
import Foundation

/// Runs a command body, turning store errors into one line on standard error and the documented
/// exit code (see `a67 --help`).
func guarded(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as StoreError {
        printError(error.message)
        throw ExitCode(exitCode(for: error.code))
    } catch let error as BackendError {
        printError(error.description)
        throw ExitCode(ExitStatus.provider.rawValue)
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        printError("\(error)")
        throw ExitCode(ExitStatus.failure.rawValue)
    }
}

/// The exit statuses, in one place: `a67 --help` prints this table and errors map to it.
enum ExitStatus: Int32, CaseIterable {
    case success = 0, failure = 1, notFound = 2, passphrase = 3, integrity = 4, provider = 5, conflict = 6,
         noRepository = 7, keyringLost = 8, usage = 64

    var meaning: String {
        switch self {
        case .success: return "success"
        case .failure: return "unexpected error (a bug, or a local file that cannot be read or written)"
        case .notFound: return "not found: a bucket, key, provider or source file that does not exist"
        case .passphrase: return "wrong passphrase, or none given"
        case .integrity: return "integrity failure: stored data is damaged or swapped (never returned)"
        case .provider: return "provider failure: unwritable, full, missing, or a quota used up"
        case .conflict: return "conflict: it already exists, or a bucket is not empty"
        case .noRepository: return "no repository at $A67_HOME (run a67 init)"
        case .keyringLost: return "keyring missing or damaged beside its catalog (see the message)"
        case .usage: return "usage: invalid arguments, names, keys or ranges"
        }
    }

    init(_ code: StoreError.Code) {
        switch code {
        case .internal, .io: self = .failure
        case .notFound: self = .notFound
        case .wrongPassphrase: self = .passphrase
        case .integrity: self = .integrity
        case .providerFailure, .quotaExceeded: self = .provider
        case .alreadyExists, .conflict: self = .conflict
        case .notInitialized: self = .noRepository
        case .keyringLost: self = .keyringLost
        case .invalidArgument: self = .usage
        }
    }

    static var helpTable: String {
        allCases.map { "  " + String($0.rawValue).padding(toLength: 4, withPad: " ", startingAt: 0) + $0.meaning }
            .joined(separator: "\n")
    }
}

func exitCode(for code: StoreError.Code) -> Int32 { ExitStatus(code).rawValue }

// Human output. Names in it were chosen by others (an S3 user's keys and buckets, providers, users),
// so every line goes through `terminalSafe`; `--json` output escapes the same characters itself.

/// Prints one line of human output on standard output (escaped: see `terminalSafe`).
func show(_ line: String) {
    print(terminalSafe(line))
}

/// Writes what standard output holds: a long-running command's lines reach a pipe or file when said.
func flushOutput() {
    fflush(nil)
}

func printError(_ message: String) {
    writeStandardError("a67: error: \(terminalSafe(message))\n")
}

/// Prints one line on standard error (escaped: see `terminalSafe`).
func note(_ message: String) {
    writeStandardError("\(terminalSafe(message))\n")
}

/// Prints a JSON value (dictionaries, arrays, strings, numbers, booleans, NSNull) with sorted keys.
/// JSON escapes C0 controls; DEL, C1 and the bidirectional controls (which JSON allows raw) are written
/// as `\u` escapes too, so the output is as safe on a terminal as human output and still exact.
func printJSON(_ value: Any) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    let text = terminalSafeJSON(String(decoding: data, as: UTF8.self))
    print(text)
}

/// Prints an Encodable value as JSON, as `printJSON` does (sorted keys, the same escapes).
func printCodable<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try! encoder.encode(value)
    print(terminalSafeJSON(String(decoding: data, as: UTF8.self)))
}

/// Nanoseconds since 1970 as an ISO 8601 UTC time.
func isoTime(_ nanoseconds: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
}

/// Rows padded into columns, under a header line unless `header` is nil.
func printTable(_ header: [String]?, _ rows: [[String]]) {
    let all = ((header.map { [$0] } ?? []) + rows).map { $0.map(terminalSafe) }
    guard let columns = all.first?.count else { return }
    let widths = (0..<columns).map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))  // cells are escaped above
    }
}
