import BackendTesting
import Foundation
import Testing
@testable import ChunkStore

/// Every backend runs the same conformance suite; each test here is a few lines that plug one in.
struct BackendTests {
    @Test func directoryBackendConforms() async throws {
        let dir = try TemporaryDirectory()
        let temporaries = dir.path + "/.a67-tmp/"
        try await BackendConformance.run(DirectoryBackend(root: dir.path), leftovers: .temporaryFolder { name, bytes, age in
            let path = temporaries + name
            overwrite(path, bytes)
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: path)
        })
        // No temporary files are left behind by successful puts.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/.a67-tmp").isEmpty)
    }

    @Test func memoryBackendConforms() async throws {
        try await BackendConformance.run(MemoryBackend())
    }

    @Test func faultInjectingBackendConformsWithoutFaults() async throws {
        try await BackendConformance.run(FaultInjectingBackend(MemoryBackend()))
    }

    @Test func directoryBackendFansOutByPrefix() async throws {
        let dir = try TemporaryDirectory()
        let id = ChunkID(bytes: [UInt8](repeating: 0xab, count: 32))
        try await DirectoryBackend(root: dir.path).put(id.objectName, data: [1, 2, 3])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/data/ab/" + id.hex))
    }

    @Test func missingRootIsAPermanentErrorAndIsNotCreated() async throws {
        let dir = try TemporaryDirectory()
        let root = dir.path + "/unmounted-disk"
        let backend = DirectoryBackend(root: root)
        await expectBackendError { try await backend.put("data/aa/x", data: [1]) } where: { error in
            guard case .permanent(let message) = error else { return false }
            return message.contains("missing")
        }
        #expect(!FileManager.default.fileExists(atPath: root))
    }

    @Test func rootThatIsAFileIsAPermanentError() async throws {
        let dir = try TemporaryDirectory()
        let root = dir.path + "/file"
        #expect(FileManager.default.createFile(atPath: root, contents: Data([1])))
        await expectBackendError { try await DirectoryBackend(root: root).put("data/aa/x", data: [1]) } where: { error in
            if case .permanent = error { return true } else { return false }
        }
    }

    @Test func fullDiskIsClassifiedAndLeavesNoPartialObject() async throws {
        let dir = try TemporaryDirectory()
        let small = dir.path + "/small"
        try await Mounts.withTmpfs(at: small, size: "1m") { () async throws in
            let backend = DirectoryBackend(root: small)
            await expectBackendError { try await backend.put("data/aa/big", data: [UInt8](repeating: 7, count: 4 << 20)) } where: { error in
                if case .full = error { return true } else { return false }
            }
            await expectBackendError { _ = try await backend.get("data/aa/big") } where: { $0 == .notFound("data/aa/big") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: small + "/.a67-tmp").isEmpty,
                    "the temporary file of a failed put must be removed")
        }
    }

    @Test func invalidObjectNamesAreRefused() async throws {
        let dir = try TemporaryDirectory()
        let backend = DirectoryBackend(root: dir.path)
        for name in ["../escape", "a/../../b", "/abs", "UPPER", "a//b", ""] {
            await #expect(throws: BackendError.self) { try await backend.put(name, data: [1]) }
        }
    }
}
