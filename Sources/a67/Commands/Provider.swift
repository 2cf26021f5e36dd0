import ArgumentParser
import ChunkStore
import Replicator

struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provider",
        abstract: "Add and list the providers that hold your chunks.",
        subcommands: [Add.self, Ls.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a provider: a place chunks are stored.",
            discussion: """
                --dir PATH: a local folder (a disk, a mounted share). It is created if missing and must \
                not belong to another repository. The keyring is copied there, so this provider plus \
                the passphrase is enough to recover. --quota caps what a67 stores there (500M, 10G, 1TiB).
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "A name for the provider: 1 to 32 letters, digits, '-' or '_'.")
        var name: String

        @Option(help: "A local directory to store chunks in.")
        var dir: String

        @Option(help: "The most a67 may store there, like 500M, 10G or 1TiB.")
        var quota: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                try Names.validateProvider(name)
                let limit = try quota.map(ByteSize.parse)
                let repository = try home.unlock()
                let record = try await repository.addProvider(name: name, spec: .directory(path: absolute(dir)), quota: limit)
                if json {
                    printJSON(["name": record.name, "kind": record.kind, "location": absolute(dir),
                               "quota": record.quota.map { $0 as Any } ?? NSNull()])
                } else {
                    print("added provider \(record.name): directory \(absolute(dir))" + (limit.map { ", quota \(ByteSize.format($0))" } ?? ""))
                }
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List providers with what they hold.")

        @OptionGroup var home: HomeOptions

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let providers = try home.catalogOnly().providers()
                if json {
                    printJSON(providers.map { p in
                        ["name": p.record.name, "kind": p.record.kind, "location": p.spec.summary,
                         "usedBytes": p.record.usedBytes, "chunks": p.record.chunkCount,
                         "quota": p.record.quota.map { $0 as Any } ?? NSNull()] as [String: Any]
                    })
                    return
                }
                if providers.isEmpty {
                    print("no providers yet: add one with a67 provider add NAME --dir PATH")
                    return
                }
                printTable(["NAME", "KIND", "USED", "QUOTA", "CHUNKS", "LOCATION"], providers.map { p in
                    [p.record.name, p.record.kind, ByteSize.format(p.record.usedBytes),
                     p.record.quota.map(ByteSize.format) ?? "-", String(p.record.chunkCount), p.spec.summary]
                })
            }
        }
    }
}

import Foundation
