import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct Scrub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify that every replica of every chunk exists and decrypts.",
        discussion: """
            Reads each recorded replica from its provider and checks it as a get would (authentication \
            tag, chunk ID, length). A missing or damaged replica stops being counted, so the chunk shows \
            as under-replicated in a67 status and a67 repair restores it. Exits 4 when any was found, 5 \
            when a provider could not be read. --rate caps the read rate, to spare a metered provider.
            """)

    @OptionGroup var home: HomeOptions

    @Option(help: ArgumentHelp("Read at most this many MB per second.", valueName: "MB/s"))
    var rate: Double?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            if let rate, !(rate > 0) { throw StoreError(.invalidArgument, "--rate must be more than 0 MB/s") }
            let repository = try home.unlock()
            let stored = try repository.catalog.statistics().replicaBytes
            let bar = ProgressBar(label: "scrub", total: stored)
            let report = try await repository.scrub(rate: rate.map { $0 * 1e6 }, progress: bar.handler)
            bar.finish()
            if !report.missing.isEmpty || !report.corrupt.isEmpty { try await commit(repository) }
            if json {
                printJSON(["replicasChecked": report.replicasChecked, "bytesChecked": report.bytesChecked,
                           "missing": report.missing, "corrupt": report.corrupt, "unreadable": report.unreadable,
                           "damagedObjects": report.damagedObjects, "seconds": report.seconds])
            } else {
                show(report.summary)
                for line in report.missing.prefix(20) { show("  missing: \(line)") }
                for line in report.corrupt.prefix(20) { show("  damaged: \(line)") }
                for line in report.unreadable.prefix(20) { show("  not checked: \(line)") }
                for line in report.damagedObjects.prefix(50) { show("  object lost: \(line)") }
                if report.damagedObjects.count > 50 { show("  ... and \(report.damagedObjects.count - 50) more objects lost") }
                if report.missing.count + report.corrupt.count > 0 { show("run a67 repair to restore them") }
            }
            if report.missing.count + report.corrupt.count + report.damagedObjects.count > 0 {
                throw ExitCode(ExitStatus.integrity.rawValue)
            }
            if !report.unreadable.isEmpty { throw ExitCode(ExitStatus.provider.rawValue) }
        }
    }
}

