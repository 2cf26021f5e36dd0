import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provider",
        abstract: "Add, list, test, drain and remove the providers that hold your chunks.",
        subcommands: [Add.self, Ls.self, Test.self, Drain.self, Rm.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a provider: a place chunks are stored.",
            discussion: """
                Give exactly one of --dir, --s3, --webdav or --sftp:

                  a67 provider add disk1 --dir /mnt/disk1/a67
                  a67 provider add r2 --s3 https://ACCT.r2.cloudflarestorage.com \\
                      --bucket a67 --region auto --path-style \\
                      --access-key-id AKID --secret-key-file ~/.r2-secret
                  a67 provider add box --webdav https://dav.example.com/a67 \\
                      --user me --password-file ~/.dav-pass
                  a67 provider add vps --key-file ~/.ssh/id_ed25519 \\
                      --sftp sftp://me@vps.example.com:22/home/me/a67

                Secrets are read from files (never from the command line, where other users could see \
                them in the process list) and stored only sealed with the repository key. The location \
                must not belong to another repository; the keyring is copied there, so this provider \
                plus the passphrase is enough to recover. An SFTP host key is pinned on first contact \
                (or give --host-key-sha256 as `ssh-keygen -lf` prints it). --quota caps what a67 \
                stores there (500M, 10G, 1TiB).

                S3 credentials need read, write, delete and list on the bucket (without list, S3 \
                answers 403 instead of 404 for a missing chunk). SFTP cannot ask the server to \
                fsync, so a put there is durable as far as the server's own writes are.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "A name for the provider: 1 to 32 letters, digits, '-' or '_'.")
        var name: String

        @OptionGroup var location: ProviderLocation

        @Option(help: "The most a67 may store there, like 500M, 10G or 1TiB. Placement weighs providers by their free room under it.")
        var quota: String?

        @Option(help: ArgumentHelp("A failure domain (one cloud account, one disk): two replicas of a chunk never share a group. Default: the provider's own name.", valueName: "name"))
        var group: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                try Names.validateProvider(name)
                let limit = try quota.map(ByteSize.parse)
                if let group { try Names.validateProvider(group, what: "group") }
                let (spec, secret) = try location.specification()
                let repository = try home.unlock()
                let added = try await repository.addProvider(name: name, spec: spec, secret: secret, quota: limit, group: group)
                // The new provider gets the catalog snapshot and root pointer at once.
                try await commit(repository)
                var pinned: String?
                if case .sftp(let settings, _) = added.spec, location.hostKeySha256 == nil { pinned = settings.hostKeySHA256 }
                if json {
                    printJSON(["name": added.record.name, "kind": added.record.kind, "location": added.spec.summary,
                               "quota": added.record.quota.map { $0 as Any } ?? NSNull(),
                               "hostKeySHA256": pinned.map { $0 as Any } ?? NSNull()])
                } else {
                    show("added provider \(added.record.name): \(added.record.kind) \(added.spec.summary)"
                          + (limit.map { ", quota \(ByteSize.format($0))" } ?? ""))
                    if let pinned { show("pinned the host key SHA256:\(pinned) (trusted on first use; compare it with `ssh-keygen -lf` on the server)") }
                    if try repository.catalog.statistics().totalChunks > 0 {
                        show("new chunks go to it from now on; a67 rebalance moves its share of the existing ones to it")
                    }
                }
            }
        }

    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List providers with their state, health and what they hold.",
            discussion: """
                STATE is active, or draining (no new chunks). BREAKER is the circuit breaker as the last \
                command that used the provider left it: closed (healthy), open (failing: skipped), \
                half-open (being probed); a provider without this repository's keyring (its folder \
                emptied or replaced, a disk not mounted, a bucket emptied) shows open, takes no chunks \
                until the keyring is back, and is named below the table with why. LATENCY is the median chunk read (or, before any, the last \
                probe's round trip), ERRORS the share of failed requests among the last 64. --probe asks every provider now (needs the passphrase for remote credentials).
                """)

        @OptionGroup var home: HomeOptions

        @Flag(help: "Probe every provider now instead of showing what the last command saw.")
        var probe = false

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                var probes: [String: Repository.ProbeResult] = [:]
                let repository: Repository
                if probe {
                    repository = try home.unlock()
                    for result in try await repository.probeProviders() { probes[result.provider] = result }
                } else {
                    repository = try home.catalogOnly()
                }
                let providers = try repository.providers()
                if json {
                    printJSON(providers.map { p in
                        var entry: [String: Any] = [
                            "name": p.record.name, "kind": p.record.kind, "location": p.spec.summary, "state": p.record.state.rawValue,
                            "group": p.record.group, "usedBytes": p.record.usedBytes, "chunks": p.record.chunkCount,
                            "quota": p.record.quota.map { $0 as Any } ?? NSNull(),
                            "breaker": p.record.health?.breaker.rawValue ?? NSNull(),
                            "latencySeconds": p.record.health?.latencySeconds.map { $0 as Any } ?? NSNull(),
                            "errorRate": p.record.health?.errorRate ?? NSNull(),
                            "problem": p.record.health?.problem ?? NSNull(),
                            "checkedAt": p.record.health.map { isoTime($0.checkedAt) as Any } ?? NSNull()]
                        if let result = probes[p.record.name] { entry["probeError"] = result.error ?? NSNull() }
                        return entry
                    })
                    return
                }
                if providers.isEmpty {
                    show("no providers yet: add one with a67 provider add NAME --dir PATH (or --s3, --webdav, --sftp)")
                    return
                }
                printTable(["NAME", "KIND", "STATE", "BREAKER", "LATENCY", "ERRORS", "USED", "QUOTA", "CHUNKS", "GROUP", "LOCATION"],
                           providers.map { p in
                    let health = p.record.health
                    return [p.record.name, p.record.kind, p.record.state.rawValue, health?.breaker.rawValue ?? "-",
                            health?.latencySeconds.map { String(format: "%.1f ms", $0 * 1000) } ?? "-",
                            health.map { String(format: "%.0f%%", $0.errorRate * 100) } ?? "-",
                            ByteSize.format(p.record.usedBytes), p.record.quota.map(ByteSize.format) ?? "-",
                            String(p.record.chunkCount), p.record.group, p.spec.summary]
                })
                for p in providers where probes[p.record.name] == nil {
                    if let problem = p.record.health?.problem { note("\(p.record.name) takes no chunks: \(problem)") }
                }
                for result in probes.values.sorted(by: { $0.provider < $1.provider }) where result.error != nil {
                    note("\(result.provider): \(result.error!)")
                }
            }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every chunk off a provider, so that it can be removed.",
            discussion: """
                The provider takes no new chunks from now on, in running a67 serve and a67 mount \
                processes too: drain first waits for uploads already placing chunks there. Each chunk \
                it holds is copied to other providers (chosen as for a new write, verified first) \
                before its copy there is deleted, and so is its copy of the catalog snapshot. Safe to \
                interrupt and run again. Then: a67 provider rm NAME.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The provider's name (see a67 provider ls).")
        var name: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let repository = try home.unlock()
                let held = try repository.providers().first { $0.record.name == name }?.record.usedBytes
                let bar = ProgressBar(label: "drain", total: held)
                let report = try await repository.drain(provider: name, progress: bar.handler)
                bar.finish()
                try await commit(repository)
                if json {
                    printJSON(["provider": name, "chunksMoved": report.chunksMoved, "bytesMoved": report.bytesMoved,
                               "failed": report.failed, "seconds": report.seconds])
                } else {
                    show("drained \(name): " + report.summary)
                    for line in report.problems.prefix(20) { note("  \(line)") }
                }
                guard report.failed.isEmpty else {
                    throw StoreError(.providerFailure, "\(report.failed.count) chunk(s) could not be moved off \(name); fix the providers and run drain again")
                }
                if !json { show("\(name) now holds none of your chunks: remove it with a67 provider rm \(name)") }
            }
        }
    }

    struct Rm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a provider from the repository.",
            discussion: """
                Refused while the provider holds the only copy of anything: drain it first. Chunks it held \
                that have copies elsewhere count as under-replicated until a67 repair restores them. \
                Nothing is deleted on the provider itself.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The provider's name (see a67 provider ls).")
        var name: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let repository = try home.unlock()
                let removed = try await repository.removeProvider(name)
                try await commit(repository)
                if json {
                    printJSON(["provider": name, "removed": true, "chunksItHeld": removed.chunksLeft,
                               "underReplicatedChunks": removed.underReplicated])
                } else {
                    show("removed provider \(name)")
                    if removed.underReplicated > 0 {
                        show("\(removed.underReplicated) chunk(s) are now under-replicated: run a67 repair")
                    }
                }
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a provider live: put, get, list and delete probe objects, with latency and throughput.",
            discussion: """
                Reads the provider's keyring, writes a 1 KiB and an 8 MiB probe object under a67-probe/, \
                reads them back and compares, lists, deletes, and checks they are gone. Exits non-zero \
                naming the step that failed. Your chunks are not touched.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The provider's name (see a67 provider ls).")
        var name: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let report = try await home.unlock().testProvider(name)
                if json {
                    printJSON(["provider": report.provider, "location": report.location,
                               "steps": report.steps.map { ["step": $0.name, "seconds": $0.seconds] as [String: Any] },
                               "putBytesPerSecond": report.putBytesPerSecond, "getBytesPerSecond": report.getBytesPerSecond])
                    return
                }
                show("provider \(report.provider): \(report.location)")
                printTable(["STEP", "TIME"], report.steps.map { [$0.name, String(format: "%.1f ms", $0.seconds * 1000)] })
                show(String(format: "throughput: put %.1f MB/s, get %.1f MB/s (%@ object)", report.putBytesPerSecond / 1e6,
                             report.getBytesPerSecond / 1e6, ByteSize.format(Int64(report.largeSize))))
                show("ok")
            }
        }
    }
}
