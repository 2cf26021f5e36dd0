import Foundation
import Testing
@testable import ChunkStore

/// Existing repositories open unchanged. Tests/Fixtures/catalog-v7.db is a catalog that a67 wrote
/// before migration v8 (applied: v1 to v7): `a67 init`, providers disk1 and disk2 (disk2 drained),
/// bucket photos with 2026/hello.txt (14 bytes) and gone.txt removed into the trash, user alice.
/// Kept as it is, forever, as restic keeps a repository per format version.
@Suite struct CatalogMigrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/catalog-v7.db").path

    @Test func aCatalogMadeByTheV7SchemaMigratesAndReads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("a67-v7-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/catalog.db"
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: path)

        let catalog = try Catalog(path: path)
        #expect(try catalog.setting("repository_id") == "1e21965cdcd2ca844566a79749f7a12f")
        let providers = try catalog.providers.all()
        #expect(providers.map(\.name) == ["disk1", "disk2"])
        #expect(providers.map(\.state) == [.active, .draining])
        #expect(providers.allSatisfy { $0.health?.breaker == .closed })
        #expect(providers.map(\.chunkCount) == [2, 0])
        // provider.created_at was seconds as a real (disk1: 1796301996.358...): nanoseconds now.
        #expect((1_796_301_996_358_000_000..<1_796_301_996_359_000_000).contains(providers[0].createdAt))
        #expect((1_796_301_999_022_000_000..<1_796_301_999_023_000_000).contains(providers[1].createdAt))

        let bucket = try catalog.namespace.bucket("photos")
        let object = try catalog.namespace.object(bucket: bucket, segments: ["2026", "hello.txt"])
        #expect(object.size == 14 && object.manifest.size == 14)
        #expect(try catalog.namespace.trash(bucket: bucket).map(\.key) == ["gone.txt"])
        #expect(try catalog.accounts.user(named: "alice").quota == nil)
        let audit = try catalog.chunks.auditReferences()
        #expect(audit.mismatched.isEmpty && audit.damaged.isEmpty && audit.unreadable.isEmpty)

        // The migrated table takes new rows in the one time unit, and states as their enums.
        let added = try catalog.providers.add(name: "disk3", kind: "dir", config: "{}", quota: nil)
        #expect(abs(added.createdAt - Catalog.now()) < 60 * 1_000_000_000)
        try catalog.providers.setState(added.id, .draining)
        try catalog.providers.setHealth(added.id, ProviderHealthRecord(breaker: .halfOpen, latencySeconds: nil, errorRate: 0,
                                                                        requests: 0, checkedAt: Catalog.now()))
        let disk3 = try #require(try catalog.providers.all().first { $0.name == "disk3" })
        #expect(disk3.state == .draining && disk3.health?.breaker == .halfOpen && disk3.createdAt == added.createdAt)
        try catalog.close()

        // Reopened, it has nothing left to migrate and reads the same.
        let again = try Catalog(path: path)
        #expect(try again.providers.all().map(\.name) == ["disk1", "disk2", "disk3"])
        try again.close()
    }
}
