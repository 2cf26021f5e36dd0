import ArgumentParser
import ChunkStore
import Replicator

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove an object.",
        discussion: """
            The object disappears from its bucket at once. Chunks no other object uses stay on the \
            providers as unreferenced (a67 stat counts them) until garbage collection reclaims them.
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "The object: BUCKET/KEY.")
    var object: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let path = try ObjectPath(object, keyRequired: true)
            try Names.validateBucket(path.bucket)
            _ = try Names.keySegments(path.key)
            try home.unlock().remove(bucket: path.bucket, key: path.key)
            if json {
                printJSON(["bucket": path.bucket, "key": path.key, "removed": true])
            } else {
                print("removed \(path.bucket)/\(path.key)")
            }
        }
    }
}
