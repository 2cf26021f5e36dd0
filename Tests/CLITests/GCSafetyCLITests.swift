import BackendTesting
import ChunkStore
import Foundation
import Testing

/// gc marks from the live objects, not from the stored reference counts: a damaged count stops it
/// (exit 4, nothing deleted), scrub names the objects that lost a chunk, and --recount rebuilds the
/// counts. And the bucket owner's quota binds a67 put as it binds S3 and the mount.
@Suite struct GCSafetyCLITests {
    func damage(_ cli: CLI, _ sql: String) async throws { try await alterCatalog(cli.home + "/catalog.db", sql) }

    func chunks(_ cli: CLI, _ key: String) throws -> [ChunkID] {
        let catalog = try Catalog(path: cli.home + "/catalog.db")
        return try catalog.namespace.object(bucket: try catalog.namespace.bucket("test-bucket"), segments: [key]).manifest.entries.map(\.id)
    }

    @Test func damagedReferenceCountStopsGC() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 2, replicas: 2)
        let data = randomBytes(12 << 20)
        try await cli.ok(["put", cli.file("a.bin", data), "test-bucket/a.bin"])
        let victim = try chunks(cli, "a.bin")[1]
        // The chunk's reference count drops to 0, as one flipped bit can make it.
        try await damage(cli, "UPDATE chunk SET refcount = 0 WHERE id = x'\(victim.hex)';")
        try await cli.fails(["gc", "--grace", "0"], status: 4, message: "gc deleted nothing")
        #expect(try cli.everyRecordedChunkExists())
        #expect(try await cli.ok(["get", "test-bucket/a.bin", "-"]).stdoutBytes == data)
        // Scrub finds nothing lost; --recount rebuilds the count, and gc then keeps the object whole.
        try await cli.ok(["scrub"])
        let gc = try await cli.json(["gc", "--grace", "0", "--recount"]) as! [String: Any]
        #expect(gc["recounted"] as? Int == 1, "\(gc)")
        #expect(try await cli.ok(["get", "test-bucket/a.bin", "-"]).stdoutBytes == data)
        #expect(try cli.everyRecordedChunkExists())
    }

    @Test func scrubNamesObjectsWhoseChunksAreGone() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 2, replicas: 1)
        try await cli.ok(["put", cli.file("whole.bin", randomBytes(100_000)), "test-bucket/whole.bin"])
        try await cli.ok(["put", cli.file("broken.bin", randomBytes(6 << 20)), "test-bucket/dir/broken.bin"])
        let catalog = try Catalog(path: cli.home + "/catalog.db")
        let lost = try catalog.namespace.object(bucket: try catalog.namespace.bucket("test-bucket"), segments: ["dir", "broken.bin"]).manifest.entries[0].id
        // Its only copy is gone from the provider and from the catalog (what an unsafe gc did).
        for i in 1...2 { for file in cli.chunkFiles(i) where file.hasSuffix(lost.hex) { try FileManager.default.removeItem(atPath: file) } }
        try await damage(cli, "DELETE FROM chunk_location WHERE chunk_id = x'\(lost.hex)';")
        let result = try await cli.fails(["scrub"], status: 4)
        #expect(result.stdout.contains("object lost: test-bucket/dir/broken.bin"), "\(result.stdout)")
        #expect(!result.stdout.contains("whole.bin"), "\(result.stdout)")
        let report = try JSONSerialization.jsonObject(with: Data(try await cli.run(["scrub", "--json"]).stdoutBytes)) as! [String: Any]
        #expect((report["damagedObjects"] as? [String])?.count == 1, "\(report)")
    }

    @Test func anUnreadableManifestStopsGCAndScrubNamesIt() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 2, replicas: 1)
        try await cli.ok(["put", cli.file("a.bin", randomBytes(6 << 20)), "test-bucket/a.bin"])
        let catalog = try Catalog(path: cli.home + "/catalog.db")
        let manifest = try catalog.namespace.object(bucket: try catalog.namespace.bucket("test-bucket"), segments: ["a.bin"]).manifestID
        try await damage(cli, "UPDATE manifest SET body = x'00' WHERE id = x'\(manifest.hex)';")
        let before = cli.allChunkFiles(1) + cli.allChunkFiles(2)
        try await cli.fails(["gc", "--grace", "0"], status: 4, message: "cannot be read")
        try await cli.fails(["gc", "--grace", "0", "--recount"], status: 4, message: "cannot be read")
        #expect(cli.allChunkFiles(1) + cli.allChunkFiles(2) == before)
        let result = try await cli.fails(["scrub"], status: 4)
        #expect(result.stdout.contains("object lost: test-bucket/a.bin"), "\(result.stdout)")
    }

    @Test func quotaBindsThePutCommand() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        for i in 1...2 { try await cli.ok(["provider", "add", "p\(i)", "--dir", cli.provider(i)]) }
        try await cli.ok(["user", "add", "alice", "--quota", "10M"])
        try await cli.ok(["bucket", "create", "alices", "--owner", "alice"])
        try await cli.ok(["put", cli.file("fits.bin", randomBytes(6 << 20)), "alices/fits.bin"])
        // A file over what is left is refused before anything is stored; so is a stream that grows past it.
        try await cli.fails(["put", cli.file("big.bin", randomBytes(5 << 20)), "alices/big.bin"], status: 5, message: "quota")
        try await cli.fails(["put", "-", "alices/stream.bin"], status: 5, message: "quota", input: randomBytes(5 << 20))
        let listed = try await cli.ok(["ls", "alices"]).stdout
        #expect(listed.contains("fits.bin") && !listed.contains("big.bin") && !listed.contains("stream.bin"), "\(listed)")
        try await cli.ok(["put", cli.file("small.bin", randomBytes(1 << 20)), "alices/small.bin"])
    }
}
