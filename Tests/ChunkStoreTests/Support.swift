import BackendTesting
import Foundation

/// A small tmpfs, for a provider that really runs out of space. Needs root (tests run as root).
/// Use `TmpfsMount.with`, which always unmounts (relying on deinit left mounts behind).
final class TmpfsMount {
    let path: String

    /// Mounts a tmpfs of `size` at `path`, runs `body`, and unmounts, also when `body` throws.
    static func with<T>(at path: String, size: String, _ body: (TmpfsMount) async throws -> T) async throws -> T {
        let mount = try TmpfsMount(at: path, size: size)
        do {
            let result = try await body(mount)
            try mount.unmount()
            return result
        } catch {
            try? mount.unmount()
            throw error
        }
    }

    private init(at path: String, size: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            throw NSError(domain: "TmpfsMount", code: Int(mount.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "mount -t tmpfs failed: the tests need root"])
        }
        self.path = path
    }

    func unmount() throws {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = [path]
        try umount.run()
        umount.waitUntilExit()
        guard umount.terminationStatus == 0 else {
            throw NSError(domain: "TmpfsMount", code: Int(umount.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "umount \(path) failed"])
        }
    }
}

import ChunkStore
import Testing

/// Expects `body` to throw a BackendError matching `matches`.
func expectBackendError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void,
                        where matches: (BackendError) -> Bool) async {
    let error = await #expect(throws: BackendError.self, sourceLocation: sourceLocation) { try await body() }
    #expect(error.map(matches) == true, "got \(String(describing: error))", sourceLocation: sourceLocation)
}