struct Repair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore every chunk to its bucket's number of replicas.",
        discussion: """
            Copies each under-replicated chunk from a surviving replica (verified first) to providers \
            chosen as for a new write. Run it after a provider was lost or removed, after a put that \
            left chunks under-replicated, or after scrub found damage. Safe to interrupt and run again.
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let repository = try home.unlock()
            let summary = try repository.catalog.chunks.replicationSummary()
            let bar = ProgressBar(label: "repair", total: summary.underReplicatedBytes)
            let report = try await repository.repair(progress: bar.handler)
            bar.finish()
            try await commit(repository)
            if json {
                printJSON(["chunksRepaired": report.chunksRepaired, "replicasAdded": report.replicasAdded,
                           "bytesCopied": report.bytesCopied, "failed": report.failed, "lost": report.lost,
                           "providersDown": report.providersDown,
                           "seconds": report.seconds])
            } else {
                show(report.summary)
                if !report.providersDown.isEmpty {
                    show("not answering (their copies were not counted): \(report.providersDown.joined(separator: ", "))")
                }
                for line in report.failed.prefix(20) { show("  still short: \(line)") }
                for line in report.lost.prefix(20) { show("  lost: \(line)") }
            }
            if !report.lost.isEmpty {
                throw StoreError(.integrity, "\(report.lost.count) chunk(s) have no readable copy left on any provider")
            }
            if !report.failed.isEmpty {
                throw StoreError(.providerFailure, "\(report.failed.count) chunk(s) are still under-replicated: add a provider or raise a quota, then run a67 repair again")
            }
        }
    }
}

struct Rebalance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move replicas to where placement puts them now (after adding a provider).",
        discussion: """
            Placement ranks providers per chunk by weighted rendezvous hashing, so adding one of N \
            providers moves only about 1/N of the replicas. Each moved replica is written to its new \
            provider before the old copy is deleted.
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let repository = try home.unlock()
            let bar = ProgressBar(label: "rebalance", total: nil)
            let report = try await repository.rebalance(progress: bar.handler)
            bar.finish()
            try await commit(repository)
            if json {
                printJSON(["chunks": report.chunksSeen, "chunksMoved": report.chunksMoved, "bytesMoved": report.bytesMoved,
                           "failed": report.failed, "seconds": report.seconds])
            } else {
                show("rebalance: " + report.summary)
                for line in report.problems.prefix(20) { show("  \(line)") }
            }
            if !report.failed.isEmpty { throw ExitCode(ExitStatus.provider.rawValue) }
        }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Reclaim space: drop expired trash and delete chunks nothing refers to.",
        discussion: """
            Mark and sweep from the live objects (and deleted objects still in the trash). Deletes \
            chunks no object refers to once they were recorded more than --grace ago, and files on a \
            provider that the catalog does not place there (left by an interrupted put) once they have \
            been seen by gc for --grace. A provider whose listing fails is skipped: nothing is deleted \
            on the strength of an incomplete listing. Waits for running puts to finish. Blocks a running \
            a67 mount has stored but not yet committed are kept.

            The catalog's reference counts are checked against the objects first: when they disagree \
            (a damaged catalog.db), gc deletes nothing and exits 4. a67 scrub then names the objects \
            affected; --recount rebuilds the counts from the objects before collecting.

            Deleted objects stay in the trash for 30 days (a67 config set trash.retention_days N), \
            or --trash-days for this run.
            """)

    @OptionGroup var home: HomeOptions

    @Option(help: ArgumentHelp("Keep unreferenced chunks younger than this (like 30m, 1h, 0).", valueName: "duration"))
    var grace = "1h"

    @Option(help: ArgumentHelp("Drop trash entries older than this many days (default: the repository's setting, 30).", valueName: "days"))
    var trashDays: Double?

    @Flag(help: "Rebuild the catalog's reference counts from the objects first (after damage; see above).")
    var recount = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let seconds = try parseDuration(grace, option: "--grace")
            if let trashDays, !(trashDays >= 0) { throw StoreError(.invalidArgument, "--trash-days must be 0 or more") }
            let repository = try home.unlock()
            let report = try await repository.collectGarbage(grace: seconds, trashDays: trashDays, recount: recount)
            try await commit(repository)
            if json {
                printJSON(["trashPurged": report.trashPurged, "chunksDeleted": report.chunksDeleted,
                           "orphansDeleted": report.orphansDeleted, "orphansWaiting": report.orphansWaiting,
                           "bytesFreed": report.bytesFreed, "skippedProviders": report.skippedProviders,
                           "failed": report.failed, "recounted": report.recounted])
            } else {
                show("gc: " + report.summary)
                for line in report.problems.prefix(40) { show("  \(line)") }
            }
            if !report.skippedProviders.isEmpty || !report.failed.isEmpty { throw ExitCode(ExitStatus.provider.rawValue) }
        }
    }
}

