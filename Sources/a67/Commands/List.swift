import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List objects in a bucket.",
        discussion: """
            Like S3: BUCKET/PREFIX lists keys starting with PREFIX, in byte order. Without --recursive, \
            keys continuing past the next '/' show as one folder entry (ending in '/').
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "BUCKET or BUCKET/PREFIX.")
    var location: String

    @Flag(name: [.short, .long], help: "List every key below the prefix, not just one level.")
    var recursive = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let path = try ObjectPath(location, keyRequired: false)
            try Names.validateBucket(path.bucket)
            let entries = try home.catalogOnly().list(bucket: path.bucket, prefix: path.key, recursive: recursive)
            if json {
                printJSON(entries.map { e in
                    ["key": e.key, "folder": e.isFolder, "size": e.size, "modified": isoTime(e.mtime)] as [String: Any]
                })
                return
            }
            for entry in entries {
                if entry.isFolder {
                    show("\("".padding(toLength: 20, withPad: " ", startingAt: 0))  \("DIR".leftPad(10))  \(entry.key)")
                } else {
                    show("\(isoTime(entry.mtime))  \(ByteSize.format(entry.size).leftPad(10))  \(entry.key)")
                }
            }
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
