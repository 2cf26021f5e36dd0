import BackendTesting
import ChunkStore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `a67 serve` runs scrub, repair and gc in the background at the intervals its options give.
@Suite struct ServeMaintenanceCLITests {
    /// A replica deleted behind the store's back is found by the server's scrub and stored again by
    /// its repair; a stray file on a provider is deleted by its gc. Each pass is logged and counted in
    /// the metrics, and SIGTERM stops the server cleanly with passes scheduled.
    @Test func serveScrubsRepairsAndCollectsInTheBackground() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 2, replicas: 2)
        try await cli.ok(["put", cli.file("data", sampleBytes(3 << 20)), "test-bucket/data"])
        let victim = try #require(cli.chunkFiles(1).first)
        let original = try #require(cli.read(victim))
        try FileManager.default.removeItem(atPath: victim)
        // A stray: a chunk-named file no chunk record places there (as an interrupted put leaves).
        let strayID = Hex.encode(randomBytes(32))
        let stray = cli.provider(2) + "/data/\(strayID.prefix(2))/\(strayID)"
        try FileManager.default.createDirectory(atPath: (stray as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        overwrite(stray, original)

        let (fd, port) = try #require(CLI.listeningLoopbackSocket())
        close(fd)
        let serve = try cli.start(["serve", "--listen", "127.0.0.1:\(port)", "--scrub-every", "1s", "--repair-every", "1s",
                                   "--gc-every", "1s", "--gc-grace", "0"])
        let healed = await cli.waitUntil {
            cli.read(victim) == original && !FileManager.default.fileExists(atPath: stray)
        }
        #expect(healed, "the deleted replica is back: \(cli.read(victim) == original); the stray is gone: \(!FileManager.default.fileExists(atPath: stray))")

        let metrics = try await Self.fetch("http://127.0.0.1:\(port)/_a67/metrics")
        for job in ["scrub", "repair", "gc"] {
            #expect(metrics.contains("a67_maintenance_passes_total{job=\"\(job)\",result=\"ok\"}"), "no ok pass of \(job) in:\n\(metrics)")
            #expect(metrics.contains("a67_maintenance_last_pass_timestamp_seconds{job=\"\(job)\"}"))
        }
        serve.child.signal(SIGTERM)
        let result = await serve.finish()
        #expect(result.status == 0, "a67 serve exited \(result.status): \(result.stderr)")
        #expect(result.stderr.contains("scrub: missing: p1"), "\(result.stderr)")
        #expect(result.stderr.contains("repair pass: repaired 1 chunk(s): 1 replica(s)"), "\(result.stderr)")
        #expect(result.stderr.contains("stray file(s) deleted") && !result.stderr.contains("pass failed"), "\(result.stderr)")
        // What serve changed reached the catalog and its snapshot: the chunk counts two copies again.
        let status = try #require(try await cli.json(["status", "--json"]) as? [String: Any])
        #expect(status["underReplicatedChunks"] as? Int == 0, "\(status)")
    }

    @Test func maintenanceOptionsAreChecked() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        try await cli.fails(["serve", "--repair-every", "soon"], status: 64, message: "--repair-every soon is not a duration")
        try await cli.fails(["serve", "--gc-every", "0"], status: 64, message: "--gc-every 0 is too often: use 1s or more, or off")
        try await cli.fails(["serve", "--scrub-rate", "0"], status: 64, message: "--scrub-rate must be more than 0")
    }

    static func fetch(_ url: String) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        return String(decoding: data, as: UTF8.self)
    }
}
