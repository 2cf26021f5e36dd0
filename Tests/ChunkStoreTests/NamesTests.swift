import BackendTesting
import Testing
import ChunkStore

struct NamesTests {
    @Test(arguments: ["abc", "my-bucket.2026", "a1b", String(repeating: "a", count: 63)])
    func validBuckets(name: String) throws { try Names.validateBucket(name) }

    @Test(arguments: ["ab", "Upper", "under_score", "-start", "end-", "a..b", "192.168.1.1", String(repeating: "a", count: 64), "sp ace", "slash/x"])
    func invalidBuckets(name: String) async {
        let error = await expectStoreError(.invalidArgument) { try Names.validateBucket(name) }
        #expect(error?.message.contains("invalid bucket name") == true)
    }

    @Test func keysBecomePathSegments() throws {
        #expect(try Names.keySegments("a/b/c.txt") == ["a", "b", "c.txt"])
        #expect(try Names.keySegments("x") == ["x"])
        #expect(try Names.keySegments("spaces and ünïcode/ok") == ["spaces and ünïcode", "ok"])
    }

    @Test(arguments: ["", "../x", "a/../b", "a/./b", "a//b", "/abs", "dir/", "nul\0byte",
                      String(repeating: "k", count: 1025), String(repeating: "s", count: 256)])
    func invalidKeys(key: String) async {
        await expectStoreError(.invalidArgument) { _ = try Names.keySegments(key) }
    }
}
