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
        throw ExitCode(5)
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
}

func exitCode(for code: StoreError.Code) -> Int32 {
    switch code {
    case .internal, .io: return 1
    case .notFound: return 2
    case .wrongPassphrase: return 3
    case .integrity: return 4
    case .providerFailure: return 5
    case .alreadyExists, .conflict: return 6
    case .notInitialized: return 7
    case .invalidArgument: return 64
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("a67: error: \(message)\n".utf8))
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}

/// Prints a JSON value (dictionaries, arrays, strings, numbers, booleans, NSNull) with sorted keys.
func printJSON(_ value: Any) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

/// Nanoseconds since 1970 as an ISO 8601 UTC time.
func isoTime(_ nanoseconds: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
}

/// Rows padded into columns, under a header line unless `header` is nil.
func printTable(_ header: [String]?, _ rows: [[String]]) {
    let all = (header.map { [$0] } ?? []) + rows
    guard let columns = all.first?.count else { return }
    let widths = (0..<columns).map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

func rate(_ bytes: Int64, _ seconds: Double) -> String {
    seconds > 0 ? String(format: "%.1f MB/s", Double(bytes) / seconds / 1e6) : "-"
}
