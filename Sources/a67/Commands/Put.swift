import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a file (or standard input) as an object.",
        discussion: """
            SRC is a file, or - for standard input. The object appears only once all of it is stored on \
            the bucket's number of providers (or, while some fail, on at least its --min-replicas, with a \
            warning: a67 repair restores the rest); \
            an interrupted put leaves no object, and running it again reuses what was already stored. \
            Content already in the repository (in any bucket) is not stored again. A progress line is \
            shown on a terminal for transfers over 8 MiB.

            Examples:
              a67 put ./report.pdf docs/2026/report.pdf
              tar c ~/projects | a67 put - backups/projects.tar
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "The file to store, or - for standard input.")
    var source: String

    @Argument(help: "Where to store it: BUCKET/KEY.")
    var destination: String

    @Option(help: "zstd level for this put (default: the repository's, set at init).")
    var zstdLevel: Int?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let target = try ObjectPath(destination, keyRequired: true)
            try Names.validateBucket(target.bucket)
            _ = try Names.keySegments(target.key)
            let input = try FileSource(path: source)
            let repository = try home.unlock()
            let bar = ProgressBar(label: "put", total: input.knownSize)
            let started = Date()
            let result: ObjectWriter.Result
            do {
                result = try await repository.put(input, bucket: target.bucket, key: target.key, zstdLevel: zstdLevel,
                                                  progress: bar.handler)
                bar.finish()
                try await commit(repository)
            } catch {
                bar.finish()
                throw error
            }
            let seconds = Date().timeIntervalSince(started)
            if json {
                printJSON(["bucket": target.bucket, "key": target.key, "size": result.size, "chunks": result.chunks,
                           "newChunks": result.newChunks, "newStoredBytes": result.newSealedBytes,
                           "seconds": seconds, "manifest": result.manifestID.hex, "underReplicatedChunks": result.underReplicated])
            } else {
                show("put \(target.bucket)/\(target.key): \(ByteSize.format(result.size)) in \(result.chunks) chunk(s), "
                    + "\(result.newChunks) new (\(ByteSize.format(result.newSealedBytes)) stored), "
                    + String(format: "%.2f s, ", seconds) + ByteSize.rate(result.size, seconds))
            }
            if result.underReplicated > 0 {
                note("warning: \(result.underReplicated) chunk(s) have fewer replicas than \(target.bucket) wants, because providers failed "
                    + "(a67 provider ls shows which); the object is stored, and a67 repair restores the missing replicas")
            }
        }
    }
}
