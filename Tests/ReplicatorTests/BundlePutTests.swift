import BackendTesting
import ChunkStore
import Compute
import Foundation
import Replicator
import Testing

/// App bundles stored through the repository along their cut plan (`BundleStream` is a
/// `PieceSource`): a new version of an app stores only the chunks around what changed.
@Suite struct BundlePutTests {
    /// Writes `bytes` at `relative` under `folder`, making its folders.
    static func write(_ folder: String, _ relative: String, _ bytes: [UInt8]) throws {
        let path = folder + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A deterministic app folder of about 20 MiB: a 6.5 MiB library, four 2 MiB data files, a
    /// 2.5 MiB one and 150 small pages. The pages come first in the archive, so that a page that
    /// grows would shift every later chunk of an archive cut every 5 MiB.
    static func makeApp(_ folder: String) throws {
        try write(folder, "a67app.toml", Array("name = \"web\"\ncommand = [\"./engine\"]\n".utf8))
        try write(folder, "lib/engine.bin", sampleBytes(6 * 1024 * 1024 + 500_000, seed: 1))
        for k in 0..<4 { try write(folder, "data/blob-\(k).bin", sampleBytes(2 * 1024 * 1024, seed: 10 + UInt64(k))) }
        try write(folder, "data/medium.bin", sampleBytes(2_500_000, seed: 20))
        for k in 0..<150 { try write(folder, "assets/page-\(k).html", sampleBytes(2_000 + (k * 7_919) % 38_000, seed: 100 + UInt64(k))) }
    }

    /// The SHA-256 of `folder`'s bundle (which is the same for two folders with the same members and contents).
    static func bundleDigest(_ folder: String) throws -> [UInt8] {
        let stream = try BundleStream(folder: folder)
        while try stream.nextPiece() != nil {}
        return try #require(stream.sha256)
    }

    @Test func aChangedAppStoresOnlyTheChunksAroundTheChange() async throws {
        let dir = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        let repository = try Repository.initialize(home: dir.path + "/home", backends: DirectoryBackendFactory(),
                                                   passphrase: Passphrase("p"), settings: settings)
        _ = try await repository.addProvider(name: "a", spec: .directory(path: dir.path + "/a"), quota: nil)
        _ = try await repository.createBucket("apps", replicas: 1)
        let app = dir.path + "/app"
        try Self.makeApp(app)

        let first = try await repository.put(try BundleStream(folder: app), bucket: "apps", key: "web/1")
        #expect(first.size > 19 * 1024 * 1024)
        #expect(first.chunks > 4, "the archive is cut along its plan, more often than every 5 MiB")

        // (what changes, the change) each applied to the previous version.
        let changes: [(String, () throws -> Void)] = [
            ("one small file's content", { try Self.write(app, "assets/page-37.html", sampleBytes(2_000 + (37 * 7_919) % 38_000, seed: 999)) }),
            ("one small file grown", { try Self.write(app, "assets/page-80.html", sampleBytes(2_000 + (80 * 7_919) % 38_000 + 5_000, seed: 180)) }),
            ("one file added", { try Self.write(app, "assets/new-page.html", sampleBytes(3_000, seed: 1_000)) }),
        ]
        for (version, (what, change)) in changes.enumerated() {
            try change()
            let key = "web/\(version + 2)"
            let stream = try BundleStream(folder: app)
            let result = try await repository.put(stream, bucket: "apps", key: key)
            #expect(result.newChunks <= 2, "\(what): \(result.newChunks) new data chunks of \(result.chunks)")
            #expect(result.newChunks >= 1, "\(what): the changed bytes are stored")
            let sha256 = try #require(stream.sha256, "the put read the whole bundle")

            // Read back: the archive's bytes, then unpacked into a folder equal to the app's.
            let object = try repository.object(bucket: "apps", key: key)
            let bytes = BytesSink()
            try await repository.get(object, bucket: "apps", to: bytes)
            #expect(Crypto.sha256(bytes.bytes) == sha256, "\(what)")
            let out = dir.path + "/unpacked-\(version + 2)"
            let unpacker = try BundleUnpacker(into: out, expectedSHA256: sha256, expectedSize: stream.size)
            try await repository.get(object, bucket: "apps", to: unpacker)
            #expect(try unpacker.finish() == BundleFolder.scan(app), "\(what)")
            #expect(try Self.bundleDigest(out) == sha256, "\(what): the unpacked folder holds the same files")
        }
    }
}
