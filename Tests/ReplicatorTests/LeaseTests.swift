import BackendTesting
import ChunkStore
import Foundation
import Testing

/// Leases (Catalog+Leases): gc keeps what a live process leases, a leased manifest holds the chunks it
/// lists, a lease on content already collected is refused, and a dead holder's leases lapse.
@Suite struct LeaseTests {
    @Test func aLeasedManifestKeepsItsChunksFromGC() async throws {
        let h = try Harness()
        _ = try await h.put(sampleBytes(11 << 20, seed: 1), key: "f")
        let old = try h.catalog.namespace.object(bucket: h.bucket, segments: ["f"])
        try h.catalog.chunks.leaseManifest(old.manifestID)
        // Replaced elsewhere: the old content is referenced by nothing now, only leased.
        _ = try await h.put(sampleBytes(3 << 20, seed: 2), key: "f")
        #expect(try h.catalog.chunks.liveLeases().isSuperset(of: old.manifest.entries.map(\.id)))
        for entry in old.manifest.entries {
            #expect(try !h.catalog.chunks.forgetUnreferenced(entry.id), "gc would take a chunk a leased manifest lists")
        }
        try h.catalog.chunks.releaseLeases([old.manifestID])
        for entry in old.manifest.entries { #expect(try h.catalog.chunks.forgetUnreferenced(entry.id)) }
        // Its content gone, the manifest can no longer be leased: a change on it is refused, not lost later.
        let error = #expect(throws: StoreError.self) { try h.catalog.chunks.leaseManifest(old.manifestID) }
        #expect(error?.code == .integrity)
    }

    @Test func leasesOfAHolderThatIsGoneLapse() async throws {
        let h = try Harness()
        _ = try await h.put(sampleBytes(6 << 20, seed: 3), key: "g")
        let entry = try h.catalog.namespace.object(bucket: h.bucket, segments: ["g"]).manifest.entries[0]
        // No process started at that tick: a holder of that name is not running.
        try h.catalog.chunks.lease([entry.id], holder: ProcessIdentity(pid: 1, startTicks: .max))
        try h.catalog.chunks.lease([entry.id])
        #expect(try h.catalog.chunks.liveLeases().contains(entry.id))
        try h.catalog.chunks.releaseLeases([entry.id])
        #expect(try !h.catalog.chunks.liveLeases().contains(entry.id))
        #expect(ProcessIdentity.current.isAlive && !ProcessIdentity(pid: 1, startTicks: .max).isAlive)
    }

    /// A block a mount stored and has not recorded yet (a file's short last block) is known by its
    /// lease only: provider rm refuses to remove the one provider holding it, and lets it go once the
    /// lease is released, or another provider holds a copy, or its holder is gone.
    @Test func providerRemovalKeepsAProviderHoldingTheOnlyCopyOfALeasedBlock() async throws {
        let h = try Harness(providers: 3, replicas: 1)
        let block = ChunkID(bytes: Crypto.randomBytes(32))
        let (p1, p2) = (h.records[1], h.records[2])
        try h.catalog.chunks.lease([block], copies: [block: [p1.id]])
        let error = #expect(throws: StoreError.self) { try h.catalog.providers.remove(p1.id, name: p1.name) }
        #expect(error?.code == .conflict && error?.message.contains("a running a67 mount stored") == true, "\(String(describing: error))")
        // A second copy elsewhere is enough.
        try h.catalog.chunks.lease([block], copies: [block: [p2.id]])
        try h.catalog.providers.remove(p1.id, name: p1.name)
        // A dead holder's copies hold nothing.
        let other = ChunkID(bytes: Crypto.randomBytes(32))
        try h.catalog.chunks.lease([other], copies: [other: [p2.id]], holder: ProcessIdentity(pid: 1, startTicks: .max))
        try h.catalog.chunks.releaseLeases([block])
        try h.catalog.providers.remove(p2.id, name: p2.name)
    }
}
