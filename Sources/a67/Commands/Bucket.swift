import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct BucketCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bucket",
        abstract: "Create, list and remove buckets.",
        subcommands: [Create.self, Ls.self, Rm.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a bucket.",
            discussion: """
                Bucket names follow S3's rules: 3 to 63 characters of lowercase letters, digits, '.' and \
                '-', starting and ending with a letter or digit. Each chunk of the bucket's objects is \
                stored on --replicas providers (at most as many as there are, never two in one failure \
                group). When providers fail during a put, it settles for --min-replicas and leaves the \
                rest to a67 repair; with fewer healthy providers than that, the put fails.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The bucket's name.")
        var name: String

        @Option(help: "How many providers hold each chunk, 1 to 8.")
        var replicas: Int = Repository.defaultReplicas

        @Option(help: "The fewest replicas a put settles for while providers fail, 1 to --replicas.")
        var minReplicas: Int = 1

        @Option(help: "The user whose access keys reach it through a67 serve (default: the CLI only).")
        var owner: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                try Names.validateBucket(name)
                let repository = try home.unlock()
                let ownerID = try owner.map { try repository.catalog.accounts.user(named: $0).id }
                let bucket = try await repository.createBucket(name, replicas: replicas, minReplicas: minReplicas, owner: ownerID)
                try await commit(repository)
                let providers = try repository.catalog.providers.all().count
                if providers < bucket.replicas {
                    note("warning: \(bucket.name) wants \(bucket.replicas) replicas but the repository has \(providers) provider(s); "
                        + "chunks get one copy per provider until you add more (a67 provider add)")
                }
                if json {
                    printJSON(["name": bucket.name, "replicas": bucket.replicas, "minReplicas": bucket.minReplicas, "providers": providers])
                } else {
                    show("created bucket \(bucket.name) (\(bucket.replicas) replicas)")
                }
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List buckets.")

        @OptionGroup var home: HomeOptions

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let buckets = try home.catalogOnly().catalog.namespace.buckets()
                if json {
                    printJSON(buckets.map { b in
                        ["name": b.bucket.name, "objects": b.objects, "bytes": b.bytes, "replicas": b.bucket.replicas,
                         "created": isoTime(b.bucket.createdAt)] as [String: Any]
                    })
                    return
                }
                if buckets.isEmpty {
                    show("no buckets yet: a67 bucket create NAME")
                    return
                }
                printTable(["NAME", "OBJECTS", "SIZE", "REPLICAS", "CREATED"], buckets.map { b in
                    [b.bucket.name, String(b.objects), ByteSize.format(b.bytes), String(b.bucket.replicas), isoTime(b.bucket.createdAt)]
                })
            }
        }
    }

    struct Rm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an empty bucket (refused when it holds objects; its trash goes with it).")

        @OptionGroup var home: HomeOptions

        @Argument(help: "The bucket's name.")
        var name: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                try Names.validateBucket(name)
                let repository = try home.unlock()
                try await repository.removeBucket(name)
                try await commit(repository)
                if json {
                    printJSON(["bucket": name, "removed": true])
                } else {
                    show("removed bucket \(name)")
                }
            }
        }
    }
}
