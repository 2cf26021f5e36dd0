import BackendTesting
import ChunkStore
import Foundation
import Testing

/// Provider specs as the catalog stores them (FORMAT.md, the `provider` table), and the directory
/// kind's factory.
@Suite struct ProviderSpecTests {
    /// `provider.config` as repositories hold it: each kind decodes, and encodes back to the same bytes.
    @Test(arguments: [
        ("dir", #"{"path":"\/srv\/a67"}"#),
        ("s3", #"{"connection":{"caFile":"\/etc\/ca.pem","connectTimeout":10,"maxRequests":8,"stallTimeout":30},"#
            + #""s3":{"accessKeyID":"AKIA","bucket":"b","endpoint":"http:\/\/127.0.0.1:8333","pathStyle":true,"prefix":"p","region":"us-east-1"}}"#),
        ("webdav", #"{"connection":{"connectTimeout":2.5,"maxRequests":8,"stallTimeout":10},"webdav":{"url":"https:\/\/dav.example\/a67","user":"me"}}"#),
        ("sftp", #"{"connection":{"connectTimeout":10,"maxRequests":4,"stallTimeout":30},"sftp":{"hostKeySHA256":"abc","url":"sftp:\/\/u@h:22\/a67"}}"#),
    ])
    func storedConfigsRoundTrip(_ kind: String, _ config: String) throws {
        let spec = try ProviderSpec(kind: kind, config: config)
        #expect(spec.kind == kind)
        #expect(spec.configJSON == config)
    }

    @Test func olderConfigsWithoutConnectionOptionsDecode() async throws {
        let spec = try ProviderSpec(kind: "sftp", config: #"{"sftp":{"url":"sftp://u@h/a67"}}"#)
        #expect(spec == .sftp(SFTPSettings(url: "sftp://u@h/a67"), ConnectionOptions()))
        _ = await expectStoreError(.internal) { _ = try ProviderSpec(kind: "s3", config: #"{"path":"/x"}"#) }
        _ = await expectStoreError(.internal) { _ = try ProviderSpec(kind: "tape", config: "{}") }
    }

    /// `prepare` creates the folder itself (never its parent) and keeps its resolved path.
    @Test func directoryFactoryPreparesAndResolves() async throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link", withDestinationPath: dir.path)
        let factory = DirectoryBackendFactory()
        let prepared = try await factory.prepare(.directory(path: dir.path + "/link/p1/"), secret: nil)
        let resolved = URL(fileURLWithPath: dir.path).resolvingSymlinksInPath().path + "/p1"
        #expect(prepared.spec == .directory(path: resolved))
        #expect(prepared.backend.location == "directory " + resolved)
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: resolved, isDirectory: &isFolder) && isFolder.boolValue)
        // Again over an existing folder: the same.
        #expect(try await factory.prepare(.directory(path: resolved), secret: nil).spec == .directory(path: resolved))

        let missingParent = dir.path + "/absent/p2"
        await #expect(throws: StoreError.self) { _ = try await factory.prepare(.directory(path: missingParent), secret: nil) }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/absent"))

        let remote = ProviderSpec.webdav(WebDAVSettings(url: "https://dav.example/a67", user: "me"), ConnectionOptions())
        _ = await expectStoreError(.internal) { _ = try factory.makeBackend(remote, secret: .password("p")) }
    }
}
