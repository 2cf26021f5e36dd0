import BackendTesting
import ChunkStore
import Foundation
import ServiceLifecycleTestKit
import Testing
@testable import Replicator

/// Maintenance as jobs: paged walks of the catalog, and a job run as a background service.
struct MaintenanceServiceTests {
    let folder: TemporaryDirectory
    let repository: Repository

    init() async throws {
        folder = try TemporaryDirectory()
        var settings = Repository.Settings()
        settings.scryptLogN = 10
        repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(), passphrase: Passphrase("p"), settings: settings)
        for name in ["a", "b"] {
            _ = try await repository.addProvider(name: name, spec: .directory(path: folder.path + "/" + name), quota: nil)
        }
        _ = try await repository.createBucket("test")
        for index in 0..<5 {
            _ = try await repository.put(BytesSource(Array("object \(index)".utf8)), bucket: "test", key: "k\(index)")
        }
    }

    @Test func pagesVisitEveryChunkOnceInIDOrder() async throws {
        let catalog = repository.catalog
        var visited: [Catalog.ChunkPlacement] = []
        var pages = 0
        try await catalog.chunks.forEachPage(.all, pageSize: 2) { page in
            #expect(page.count <= 2)
            pages += 1
            visited += page
        }
        let all = try catalog.chunks.all()
        #expect(visited == all)
        #expect(all.count >= 5 && pages == (all.count + 1) / 2)
        var onA: [Catalog.ChunkPlacement] = []
        let a = try catalog.providers.all().first { $0.name == "a" }!.id
        try await catalog.chunks.forEachPage(.on(provider: a), pageSize: 1) { onA += $0 }
        #expect(onA == (try catalog.chunks.placements(on: a)))
        var inUse: [Catalog.ChunkPlacement] = []
        try await catalog.chunks.forEachPage(.inUse, pageSize: 4) { inUse += $0 }
        #expect(inUse == (try catalog.chunks.inUse()))
    }

    /// gc lists the providers before it waits for the exclusive lock: a stray object stored while it
    /// waits (behind a store in flight) was not in its listing, so it is not even noted.
    @Test func gcListsBeforeTakingTheExclusiveLock() async throws {
        let provider = DirectoryBackend(root: folder.path + "/a")
        let before = ChunkID(bytes: Crypto.randomBytes(32)).objectName
        let during = ChunkID(bytes: Crypto.randomBytes(32)).objectName
        try await provider.put(before, data: [1, 2, 3])
        let lock = RepositoryLock.at(home: repository.home)
        let store = await RepositoryLockTests.holdShared(lock)
        let repository = self.repository
        let gc = Task { try await repository.collectGarbage(grace: 3600) }
        // Listed, and now waiting for the lock behind the store.
        await RepositoryLockTests.until { lock.waitingCount == 1 }
        try await provider.put(during, data: [4, 5, 6])
        store.leave.yield()
        try await store.task.value
        let report = try await gc.value
        #expect(report.orphansWaiting == 1 && report.skippedProviders.isEmpty && report.failed.isEmpty, "\(report)")
        // The next pass lists it too.
        #expect(try await repository.collectGarbage(grace: 3600).orphansWaiting == 2)
    }

    /// A provider removed while gc lists (holding no lock), and another added in its place that takes
    /// its ID: the old one's listing is not swept as the new one's (its chunks would all be strays there).
    @Test func gcDoesNotSweepAListingOfAProviderReplacedWhileItListed() async throws {
        let catalog = repository.catalog
        let b = try #require(try catalog.providers.all().first { $0.name == "b" })
        let lock = RepositoryLock.at(home: repository.home)
        let store = await RepositoryLockTests.holdShared(lock)
        let repository = self.repository
        let gc = Task { try await repository.collectGarbage(grace: 0) }
        await RepositoryLockTests.until { lock.waitingCount == 1 }
        try catalog.providers.remove(b.id, name: "b")
        let (c, _) = try await repository.addProvider(name: "c", spec: .directory(path: folder.path + "/c"), quota: nil)
        try #require(c.id == b.id, "the scenario needs the new provider to take the removed one's ID")
        store.leave.yield()
        try await store.task.value
        let report = try await gc.value
        #expect(report.orphansDeleted == 0 && report.orphansWaiting == 0 && report.failed.isEmpty, "\(report)")
    }

    /// The copies the unreferenced sweep deletes were in the listings taken before it: they are not
    /// strays too (deleted twice, counted twice).
    @Test func gcCountsTheChunksItForgetsOnceNotAlsoAsStrays() async throws {
        for index in 0..<5 { try await repository.remove(bucket: "test", key: "k\(index)") }
        let report = try await repository.collectGarbage(grace: 0, trashDays: 0)
        #expect(report.chunksDeleted >= 5 && report.orphansDeleted == 0 && report.orphansWaiting == 0 && report.failed.isEmpty,
                "\(report)")
        let again = try await repository.collectGarbage(grace: 0, trashDays: 0)
        #expect(again.chunksDeleted == 0 && again.orphansDeleted == 0, "\(again)")
    }

    @Test func aJobRunsAsAServiceAndStopsOnGracefulShutdown() async throws {
        let (reports, reported) = AsyncStream.makeStream(of: Result<Repository.ScrubReport, any Error>.self)
        let service = MaintenanceService(ScrubJob(repository: repository), every: .seconds(3600)) { reported.yield($0) }
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                var passes = reports.makeAsyncIterator()
                let first = try #require(await passes.next())
                // Every recorded replica, all good.
                let replicas = try repository.catalog.chunks.all().reduce(0) { $0 + $1.providers.count }
                #expect(try first.get().replicasChecked == replicas && replicas >= 10)
                #expect(try first.get().missing.isEmpty)
                // The service now waits out its interval; shutdown ends the wait, and `run` returns.
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
    }
}
