import BackendTesting
import ChunkStore
import Foundation
import Testing

/// The mark half of gc (`ChunkIndex.auditReferences`), which works through a scratch database beside
/// the catalog rather than in memory: what it expects of every count, from objects, shared manifests,
/// the trash and upload parts, and what it reports when the catalog disagrees.
@Suite struct ReferenceAuditTests {
    @Test func everyCountIsCheckedAgainstWhatTheLiveObjectsMakeIt() async throws {
        let harness = try Harness()
        let catalog = harness.catalog
        let shared = sampleBytes(6 << 20, seed: 7)  // two chunks
        _ = try await harness.put(shared, key: "a")
        _ = try await harness.put(shared, key: "folder/b")  // the same manifest: two entry references on it
        _ = try await harness.put(sampleBytes(1000, seed: 8), key: "c")
        let a = try catalog.namespace.object(bucket: harness.bucket, segments: ["a"])
        let c = try catalog.namespace.object(bucket: harness.bucket, segments: ["c"])
        try catalog.namespace.removeObject(bucket: harness.bucket, segments: ["c"])  // into the trash
        // An unfinished upload whose one part lists a's chunks.
        try catalog.uploads.create(id: "u1", bucket: harness.bucket, key: "big", attributes: [:])
        try await catalog.uploads.putPart(upload: "u1", number: 1, entries: a.manifest.entries, etag: "e", chunks: [])

        // What an audit killed midway left (pid 2^22 + 1 is above any pid Linux gives) is removed by the next.
        let abandoned = harness.dir.path + "/.audit-4194305-0011223344556677.db"
        overwrite(abandoned, [1, 2, 3])
        let clean = try catalog.chunks.auditReferences()
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(clean.mismatched.isEmpty && clean.damaged.isEmpty && clean.unreadable.isEmpty, "\(clean)")

        let listed = try #require(a.manifest.entries.first?.id)
        let lost = try #require(c.manifest.entries.first?.id)
        try await alterCatalog(catalog.path, """
            UPDATE chunk SET refcount = 0 WHERE id = x'\(listed.hex)';
            UPDATE chunk SET entry_refs = 5 WHERE id = x'\(a.manifestID.hex)';
            DELETE FROM chunk_location WHERE chunk_id = x'\(lost.hex)';
            """)
        let audit = try catalog.chunks.auditReferences()
        // a's first chunk: one reference from the shared manifest, one from the upload part.
        let mismatched = Dictionary(uniqueKeysWithValues: audit.mismatched.map { ($0.chunk, [$0.stored.entryRefs, $0.stored.refcount,
                                                                                        $0.expected.entryRefs, $0.expected.refcount]) })
        #expect(mismatched == [listed: [0, 0, 0, 2], a.manifestID: [5, 0, 2, 0]], "\(audit.mismatched)")
        #expect(audit.damaged.map(\.name) == ["trash: test-bucket/c"] && audit.damaged.first?.missingChunks == [lost], "\(audit.damaged)")

        // A scrub's finding names the objects that list the chunk, the live ones by their key.
        let named = try catalog.chunks.auditReferences(lost: [listed])
        #expect(Set(named.damaged.map(\.name)) == ["test-bucket/a", "upload u1 part 1", "trash: test-bucket/c"], "\(named.damaged)")

        // A recount makes them agree again; the scratch files are gone.
        #expect(try catalog.chunks.recountReferences() == 2)
        #expect(try catalog.chunks.auditReferences().mismatched.isEmpty)
        let left = try FileManager.default.contentsOfDirectory(atPath: harness.dir.path).filter { $0.hasPrefix(".audit") }
        #expect(left.isEmpty, "\(left)")
    }
}
