import BackendTesting
import ChunkStore
import Replicator
import Testing

struct CatalogTests {
    @Test func keysAndPathsAreOneNamespace() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        for key in ["a/b/c.txt", "a/b/d.txt", "a/e.txt", "z.txt"] { _ = try await h.put(Array(key.utf8), key: key) }
        await expectStoreError(.conflict) { _ = try await h.put([1], key: "a/b") }       // a folder is in the way
        await expectStoreError(.conflict) { _ = try await h.put([1], key: "z.txt/x") }   // an object is in the way
        var top: [ListEntry] = []
        try h.catalog.namespace.list(bucket: h.bucket, prefix: "", recursive: false) { top.append($0) }
        #expect(top.map(\.key) == ["a/", "z.txt"])
        #expect(top[0].isFolder)
        var inA: [String] = []
        try h.catalog.namespace.list(bucket: h.bucket, prefix: "a/", recursive: false) { inA.append($0.key) }
        #expect(inA == ["a/b/", "a/e.txt"])
        var partial: [String] = []
        try h.catalog.namespace.list(bucket: h.bucket, prefix: "a/b/c", recursive: true) { partial.append($0.key) }
        #expect(partial == ["a/b/c.txt"])
    }

    @Test func recursiveListingIsInS3ByteOrder() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        let keys = ["a/b", "a-c", "a.d", "ab/x", "a0", "b", "a/a/a", "A"]
        for key in keys { _ = try await h.put(Array(key.utf8), key: key) }
        #expect(try h.keys() == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    @Test func removingTheLastObjectPrunesImplicitFoldersAndEmptiesTheBucket() async throws {
        let h = try Harness(providers: 1, replicas: 1)
        _ = try await h.put([1], key: "deep/er/file")
        _ = try await h.put([2], key: "deep/other")
        await expectStoreError(.conflict) { try h.catalog.namespace.removeBucket(h.bucket.name) }
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["deep", "er", "file"])
        #expect(try h.keys() == ["deep/other"])
        try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["deep", "other"])
        var all: [ListEntry] = []
        try h.catalog.namespace.list(bucket: h.bucket, prefix: "", recursive: false) { all.append($0) }
        #expect(all.isEmpty)
        try h.catalog.namespace.removeBucket(h.bucket.name)
        await expectStoreError(.notFound) { _ = try h.catalog.namespace.bucket(h.bucket.name) }
        await expectStoreError(.notFound) { try h.catalog.namespace.removeObject(bucket: h.bucket, segments: ["nothing"]) }
    }

    @Test func bucketNamesAreUnique() async throws {
        let h = try Harness()
        await expectStoreError(.alreadyExists) { _ = try h.catalog.namespace.createBucket(h.bucket.name, replicas: 1) }
        await expectStoreError(.invalidArgument) { _ = try h.catalog.namespace.createBucket("Bad_Name", replicas: 1) }
    }
}
