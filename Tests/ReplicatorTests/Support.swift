import BackendTesting
import ChunkStore
import Foundation
import Replicator
import Synchronization
import Testing

/// A store over in-memory (optionally fault-injecting) providers and a real catalog in a temp folder.
struct Harness {
    let dir: TemporaryDirectory
    let catalog: Catalog
    let providers: [FaultInjectingBackend]
    let memories: [MemoryBackend]
    let records: [ProviderRecord]
    let sealer: ChunkSealer
    let bucket: BucketRecord

    /// `master` fixes the keys, and so every chunk ID and placement, for tests that need them repeatable.
    init(providers count: Int = 3, replicas: Int = 2, minReplicas: Int = 1, quotas: [Int64?]? = nil, groups: [String]? = nil,
         master: SecretKey = .random()) throws {
        dir = try TemporaryDirectory()
        let catalog = try Catalog(path: dir.path + "/catalog.db", create: true)
        self.catalog = catalog
        memories = (0..<count).map { MemoryBackend(name: "p\($0)") }
        providers = memories.map { FaultInjectingBackend($0) }
        records = try (0..<count).map { i in
            try catalog.providers.add(name: "p\(i)", kind: "memory", config: "{}", quota: quotas?[i] ?? nil, group: groups?[i])
        }
        sealer = ChunkSealer(keys: RepositoryKeys(master: master))
        bucket = try catalog.namespace.createBucket("test-bucket", replicas: replicas, minReplicas: minReplicas)
    }

    /// A pool over the providers, with the usage the catalog records now, and breakers that follow
    /// `breaker`.
    func pool(breaker: BreakerPolicy = BreakerPolicy()) throws -> ReplicatedPool {
        let used = Dictionary(uniqueKeysWithValues: try catalog.providers.all().map { ($0.id, $0.usedBytes) })
        let catalog = self.catalog
        return ReplicatedPool(members: zip(records, providers).map { record, backend in
            .init(id: record.id, name: record.name, backend: backend, quota: record.quota, group: record.group,
                  health: ProviderHealth(policy: breaker))
        }, used: used, onDamage: { chunk, provider, _ in try? catalog.chunks.forgetLocation(chunk, provider: provider) })
    }

    func put(_ data: [UInt8], key: String, window: Int = 6) async throws -> ObjectWriter.Result {
        try await ObjectWriter(sealer: sealer, pool: try pool(), catalog: catalog, window: window)
            .write(from: BytesSource(data), bucket: bucket, key: key, owner: (0, 0, 0o644))
    }

    func get(_ key: String, range: ClosedRange<Int64>? = nil) async throws -> [UInt8] {
        let object = try catalog.namespace.object(bucket: bucket, segments: try Names.keySegments(key))
        let sink = BytesSink()
        try await ObjectReader(sealer: sealer, pool: try pool(), catalog: catalog).read(object, bucket: bucket.name,
                                                                                      range: range, to: sink)
        return sink.bytes
    }

    func keys() throws -> [String] {
        var keys: [String] = []
        try catalog.namespace.list(bucket: bucket, prefix: "", recursive: true) { keys.append($0.key) }
        return keys
    }

    /// Every chunk location the catalog records is present on its provider.
    func everyRecordedLocationExists() async throws -> Bool {
        for (chunk, provider) in try catalog.chunks.allLocations() {
            let index = records.firstIndex { $0.id == provider }!
            if (try? await memories[index].head(chunk.objectName)) == nil { return false }
        }
        return true
    }
}
