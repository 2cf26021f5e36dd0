import ArgumentParser
import ChunkStore
import Replicator

struct Stat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the repository holds: objects, bytes, dedupe and compression.",
        discussion: """
            logical: the sum of object sizes. unique: each distinct chunk once, before compression. \
            stored: each distinct chunk once, sealed. on providers: stored, times each chunk's replicas. \
            dedupe ratio = logical / unique; compression ratio = unique / stored (referenced chunks).
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let repository = try home.catalogOnly()
            let report = try StatReport(repository)
            if json { printJSON(report.json) } else { report.printHuman() }
        }
    }
}

/// `a67 stat`'s figures, shared with `a67 up`.
struct StatReport {
    let stats: CatalogStatistics
    let providers: Int
    let buckets: Int

    init(_ repository: Repository) throws {
        stats = try repository.catalog.statistics()
        providers = try repository.catalog.providers.all().count
        buckets = try repository.catalog.namespace.buckets().count
    }

    var dedupeRatio: Double { stats.uniquePlainBytes > 0 ? Double(stats.logicalBytes) / Double(stats.uniquePlainBytes) : 1 }
    var compressionRatio: Double { stats.uniqueSealedBytes > 0 ? Double(stats.uniquePlainBytes) / Double(stats.uniqueSealedBytes) : 1 }

    var json: [String: Any] {
        ["objects": stats.objects, "logicalBytes": stats.logicalBytes, "uniqueChunks": stats.uniqueChunks,
         "uniqueBytes": stats.uniquePlainBytes, "storedBytes": stats.uniqueSealedBytes, "providerBytes": stats.replicaBytes,
         "dedupeRatio": dedupeRatio, "compressionRatio": compressionRatio, "unreferencedChunks": stats.unreferencedChunks,
         "unreferencedBytes": stats.unreferencedBytes, "providers": providers, "buckets": buckets]
    }

    func printHuman() {
        printTable(nil, [
            ["buckets", String(buckets)],
            ["providers", String(providers)],
            ["objects", String(stats.objects)],
            ["logical", ByteSize.format(stats.logicalBytes)],
            ["unique", "\(ByteSize.format(stats.uniquePlainBytes)) in \(stats.uniqueChunks) chunk(s)"],
            ["stored", ByteSize.format(stats.uniqueSealedBytes)],
            ["on providers", "\(ByteSize.format(stats.replicaBytes)) (all replicas, with manifests and unreferenced chunks)"],
            ["dedupe ratio", String(format: "%.2fx", dedupeRatio)],
            ["compression ratio", String(format: "%.2fx", compressionRatio)],
            ["unreferenced", "\(stats.unreferencedChunks) chunk(s), \(ByteSize.format(stats.unreferencedBytes))"],
        ])
    }
}

import Foundation
