import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage the users who reach buckets through a67 serve (the S3 API).",
        discussion: """
            A user owns the buckets they create through the S3 API (or that a67 bucket create --owner \
            gives them); no other user can read, list or learn of them. Users sign requests with access \
            keys (a67 key create). The CLI itself reaches every bucket.
            """,
        subcommands: [Add.self, Ls.self, Quota.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user.")

        @OptionGroup var home: HomeOptions

        @Argument(help: "The user's name: 1 to 64 letters, digits, '.', '-', '_' or '@'.")
        var name: String

        @Flag(help: "Let the user see every bucket, user and provider through the control API (/_a67/api/v1).")
        var admin = false

        @Option(help: "The most the user's buckets may hold, like 10G (default: no limit).")
        var quota: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let limit = try quota.map(ByteSize.parse)
                let repository = try home.unlock()
                let user = try await offPool { try repository.catalog.accounts.addUser(name: name, admin: admin, quota: limit) }
                try await commit(repository)
                if json {
                    printJSON(["name": user.name, "admin": user.admin, "quota": user.quota.map { $0 as Any } ?? NSNull()])
                } else {
                    show("added user \(user.name)\(user.admin ? " (admin)" : "")")
                    show("next: a67 key create \(user.name)")
                }
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with their usage, quota and keys.")

        @OptionGroup var home: HomeOptions

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let catalog = try home.catalogOnly().catalog
                let rows = try catalog.accounts.users().map { user in (user, try catalog.accounts.usage(user: user.id), try catalog.accounts.accessKeys(user: user.id)) }
                if json {
                    printJSON(rows.map { user, usage, keys in
                        ["name": user.name, "admin": user.admin, "quota": user.quota.map { $0 as Any } ?? NSNull(),
                         "buckets": usage.buckets, "objects": usage.objects, "bytes": usage.bytes, "keys": keys.map(\.id)] as [String: Any]
                    })
                } else {
                    printTable(["USER", "ADMIN", "BUCKETS", "OBJECTS", "USED", "QUOTA", "KEYS"], rows.map { user, usage, keys in
                        [user.name, user.admin ? "yes" : "no", String(usage.buckets), String(usage.objects), ByteSize.format(usage.bytes),
                         user.quota.map(ByteSize.format) ?? "-", String(keys.count)]
                    })
                }
            }
        }
    }

    struct Quota: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set how much a user's buckets may hold.",
            discussion: """
                SIZE is like 500M, 10G or 1TiB; 'none' removes the limit. Object sizes and the parts of \
                unfinished multipart uploads count. An upload that would go over is refused before its data \
                is stored (S3 error QuotaExceeded); what is already stored stays.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The user.")
        var name: String

        @Argument(help: "The limit, like 10G, or none.")
        var size: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let limit: Int64? = size.lowercased() == "none" ? nil : try ByteSize.parse(size)
                let repository = try home.unlock()
                try await offPool { try repository.catalog.accounts.setQuota(user: name, bytes: limit) }
                try await commit(repository)
                let usage = try repository.catalog.accounts.usage(user: try repository.catalog.accounts.user(named: name).id)
                if json {
                    printJSON(["name": name, "quota": limit.map { $0 as Any } ?? NSNull(), "bytes": usage.bytes])
                } else {
                    show("\(name): quota \(limit.map(ByteSize.format) ?? "none"), using \(ByteSize.format(usage.bytes))")
                }
            }
        }
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Create, list and remove access keys for the S3 API.",
        subcommands: [Create.self, Ls.self, Rm.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an access key for a user; prints its ID and secret once.",
            discussion: """
                The secret is shown only now: the repository keeps it sealed under its key. Give both to \
                an S3 client (aws configure, rclone config, boto3) with a67 serve's address as the endpoint.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The user the key acts for.")
        var user: String

        @Flag(help: "Print {\"accessKeyId\": ..., \"secretAccessKey\": ...}.")
        var json = false

        func run() async throws {
            try await guarded {
                let repository = try home.unlock()
                let key = try await repository.createAccessKey(user: user)
                try await commit(repository)
                if json {
                    printJSON(["accessKeyId": key.id, "secretAccessKey": key.secret])
                } else {
                    show("access key id:     \(key.id)")
                    show("secret access key: \(key.secret)")
                    note("the secret is shown only once: store it now")
                }
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List access keys (never their secrets).")

        @OptionGroup var home: HomeOptions

        @Argument(help: "Only this user's keys.")
        var user: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let catalog = try home.catalogOnly().catalog
                let keys = try catalog.accounts.accessKeys(user: try user.map { try catalog.accounts.user(named: $0).id })
                if json {
                    printJSON(keys.map { ["id": $0.id, "user": $0.userName, "created": isoTime($0.createdAt)] })
                } else {
                    printTable(["ID", "USER", "CREATED"], keys.map { [$0.id, $0.userName, isoTime($0.createdAt)] })
                }
            }
        }
    }

    struct Rm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an access key; requests signed with it are refused at once.")

        @OptionGroup var home: HomeOptions

        @Argument(help: "The access key ID.")
        var id: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let repository = try home.unlock()
                try await offPool { try repository.catalog.accounts.removeAccessKey(id) }
                try await commit(repository)
                if json { printJSON(["removed": id]) } else { show("removed access key \(id)") }
            }
        }
    }
}
