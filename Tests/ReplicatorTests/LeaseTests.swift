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
}
