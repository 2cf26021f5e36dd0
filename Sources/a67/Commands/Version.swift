import ArgumentParser
import ChunkStore
import CurlTransport
import FUSEMount

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the versions of a67, its format and its libraries.")

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let rows = [
            ("a67", A67.version), ("chunk format", String(ChunkSealer.formatVersion)), ("OpenSSL", Libraries.openssl),
            ("zstd", Libraries.zstd), ("libcurl", CurlEngine.libraryVersion), ("libfuse", FUSELibrary.version),
        ]
        if json {
            printJSON(Dictionary(uniqueKeysWithValues: rows.map { ($0.0, $0.1) }))
        } else {
            printTable(nil, rows.map { [$0.0, $0.1] })
        }
    }
}