struct Undelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring back a deleted object from the trash.",
        discussion: """
            Deleted objects are kept for 30 days (see a67 gc). The most recently deleted version of \
            the key comes back, with its size and modification time. --list shows the trash.

              a67 undelete photos/2026/holiday.jpg
              a67 undelete --list photos
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "BUCKET/KEY to bring back, or with --list: a BUCKET (or nothing, for all).")
    var object: String?

    @Flag(help: "List the trash instead.")
    var list = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            if list {
                let bucket = try object.map { try ObjectPath($0, keyRequired: false).bucket }
                let entries = try home.catalogOnly().trash(bucket: bucket)
                if json {
                    printJSON(entries.map { ["bucket": $0.bucket, "key": $0.key, "size": $0.size, "deletedAt": isoTime($0.deletedAt)] })
                } else if entries.isEmpty {
                    show("the trash is empty")
                } else {
                    printTable(["DELETED", "SIZE", "OBJECT"], entries.map { [isoTime($0.deletedAt), ByteSize.format($0.size), "\($0.bucket)/\($0.key)"] })
                }
                return
            }
            guard let object else { throw StoreError(.invalidArgument, "say which object: a67 undelete BUCKET/KEY (or --list)") }
            let path = try ObjectPath(object, keyRequired: true)
            let repository = try home.unlock()
            let entry = try await repository.undelete(bucket: path.bucket, key: path.key)
            try await commit(repository)
            if json {
                printJSON(["bucket": entry.bucket, "key": entry.key, "size": entry.size, "deletedAt": isoTime(entry.deletedAt)])
            } else {
                show("restored \(entry.bucket)/\(entry.key) (\(ByteSize.format(entry.size)), deleted \(isoTime(entry.deletedAt)))")
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replication at a glance: chunks by replica count, under-replicated bytes, providers.",
        discussion: "Needs no passphrase. Provider health is what the last command that used them saw (a67 provider ls --probe checks now).")

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let repository = try home.catalogOnly()
            let summary = try repository.catalog.chunks.replicationSummary()
            let stats = try repository.catalog.statistics()
            let providers = try repository.providers()
            let counts = summary.byReplicas.keys.sorted()
            if json {
                printJSON([
                    "objects": stats.objects, "logicalBytes": stats.logicalBytes,
                    "chunksByReplicas": Dictionary(uniqueKeysWithValues: counts.map { (String($0), ["chunks": summary.byReplicas[$0]!.chunks, "bytes": summary.byReplicas[$0]!.bytes]) }),
                    "underReplicatedChunks": summary.underReplicatedChunks, "underReplicatedBytes": summary.underReplicatedBytes,
                    "trashObjects": summary.trashObjects, "trashBytes": summary.trashBytes,
                    "unreferencedChunks": stats.unreferencedChunks, "unreferencedBytes": stats.unreferencedBytes,
                    "providers": providers.map { p in
                        ["name": p.record.name, "state": p.record.state.rawValue, "breaker": p.record.health?.breaker.rawValue ?? NSNull(),
                         "problem": p.record.health?.problem ?? NSNull(),
                         "usedBytes": p.record.usedBytes, "quota": p.record.quota.map { $0 as Any } ?? NSNull()] as [String: Any]
                    },
                ] as [String: Any])
                return
            }
            show("objects: \(stats.objects) (\(ByteSize.format(stats.logicalBytes)))")
            show("chunks in use by replica count:")
            if counts.isEmpty { show("  none") }
            for n in counts {
                let entry = summary.byReplicas[n]!
                show("  \(n) replica\(n == 1 ? "" : "s"): \(entry.chunks) chunk(s), \(ByteSize.format(entry.bytes))")
            }
            show("under-replicated: \(summary.underReplicatedChunks) chunk(s), \(ByteSize.format(summary.underReplicatedBytes))"
                + (summary.underReplicatedChunks > 0 ? " (run a67 repair)" : ""))
            show("trash: \(summary.trashObjects) object(s), \(ByteSize.format(summary.trashBytes)); unreferenced: "
                + "\(stats.unreferencedChunks) chunk(s), \(ByteSize.format(stats.unreferencedBytes)) (a67 gc reclaims)")
            show("providers:")
            printTable(nil, providers.map { p in
                ["  " + p.record.name, p.record.state.rawValue, p.record.health?.breaker.rawValue ?? "-",
                 ByteSize.format(p.record.usedBytes) + (p.record.quota.map { " of " + ByteSize.format($0) } ?? "")]
            })
            for p in providers {
                if let problem = p.record.health?.problem { print("  \(p.record.name) takes no chunks: \(problem)") }
            }
        }
    }
}

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild a lost repository from one provider and the passphrase.",
        discussion: """
            For a machine that is gone: on a new one, with an empty $A67_HOME, name any one provider \
            of the repository with the same options as a67 provider add, and give the passphrase \
            (A67_PASSPHRASE_FILE, A67_PASSPHRASE or the prompt):

              a67 recover --dir /mnt/disk1/a67
              a67 recover --s3 https://s3.example.com --bucket a67 --access-key-id AKID \\
                  --secret-key-file ~/.s3-secret

            The keyring and the newest catalog snapshot are read from it (and from the other providers \
            the catalog names, if one holds a newer snapshot): providers with their credentials, \
            buckets, objects. Then run a67 repair if a provider was lost with the machine.

            A $A67_HOME that still holds its catalog but lost its keyring gets the keyring back \
            (checked against the passphrase and the catalog), and keeps its catalog.
            """)

    @OptionGroup var home: HomeOptions
    @OptionGroup var location: ProviderLocation

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let (spec, secret) = try location.specification()
            let passphrase = try Passphrase.fromEnvironment()
            let (repository, report) = try await Repository.recover(home: home.path, passphrase: passphrase, from: spec, secret: secret,
                                                                    backends: backendFactory, catalogModules: catalogModules)
            repository.saveHealth()
            if let newer = report.newerSnapshotUnread {
                note("warning: \(newer): this catalog may miss the latest changes. Fix that provider and recover again into an empty folder to get them")
            }
            if report.keyringOnly {
                if json {
                    printJSON(["home": repository.home, "source": report.source, "keyringOnly": true, "providers": report.providers,
                               "buckets": report.buckets, "objects": report.objects])
                } else {
                    show("restored the keyring of \(repository.home) from \(report.source); the catalog there was kept")
                    show("\(report.providers) provider(s), \(report.buckets) bucket(s), \(report.objects) object(s)")
                }
                return
            }
            if json {
                printJSON(["home": repository.home, "source": report.source, "snapshot": report.sequence,
                           "snapshotTime": isoTime(report.snapshotTime), "providers": report.providers, "buckets": report.buckets,
                           "objects": report.objects, "unreachable": report.unreachable,
                           "newerSnapshotUnread": report.newerSnapshotUnread ?? NSNull(),
                           "underReplicatedChunks": report.underReplicatedChunks])
                return
            }
            show("recovered \(repository.home) from \(report.source): catalog snapshot \(report.sequence) of \(isoTime(report.snapshotTime))")
            show("\(report.providers) provider(s), \(report.buckets) bucket(s), \(report.objects) object(s)")
            for line in report.unreachable { show("  not reachable now: \(line)") }
            if !report.unreachable.isEmpty {
                show("objects are read from the other replicas; once you know a provider is gone for good: a67 provider rm NAME, then a67 repair")
            }
        }
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change repository settings.",
        discussion: """
            Settings:
              breaker.failures        consecutive failures that open a provider's circuit breaker (default 5)
              breaker.open_seconds    seconds an open breaker waits before probing again (default 30)
              trash.retention_days    days deleted objects stay in the trash (default 30)

              a67 config                       shows them
              a67 config set breaker.failures 3
            """,
        subcommands: [Show.self, Set.self], defaultSubcommand: Show.self)

    static let keys: [String: (validate: @Sendable (String) -> Bool, help: String)] = [
        BreakerPolicy.failuresSetting: ({ Int($0).map { (1...1000).contains($0) } ?? false }, "a whole number from 1 to 1000"),
        BreakerPolicy.openSecondsSetting: ({ Double($0).map { $0 >= 0 && $0 <= 86400 } ?? false }, "seconds from 0 to 86400"),
        Repository.trashDaysSetting: ({ Double($0).map { $0 >= 0 && $0 <= 3650 } ?? false }, "days from 0 to 3650"),
    ]

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the settings.")
        @OptionGroup var home: HomeOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let catalog = try home.catalogOnly().catalog
                let defaults = [BreakerPolicy.failuresSetting: "5", BreakerPolicy.openSecondsSetting: "30", Repository.trashDaysSetting: "30"]
                var values: [String: String] = [:]
                for key in Config.keys.keys { values[key] = try catalog.setting(key) ?? defaults[key]! }
                if json { printJSON(values) } else { printTable(nil, values.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }) }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a setting.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The setting (see a67 config --help).")
        var key: String
        @Argument(help: "Its new value.")
        var value: String

        func run() async throws {
            try await guarded {
                guard let rule = Config.keys[key] else {
                    throw StoreError(.invalidArgument, "no setting named \(key): the settings are \(Config.keys.keys.sorted().joined(separator: ", "))")
                }
                guard rule.validate(value) else { throw StoreError(.invalidArgument, "\(key) must be \(rule.help), not \(value)") }
                let repository = try home.unlock()
                try await offPool { try repository.catalog.setSetting(key, value) }
                try await commit(repository)
                show("\(key) = \(value)")
            }
        }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Snapshot the catalog onto every provider now (for a timer).",
        discussion: """
            Every command that changes the repository already ends with a snapshot; run this from a \
            timer (cron, a systemd timer) so that a provider that missed one while it was down catches \
            up. Only the parts of the catalog that changed are stored; when nothing changed and every \
            provider is up to date, nothing is written.

              */30 * * * *  A67_PASSPHRASE_FILE=~/.a67-passphrase a67 snapshot --json > /dev/null
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let repository = try home.unlock()
            let report = try await repository.snapshotCatalog()
            if json {
                printJSON(["sequence": report.sequence, "size": report.size, "chunks": report.chunks,
                           "chunksStored": report.chunksStored, "providers": report.providers, "behind": report.behind,
                           "unchanged": report.unchanged])
            } else {
                show("catalog snapshot \(report.sequence): \(ByteSize.format(report.size)) in \(report.chunks) chunk(s), "
                    + "\(report.chunksStored) stored now" + (report.unchanged ? " (unchanged)" : "")
                    + "; on \(report.providers.joined(separator: ", "))")
            }
            if !report.behind.isEmpty {
                throw StoreError(.providerFailure, "the snapshot could not reach \(report.behind.joined(separator: ", ")): they keep an older one")
            }
        }
    }
}
