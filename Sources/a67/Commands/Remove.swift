import ArgumentParser
import ChunkStore
import Replicator

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove an object (it stays in the trash for 30 days: a67 undelete).",
        discussion: """
            The object disappears from its bucket at once and goes to the trash for 30 days (a67 \
            undelete brings it back); after that, a67 gc reclaims the chunks no other object uses.
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
            let repository = try home.unlock()
            try await repository.remove(bucket: path.bucket, key: path.key)
            try await commit(repository)
            if json {
                printJSON(["bucket": path.bucket, "key": path.key, "removed": true])
            } else {
                show("removed \(path.bucket)/\(path.key)")
            }
        }
    }
}
